"""What each Rego rule can reach of the `input` document, and which rules can share one input.

rego-cpp copies a term each time a rule iterates over it, so a query's cost grows with the size
of each change in the input (measured: 14 us per change for 3 fields, 249 us for 80). This
module decides, from the policy source text alone, what may be left out:

- `Projection`: the input cut down to the fields a set of modules names;
- `closures`: the modules a rule's query can run code from (helpers in other files);
- `plan_groups`: rules split into groups that each get their own, narrower input, when the
  split pays for building one more input.

There is no Rego parser here, only a scan for names. Guessing wrong would let a policy pass
silently, so every guess keeps more: an unrecognised way of reaching data keeps everything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

TOP_FIELDS = ("when", "changeset", "resources", "providers", "stage", "release", "user", "time", "plan")
CHANGE_FIELDS = ("address", "type", "provider", "action", "before", "after", "after_unknown", "diff")

#: a string (its text in group 1 or 2) or a comment; strings first, so `#` inside one is text
_STRING_OR_COMMENT_RE = re.compile(r'"((?:[^"\\\n]|\\.)*)"|`([^`]*)`|#[^\n]*')
_TOKEN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PACKAGE_LINE_RE = re.compile(r"^\s*package\s+[A-Za-z_][\w.]*", re.MULTILINE)
#: uses that may reach input fields not named in the source: the projection is then turned off
_OPAQUE_RE = re.compile(
    r"\bwalk\s*\(|\bobject\.(?:keys|remove|filter|union|union_n|subset)\b|\bjson\.(?:marshal|filter|remove|patch)"
    r"|\byaml\.marshal|%v|\bprint\s*\(|\binput\b(?!\s*[.\[])"
)
#: rule heads such as `deny[msg]` (v0 syntax) look like computed keys but are not
_RULE_HEAD_RE = re.compile(r"^[A-Za-z_]\w*\s*\[[^\]\n]*\]", re.MULTILINE)
#: uses that reach properties by a computed key: property-level projection is then turned off
_DYNAMIC_KEY_RE = re.compile(r"\[\s*(?!_\s*\])[A-Za-z_][A-Za-z0-9_]*\s*\]|\bsome\s+\w+\s*,\s*\w+\s+in\b")
#: `data` used other than as a fixed path (`data[x]`, `data.pkg[x]`, `x := data`): any rule may run
_ANY_DATA_RE = re.compile(r"\bdata(?:\s*\.\s*[A-Za-z_]\w*)*\s*\[|\bdata\b(?!\s*[.\[])")
#: words that start a line at the top level of a module without defining a name there
_NOT_A_DEFINITION = frozenset(
    {"package", "import", "else", "if", "contains", "not", "some", "every", "with", "as", "in", "true", "false", "null"}
)


class _Module(Protocol):
    """What this module needs of a `rego.RegoModule`."""

    @property
    def text(self) -> str: ...

    @property
    def package(self) -> str: ...


@dataclass(frozen=True)
class Scan:
    """The names in one module's source, with strings and comments told apart from code."""

    code: str  # comments removed, each string replaced by ""
    tokens: frozenset[str]  # identifiers in the code, and the text of every string
    links: frozenset[str]  # tokens outside the `package` line: names this module may call
    defines: frozenset[str]  # names the module may define, and its package's path segments
    opaque: bool
    dynamic: bool
    any_data: bool

    @classmethod
    def of(cls, module: _Module) -> Scan:
        strings: list[str] = []

        def blank(m: re.Match[str]) -> str:
            if m.group(0).startswith("#"):
                return ""
            strings.append(m.group(1) if m.group(1) is not None else m.group(2))
            return '""'

        code = _STRING_OR_COMMENT_RE.sub(blank, module.text)
        tokens = {*_TOKEN_RE.findall(code), *strings}
        links = {*_TOKEN_RE.findall(_PACKAGE_LINE_RE.sub("", code)), *strings}
        bare = _RULE_HEAD_RE.sub("", code)
        return cls(
            code=code,
            tokens=frozenset(tokens),
            links=frozenset(links),
            defines=frozenset(_top_level_names(code) | set(module.package.split("."))),
            opaque=_OPAQUE_RE.search(bare) is not None,
            dynamic=_DYNAMIC_KEY_RE.search(bare) is not None,
            any_data=_ANY_DATA_RE.search(_PACKAGE_LINE_RE.sub("", code)) is not None,
        )


def _top_level_names(code: str) -> set[str]:
    """The first name of every statement outside braces: rule and function names, and more.

    Over-collecting is safe (a module is linked to more others than needed); missing a name is
    not, so any name that starts a line outside `{ [ (` counts, indented or not.
    """
    names: set[str] = set()
    depth = 0
    at_start = True
    for m in re.finditer(r"[A-Za-z_]\w*|[{}\[\]()]|\n", code):
        tok = m.group(0)
        if tok == "\n":
            at_start = depth == 0
        elif tok in "{[(":
            depth += 1
            at_start = False
        elif tok in "}])":
            depth = max(0, depth - 1)
            at_start = False
        elif at_start:
            if tok == "default":
                continue  # `default deny := false`: the name comes next
            if tok not in _NOT_A_DEFINITION:
                names.add(tok)
            at_start = False
    return names


def closures(scans: Sequence[Scan]) -> list[frozenset[int]]:
    """For each module, the modules whose code a query into it can run (itself included).

    Module A can run B's code when A names something B may define; a module that uses `data`
    other than as a fixed path can run anything.
    """
    n = len(scans)
    direct: list[set[int]] = []
    for a in scans:
        if a.any_data:
            direct.append(set(range(n)))
        else:
            direct.append({j for j, b in enumerate(scans) if not a.links.isdisjoint(b.defines)})
    out: list[frozenset[int]] = []
    for i in range(n):
        seen = {i}
        todo = [i]
        while todo:
            for j in direct[todo.pop()]:
                if j not in seen:
                    seen.add(j)
                    todo.append(j)
        out.append(frozenset(seen))
    return out


class Projection:
    """Which parts of the `input` document a set of modules can reach.

    A change's fields and properties that none of the modules names are left out. A module
    that reaches fields it does not name (walk, object.*, json.marshal, %v, `input` passed
    whole) turns the projection off, as does `full_input: true` on its entry; computed keys
    (`c.after[k]`) keep every property.
    """

    def __init__(self, scans: Sequence[Scan], *, full: bool = False) -> None:
        tokens: set[str] = set()
        opaque = full
        dynamic = False
        for scan in scans:
            tokens |= scan.tokens
            opaque = opaque or scan.opaque
            dynamic = dynamic or scan.dynamic
        self.full = opaque
        self.tokens = frozenset(tokens)
        self.top = tuple(k for k in TOP_FIELDS if k in tokens)
        self.change_fields = tuple(k for k in CHANGE_FIELDS if k in tokens)
        self.properties: frozenset[str] | None = None if dynamic else self.tokens

    def _props(self, props: Any) -> Any:
        if self.properties is None:
            return props
        return self._prune(props, self.properties)

    def _prune(self, value: Any, keep: frozenset[str]) -> Any:
        """Keys no policy names are dropped at every depth (values under kept keys are pruned too)."""
        if isinstance(value, dict):
            return {k: self._prune(v, keep) for k, v in value.items() if k in keep}
        if isinstance(value, list):
            return [self._prune(v, keep) for v in value]
        return value

    def apply(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        if self.full:
            return dict(doc)
        out: dict[str, Any] = {k: doc.get(k) for k in self.top}
        if "changeset" in out:
            cs = doc["changeset"]
            fields = self.change_fields
            props = self._props
            new_cs: dict[str, Any] = {}
            if "counts" in self.tokens:
                new_cs["counts"] = cs["counts"]
            if "changes" in self.tokens:
                changes = []
                for c in cs["changes"]:
                    entry = {k: c[k] for k in fields}
                    if "after" in entry:
                        entry["after"] = props(entry["after"])
                    if "before" in entry:
                        entry["before"] = props(entry["before"])
                    changes.append(entry)
                new_cs["changes"] = changes
            out["changeset"] = new_cs
        if "resources" in out:
            out["resources"] = {a: self._props(p) for a, p in (doc.get("resources") or {}).items()}
        return out


# ----------------------------------------------------------------------------------- groups

#: below this many changes one input is built: a second one costs more than it saves
MIN_CHANGES_TO_SPLIT = 500
#: the cost model, in "one field of one change" units, from bench/policy_bench.py --breakdown:
#: building the input costs ~2 queries' worth per field, loading it into an interpreter ~0.8
BUILD_COST, LOAD_COST = 2.0, 0.8
#: a split is used only when the model says it saves at least this share of the time
MIN_GAIN = 0.1
_SAMPLE = 16


def _paths(value: Any, prefix: tuple[str, ...], out: set[tuple[str, ...]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            path = (*prefix, str(k))
            out.add(path)
            _paths(v, path, out)
    elif isinstance(value, list):
        for v in value:
            _paths(v, prefix, out)


def _fields(projection: Projection, sample: Mapping[str, Any]) -> frozenset[tuple[str, ...]]:
    """The field paths a projection keeps in a few changes and resources: the size of its input."""
    got = projection.apply(sample)
    out: set[tuple[str, ...]] = set()
    _paths(((got.get("changeset") or {}).get("changes") or []), ("c",), out)
    _paths(list((got.get("resources") or {}).values()), ("r",), out)
    return frozenset(out)


@dataclass(frozen=True)
class Group:
    projection: Projection
    rules: tuple[int, ...]  # indices into the engine's rules
    interpreters: tuple[int, ...]


def _makespan(groups: Sequence[tuple[int, int, int]]) -> float:
    """Model time of groups built one after another, each (fields, costly rules, interpreters)."""
    built = 0.0
    end = 0.0
    for fields, rules, interps in groups:
        built += BUILD_COST * fields
        end = max(end, built + LOAD_COST * fields + fields * rules / max(1, interps))
    return end


def plan_groups(
    doc: Mapping[str, Any],
    own: Sequence[Projection],
    rule_scans: Sequence[Sequence[Scan]],
    workers: int,
) -> list[Group] | None:
    """Split the rules in two groups with their own inputs, or None when one shared input is best.

    `own[i]` is rule i's projection and `rule_scans[i]` the modules it can run code from (a
    group's projection is built from those, so the sample below never decides what is kept).
    The split is chosen on a model of build, load and query time (above) from the fields each
    rule keeps in a sample of changes; rules cost the same per field, and a rule that keeps no
    per-change field costs nothing. Interpreters alternate between the two groups.
    """
    changes = (doc.get("changeset") or {}).get("changes") or []
    if workers < 2 or len(own) < 2 or len(changes) < MIN_CHANGES_TO_SPLIT or any(p.full for p in own):
        return None
    sample = dict(doc)
    sample["changeset"] = {**doc["changeset"], "changes": changes[:_SAMPLE]}
    if doc.get("resources"):
        sample["resources"] = dict(list(doc["resources"].items())[:_SAMPLE])
    fields = [_fields(p, sample) for p in own]
    every = frozenset[tuple[str, ...]]().union(*fields)
    index = {f: n for n, f in enumerate(sorted(every))}
    masks = [sum(1 << index[f] for f in fs) for fs in fields]
    costly = [i for i, m in enumerate(masks) if m]
    if len(costly) < 2:
        return None
    interps = (len(range(0, workers, 2)), len(range(1, workers, 2)))

    def shape(split: Sequence[Sequence[int]]) -> list[tuple[int, int, int]]:
        out = []
        for g, members in enumerate(split):
            union = 0
            for i in members:
                union |= masks[i]
            out.append((union.bit_count(), len(members), interps[g]))
        return out

    def cost(split: Sequence[Sequence[int]]) -> float:
        s = shape(split)
        return min(_makespan(s), _makespan(s[::-1]))

    # greedy, largest rules first, then single moves while they help: a few ms for tens of rules
    split: list[list[int]] = [[], []]
    for i in sorted(costly, key=lambda i: (-masks[i].bit_count(), i)):
        options = [[[*split[0], i], split[1]], [split[0], [*split[1], i]]]
        split = min(options, key=cost)
    improved = True
    while improved:
        improved = False
        for i in costly:
            src = 0 if i in split[0] else 1
            if len(split[src]) == 1:
                continue
            moved = [list(split[0]), list(split[1])]
            moved[src].remove(i)
            moved[1 - src].append(i)
            if cost(moved) < cost(split) - 1e-9:
                split = moved
                improved = True
    if cost(split) > (1 - MIN_GAIN) * _makespan([(len(every), len(costly), workers)]):
        return None
    free = [i for i, m in enumerate(masks) if not m]
    groups = []
    for g, members in enumerate(split):
        rules = sorted([*members, *(free if g == 0 else [])])
        scans = {id(s): s for i in rules for s in rule_scans[i]}
        groups.append(Group(Projection(list(scans.values())), tuple(rules), tuple(range(g, workers, 2))))
    s = shape(split)
    if _makespan(s[::-1]) < _makespan(s):
        groups.reverse()  # build first the group whose queries take longer
    return groups
