"""References and expressions inside plan file strings: `${var.x}`, `${var.prod ? 3 : 1}`, `$${`.

This module owns the template grammar of plan files (parse, find, resolve) and the `Unknown`
marker for values known only after apply. It knows nothing of files: errors are
`ExpressionError`s that the caller turns into a located `ConfigError`. Evaluating a CEL
expression is `cloudorch.planfile.cel`'s job; this module only finds the references in it.

Grammar of the text between `${` and `}`: a plain reference (the fast path, no evaluator)::

    ref     := ROOT step*
    step    := "." NAME | "[" (INT | '"' chars '"' | "'" chars "'" | BARE) "]"

A `.NAME` made only of digits is a list index, like `[0]`. Anything else is a CEL expression
whose references (same grammar, `ROOT.NAME` then `.attr`, `[0]`, `["key"]`, and the instance key
of `resources.NAME[key]`) are bound as values; see `Expression`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

#: the namespaces a reference may start with, and what each names (for hints). A new namespace
#: is one entry here plus its resolution where its values come from; `stage` and
#: `release` are bound per release stage by `expand.bind_stage`; `modules`
#: (`${modules.net[eu].vpc_id}`) is rewritten away at load by `modules.expand_modules`
NAMESPACES: dict[str, str] = {
    "var": "a variable: `var.NAME`",
    "local": "a value under `locals:`: `local.NAME`",
    "resources": "a resource attribute: `resources.NAME.ATTR` or `resources.NAME[KEY].ATTR`",
    "env": "an environment variable: `env.NAME`",
    "each": "the for_each key or value: `each.key`, `each.value`",
    "stage": "the release stage: `stage.name`, `stage.vars.NAME`",
    "release": "the release: `release.version`, `release.KEY`",
    "stacks": "another stack's output, read from its state: `stacks.NAME.outputs.OUT`",
    "modules": "a module instance's output: `modules.NAME.OUT` or `modules.NAME[KEY].OUT`",
    "data": "an object read by a data source: `data.NAME.ATTR` (read at plan)",
}
#: kept for callers that test membership; `NAMESPACES` is the table to extend
ROOTS = frozenset(NAMESPACES)
#: namespaces whose NAME may be followed by an instance key written bare, inside an expression as
#: in a plain reference: `resources.web[eu].arn` (elsewhere in an expression `[x]` is CEL's index)
KEYED_NAMESPACES: set[str] = {"resources", "modules", "data"}

_ROOT_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)")
_DOT_RE = re.compile(r"\.([A-Za-z0-9_-]+)")
_BRACKET_RE = re.compile(r"""\[\s*(?:(\d+)|"([^"]*)"|'([^']*)'|([^\]"'\s]+))\s*\]""")
#: a bare bracket key that is itself a reference: `[each.key]`, `[var.region]` (quote a literal key)
_DYNAMIC_RE = re.compile(r"^(?:each|var)\.[A-Za-z0-9_.-]+$")


class ExpressionError(ValueError):
    """A template string is malformed or a path leads nowhere; the caller adds where it was written.

    `text` is the reference or template at fault, so the caller can find the string holding it.
    """

    def __init__(self, message: str, text: str = "") -> None:
        super().__init__(message)
        self.text = text


class Unknown:
    """A value known only after apply; `expr` is the template text it came from."""

    __slots__ = ("expr",)

    def __init__(self, expr: str) -> None:
        self.expr = expr

    def __repr__(self) -> str:
        return f"Unknown({self.expr!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unknown) and other.expr == self.expr

    def __hash__(self) -> int:
        return hash(("Unknown", self.expr))


@dataclass(frozen=True)
class Reference:
    """One `${...}`: `root` ("var", "resources", ...), the `path` after it, and its source `text`.

    `indexes` lists the positions in `path` written in brackets (`[0]`, `["k"]`), so that
    `resources.web[eu].arn` (an instance key) and `resources.web.eu.arn` can be told apart.
    `dynamic` lists the bracket positions holding a reference instead of a key, as in
    `resources.web[each.key].arn`; `path` holds that reference's text (`each.key`) there
    until `bind` replaces it with a value.
    """

    root: str
    path: tuple[str | int, ...]
    text: str
    indexes: tuple[int, ...] = ()
    dynamic: tuple[int, ...] = ()

    def inner_refs(self) -> list[Reference]:
        """The references written inside brackets (`each.key` in `web[each.key]`)."""
        return [_parse_ref(str(self.path[i])) for i in self.dynamic]

    def bind(self, lookup: Callable[[Reference], Any]) -> Reference:
        """This reference with every dynamic index replaced by its looked-up value."""
        path = list(self.path)
        for i in self.dynamic:
            inner = _parse_ref(str(path[i]))
            value = lookup(inner)
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise ExpressionError(f"`{self.text}`: `{inner.text}` is not a key or index", self.text)
            path[i] = value
        return Reference(self.root, tuple(path), _render_ref(self.root, path, self.indexes), self.indexes)

    def resource_target(self) -> tuple[str, str | None, tuple[str | int, ...]]:
        """For a `resources` reference: (resource name, instance key or None, attribute path)."""
        if not self.path:
            raise ExpressionError(f"`{self.text}` names no resource")
        name = str(self.path[0])
        if 1 in self.indexes:
            return name, str(self.path[1]), self.path[2:]
        return name, None, self.path[1:]


def _render_ref(root: str, path: list[str | int], indexes: tuple[int, ...]) -> str:
    import json

    steps = [
        (f"[{p}]" if isinstance(p, int) else f"[{json.dumps(p)}]") if i in indexes else f".{p}"
        for i, p in enumerate(path)
    ]
    return "${" + root + "".join(steps) + "}"


#: a parsed template: literal text, references and expressions, in order
Template = tuple["str | Reference | Expression", ...]


@lru_cache(maxsize=65536)
def _parse_ref(body: str) -> Reference:
    text = "${" + body + "}"
    m = _ROOT_RE.match(body)
    if m is None:
        raise ExpressionError(f"`{text}` is not a reference (expected e.g. `${{var.name}}`)")
    root = m.group(1)
    if root not in NAMESPACES:
        roots = ", ".join(sorted(NAMESPACES))
        raise ExpressionError(f"`{text}`: unknown root `{root}` (expected one of {roots})")
    pos = m.end()
    path: list[str | int] = []
    indexes: list[int] = []
    dynamic: list[int] = []
    end = len(body.rstrip())
    while pos < end:
        dm = _DOT_RE.match(body, pos)
        if dm is not None:
            name = dm.group(1)
            path.append(int(name) if name.isdigit() else name)
            pos = dm.end()
            continue
        bm = _BRACKET_RE.match(body, pos)
        if bm is not None:
            num, dq, sq, bare = bm.groups()
            indexes.append(len(path))
            if num is not None:
                path.append(int(num))
            else:
                if bare is not None and _DYNAMIC_RE.match(bare):
                    dynamic.append(len(path))
                path.append(dq if dq is not None else sq if sq is not None else bare)
            pos = bm.end()
            continue
        raise ExpressionError(f"`{text}`: cannot parse {body[pos:]!r} (expected `.name` or `[key]`)")
    return Reference(root, tuple(path), text, tuple(indexes), tuple(dynamic))


@dataclass(frozen=True)
class Expression:
    """One `${...}` holding a CEL expression: its `text` as written and the references it reads.

    `pieces` is the CEL source with each reference cut out: a string is source text, an int `i`
    stands for `refs[i]` (bound as the variable `_r{i}` when evaluated). `has(var.cfg.port)`
    keeps its last field in the source (`has(_r0.port)`), as CEL's `has` needs a field selection.
    """

    text: str
    pieces: tuple[str | int, ...]
    refs: tuple[Reference, ...]

    def source(self, bound: Callable[[int], str] | None = None) -> str:
        """The CEL source, each reference written as `bound(i)` (default: its variable `_r{i}`)."""
        if bound is None:
            return self.cel_source
        return "".join(p if isinstance(p, str) else bound(p) for p in self.pieces)

    @cached_property
    def touched_roots(self) -> frozenset[str]:
        """The roots of its references and of the references inside their brackets."""
        return frozenset(r.root for r in self.refs) | frozenset(
            inner.root for r in self.refs if r.dynamic for inner in r.inner_refs()
        )

    @cached_property
    def cel_source(self) -> str:
        """The CEL source with each reference as its variable `_r{i}`."""
        return "".join(p if isinstance(p, str) else f"_r{p}" for p in self.pieces)


#: identifiers an expression may use besides the roots: literals, CEL type names (`type(x) == string`)
_CEL_WORDS = frozenset(
    ["true", "false", "null", "in", "int", "uint", "double", "bool", "string", "bytes", "list", "map", "type", "dyn"]
)
#: characters that make a `${...}` that is not a plain reference an expression (otherwise the
#: plain grammar's error, e.g. `${var.a b}`, is the one to show)
_EXPR_CHARS = frozenset("()+-*/%!=<>&|?:{},\"'")
_EXPR_START_RE = re.compile(r"\s*(?:[0-9\[]|(?:true|false|null)\b)")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: the first step after a root is a name, which may hold `-` as names do (as in HCL: write
#: `var.a - 1` for a subtraction)
_NAME_STEP_RE = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*)(?![A-Za-z0-9_-])")
#: a later `.attr` (not a method call such as `.map(`; the boundary stops backtracking into `.ma`)
_ATTR_STEP_RE = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*|\d+)(?![A-Za-z0-9_])(?!\s*\()")
_LITERAL_INDEX_RE = re.compile(r"""\[\s*(?:(\d+)|"([^"\\]*)"|'([^'\\]*)')\s*\]""")
#: comprehension macros bind a variable: `list.map(x, x + 1)`, `m.all(k, v, ...)`
_MACRO_VAR_RE = re.compile(
    r"\.\s*(?:map|filter|exists|all|exists_one|existsOne|transformList|transformMap)\s*\(\s*"
    r"([A-Za-z_][A-Za-z0-9_]*)\s*,(?:\s*([A-Za-z_][A-Za-z0-9_]*)\s*,)?"
)
#: one token of an expression: a string's start (`_string_end` finds its end), a number, a
#: name, or a run of anything else (operators, spaces, brackets)
_TOKEN_RE = re.compile(
    r"""(?P<str>[rRbB]{0,2}["'])"""
    r"|(?P<num>0[xX][0-9a-fA-F]+[uU]?|\d+\.?\d*(?:[eE][+-]?\d+)?[uU]?)"
    r"|(?P<id>[A-Za-z_][A-Za-z0-9_]*)"
    r"""|(?P<other>[^"'A-Za-z_0-9]+|.)""",
    re.S,
)
_HAS_OPEN_RE = re.compile(r"\bhas\s*\(\s*$")


def _string_end(body: str, i: int) -> int:
    """Index just past the CEL string literal starting at `i` (after any r/b prefix)."""
    j = i
    raw = False
    while body[j] in "rRbB":
        raw = raw or body[j] in "rR"
        j += 1
    quote = body[j]
    triple = body.startswith(quote * 3, j)
    delim = quote * 3 if triple else quote
    k = j + len(delim)
    while k < len(body):
        if not raw and body[k] == "\\":
            k += 2
            continue
        if body.startswith(delim, k):
            return k + len(delim)
        k += 1
    raise ExpressionError(f"`${{{body}}}`: unterminated string", "${" + body + "}")


def _parse_expression(body: str) -> Expression:
    """Cut the references out of a CEL expression; any other free name is an error."""
    text = "${" + body + "}"
    bound_vars: set[str] = set()
    for macro in _MACRO_VAR_RE.finditer(body):
        bound_vars.update(v for v in macro.groups() if v)
    clash = bound_vars & set(NAMESPACES)
    if clash:
        raise ExpressionError(f"`{text}`: a macro variable cannot be named `{min(clash)}`, a root", text)
    pieces: list[str | int] = []
    refs: list[Reference] = []
    index_of: dict[str, int] = {}
    buf: list[str] = []
    i, n = 0, len(body)
    while i < n:
        tok = _TOKEN_RE.match(body, i)
        assert tok is not None  # `other` matches any single character
        kind = tok.lastgroup
        if kind == "str":
            end = _string_end(body, i)
            buf.append(body[i:end])
            i = end
            continue
        if kind != "id":
            buf.append(tok.group(0))
            i = tok.end()
            continue
        word = tok.group(0)
        j = i - 1
        while j >= 0 and body[j] in " \t\r\n":
            j -= 1
        prev = body[j] if j >= 0 else ""
        k = tok.end()
        while k < n and body[k] in " \t\r\n":
            k += 1
        if prev == "." or (k < n and body[k] == "(") or word in _CEL_WORDS or word in bound_vars:
            buf.append(word)  # a field, a function, a literal or a macro variable
            i = tok.end()
            continue
        if word not in NAMESPACES:
            roots = ", ".join(sorted(NAMESPACES))
            raise ExpressionError(f"`{text}`: unknown root `{word}` (expected one of {roots})", text)
        in_has = prev == "(" and bool(_HAS_OPEN_RE.search(body, 0, j + 1))
        ref, end, kept = _expression_ref(body, i, tok.end(), word, text, in_has=in_has)
        idx = index_of.get(ref.text)
        if idx is None:
            idx = index_of[ref.text] = len(refs)
            refs.append(ref)
        if buf:
            pieces.append("".join(buf))
            buf = []
        pieces.append(idx)
        if kept:
            buf.append(kept)
        i = end
    if buf:
        pieces.append("".join(buf))
    if not "".join(p for p in pieces if isinstance(p, str)).strip() and not refs:
        raise ExpressionError(f"`{text}` is not a reference (expected e.g. `${{var.name}}`)", text)
    return Expression(text, tuple(pieces), tuple(refs))


def _expression_ref(
    body: str, start: int, pos: int, root: str, text: str, *, in_has: bool
) -> tuple[Reference, int, str]:
    """The reference starting at `start` in an expression: (reference, end, source kept after it).

    Inside `has(...)` the last `.field` stays in the source, so CEL tests its presence."""
    path: list[str | int] = []
    indexes: list[int] = []
    dynamic: list[int] = []
    spans: list[int] = []  # where each step starts, to give the last one back to `has`
    m = _NAME_STEP_RE.match(body, pos)
    quoted = _LITERAL_INDEX_RE.match(body, pos) if m is None and root in KEYED_NAMESPACES else None
    if m is not None:
        spans.append(pos)
        path.append(m.group(1))
        pos = m.end()
    elif quoted is not None and quoted.group(1) is None:
        # `resources["module.net[eu].vpc"]`: a name that is itself an address (a module's resource),
        # as the plain-reference grammar reads it
        spans.append(pos)
        indexes.append(0)
        path.append(quoted.group(2) if quoted.group(2) is not None else quoted.group(3))
        pos = quoted.end()
    else:
        raise ExpressionError(f"`{text}`: `{root}` must be followed by `.NAME`", text)
    while True:
        if len(path) == 1 and root in KEYED_NAMESPACES:
            bm = _BRACKET_RE.match(body, pos)
            if bm is not None:
                num, dq, sq, bare = bm.groups()
                spans.append(pos)
                indexes.append(len(path))
                if num is not None:
                    path.append(int(num))
                else:
                    if bare is not None and _DYNAMIC_RE.match(bare):
                        dynamic.append(len(path))
                    path.append(dq if dq is not None else sq if sq is not None else bare)
                pos = bm.end()
                continue
        am = _ATTR_STEP_RE.match(body, pos)
        if am is not None:
            spans.append(pos)
            name = am.group(1)
            path.append(int(name) if name.isdigit() else name)
            pos = am.end()
            continue
        lm = _LITERAL_INDEX_RE.match(body, pos)
        if lm is not None:
            num, dq, sq = lm.groups()
            spans.append(pos)
            indexes.append(len(path))
            path.append(int(num) if num is not None else dq if dq is not None else sq)
            pos = lm.end()
            continue
        break
    kept = ""
    if in_has and body[pos:].lstrip().startswith(")") and len(path) >= 2 and (len(path) - 1) not in indexes:
        last = str(path.pop())
        kept = "." + last
        pos_kept = spans[-1]
        del spans[-1]
        ref_text_end = pos_kept
    else:
        ref_text_end = pos
    ref_text = "${" + body[start:ref_text_end].strip() + "}"
    return Reference(root, tuple(path), ref_text, tuple(indexes), tuple(dynamic)), pos, kept


#: parsed `${...}` bodies; `_partial_expression` adds the expressions it writes, so they are not
#: scanned again when the planner reads them (plans repeat strings: a dict beats re-parsing)
_PARTS: dict[str, Reference | Expression] = {}
_PARTS_MAX = 200_000


def parse_part(body: str) -> Reference | Expression:
    """The text between `${` and `}`: a plain reference when it is one, else an expression."""
    got = _PARTS.get(body)
    if got is not None:
        return got
    try:
        got = _parse_ref(body)
    except ExpressionError:
        if not (_EXPR_CHARS.intersection(body) or _EXPR_START_RE.match(body)):
            raise  # `${var.a b}`, `${nope.x}`: the reference grammar's message says more
        got = _parse_expression(body)
    _remember_part(body, got)
    return got


def _remember_part(body: str, part: Reference | Expression) -> None:
    if len(_PARTS) >= _PARTS_MAX:
        _PARTS.clear()
    _PARTS[body] = part


def part_refs(part: Reference | Expression) -> tuple[Reference, ...]:
    """The references a template part reads."""
    return part.refs if isinstance(part, Expression) else (part,)


_NESTING_CHARS = frozenset("\"'{")
_OUTSIDE_QUOTE_RE = re.compile(r"[\"'{}]")
_IN_QUOTE_RE = {'"': re.compile(r'["\\]'), "'": re.compile(r"['\\]")}


def _ref_end(s: str, start: int) -> int:
    """Index of the `}` closing a `${` whose body starts at `start`; quotes may hold a `}`, and
    an expression's map literals (`{"a": 1}`) nest braces."""
    end = s.find("}", start)
    if end >= 0 and not _NESTING_CHARS.intersection(s[start:end]):
        return end  # the common case: a reference, or an expression without quotes or maps
    quote = ""
    depth = 0
    i = start
    while True:
        # jump from one character that matters to the next (a regex search, not a Python loop)
        m = (_IN_QUOTE_RE[quote] if quote else _OUTSIDE_QUOTE_RE).search(s, i)
        if m is None:
            break
        c = m.group()
        i = m.end()
        if quote:
            if c == "\\":
                i += 1  # an escaped character, maybe the quote itself
            else:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "{":
            depth += 1
        elif depth == 0:
            return m.start()
        else:
            depth -= 1
    raise ExpressionError(f"unterminated `${{` in {s!r} (write `$${{` for a literal `${{`)")


@lru_cache(maxsize=65536)
def parse_template(s: str) -> Template:
    """Split a string into literal parts and references; cached, since plans repeat strings."""
    if "$" not in s:
        return (s,)
    parts: list[str | Reference | Expression] = []
    buf: list[str] = []
    i = 0
    n = len(s)
    while i < n:
        j = s.find("$", i)
        if j < 0:
            buf.append(s[i:])
            break
        buf.append(s[i:j])
        if s.startswith("$${", j):
            buf.append("${")
            i = j + 3
        elif s.startswith("${", j):
            end = _ref_end(s, j + 2)
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append(parse_part(s[j + 2 : end]))
            i = end + 1
        else:
            buf.append("$")
            i = j + 1
    if buf:
        literal = "".join(buf)
        if literal or not parts:
            parts.append(literal)
    return tuple(p for p in parts if p != "") or ("",)


def is_template(s: str) -> bool:
    """True if the string holds a reference or an escape, i.e. resolving may change it."""
    return "${" in s


def escape(value: Any) -> Any:
    """Make a resolved value safe to put back into a template (`${` -> `$${`), recursively."""
    if isinstance(value, str):
        return value.replace("${", "$${") if "${" in value else value
    if isinstance(value, dict):
        return {k: escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape(v) for v in value]
    return value


def strings_in(value: Any) -> Iterator[str]:
    """Every string in a value (inside dicts and lists), without paths: the fast walk."""
    # a string item is yielded here and only a container gets a generator of its own: loading a
    # plan walks every resource's properties several times
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            if isinstance(v, str):
                yield v
            elif isinstance(v, dict | list):
                yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, str):
                yield v
            elif isinstance(v, dict | list):
                yield from strings_in(v)


def path_of(value: Any, wanted: str) -> tuple[str | int, ...]:
    """The path of the first string in `value` that contains `wanted` (for error locations)."""
    for path, s in iter_strings(value):
        if wanted in s:
            return path
    return ()


def find_refs(value: Any) -> list[Reference]:
    """Every reference in a value (strings inside dicts and lists), in order of appearance."""
    out: list[Reference] = []
    _refs_into(value, out)
    return out


def _refs_into(value: Any, out: list[Reference]) -> None:
    # a plain recursive walk, no generators (twice as fast): run on every resource's properties
    if isinstance(value, str):
        if "${" in value:
            for p in parse_template(value):
                if isinstance(p, Reference):
                    out.append(p)
                elif isinstance(p, Expression):
                    out.extend(p.refs)
    elif isinstance(value, dict):
        for v in value.values():
            _refs_into(v, out)
    elif isinstance(value, list):
        for v in value:
            _refs_into(v, out)


def has_expressions(value: Any) -> bool:
    """True if any string in `value` holds a CEL expression (not only plain references)."""
    return any("${" in s and any(isinstance(p, Expression) for p in parse_template(s)) for s in strings_in(value))


def iter_strings(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string in a value with its path (for error locations)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from iter_strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from iter_strings(v, (*path, i))


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    import json

    return json.dumps(value, sort_keys=True, default=str)


def _evaluate(expr: Expression, lookup: Callable[[Reference], Any]) -> Any:
    from cloudorch.planfile.cel import evaluate  # the CEL runtime loads only for plans that use it

    return evaluate(expr, lookup)


def _resolve_string(s: str, lookup: Callable[[Reference], Any]) -> Any:
    parts = parse_template(s)
    if len(parts) == 1:
        only = parts[0]
        if isinstance(only, str):
            return only
        # exactly one reference or expression: keep the value's own type
        got = lookup(only) if isinstance(only, Reference) else _evaluate(only, lookup)
        return Unknown(s) if isinstance(got, Unknown) else got
    out: list[str] = []
    for p in parts:
        if isinstance(p, str):
            out.append(p)
            continue
        got = lookup(p) if isinstance(p, Reference) else _evaluate(p, lookup)
        if isinstance(got, Unknown) or contains_unknown(got):
            return Unknown(s)
        out.append(_render(got))
    return "".join(out)


def resolve(value: Any, lookup: Callable[[Reference], Any]) -> Any:
    """Replace every reference in `value` by `lookup(ref)` and unescape `$${`.

    A string that is exactly one `${ref}` becomes the looked-up value itself (a list stays a
    list); a mixed string is interpolated, and becomes `Unknown(whole string)` if any part is
    unknown. Containers are rebuilt only where something changed; they keep `Unknown` leaves.
    """
    if isinstance(value, str):
        return _resolve_string(value, lookup) if "$" in value else value
    if isinstance(value, dict):
        changed = False
        new: dict[Any, Any] = {}
        for k, v in value.items():
            r = resolve(v, lookup)
            changed = changed or r is not v
            new[k] = r
        return new if changed else value
    if isinstance(value, list):
        items = [resolve(v, lookup) for v in value]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return items
        return value
    return value


def resolve_partial(
    value: Any,
    lookup: Callable[[Reference], Any],
    roots: frozenset[str],
    memo: dict[Any, Any] | None = None,
) -> Any:
    """Resolve only references whose root is in `roots`; the result is still a template.

    Other references stay as their `${...}` text, literal `${` stay escaped as `$${`, and any
    `${` inside a substituted value is escaped, so a later `resolve` reads it as literal text.
    `memo`, shared by calls whose `lookup` gives the same values for every root but `each`,
    keeps what an expression without `each` came to, so many instances evaluate it once.
    """
    if isinstance(value, str):
        if "${" not in value:
            return value
        parts = parse_template(value)
        if not any(
            (isinstance(p, Reference) and _touches(p, roots)) or (isinstance(p, Expression) and _expr_touches(p, roots))
            for p in parts
        ):
            return value
        if len(parts) == 1:
            only = parts[0]
            if isinstance(only, Expression):
                got = _partial_expression(only, lookup, roots, memo)
                return got.text if isinstance(got, Expression) else escape(got)
            assert isinstance(only, Reference)
            if only.root not in roots:
                return only.bind(lookup).text
            got = lookup(only)
            return got.template if isinstance(got, Inline) else escape(got)
        out: list[str] = []
        for p in parts:
            if isinstance(p, str):
                out.append(p.replace("${", "$${"))
            elif isinstance(p, Expression):
                if not _expr_touches(p, roots):
                    out.append(p.text)
                    continue
                got = _partial_expression(p, lookup, roots, memo)
                if isinstance(got, Expression):
                    out.append(got.text)
                elif isinstance(got, Unknown) or contains_unknown(got):
                    raise ExpressionError(f"`{p.text}` is unknown where it must be known", p.text)  # pragma: no cover
                else:
                    out.append(_render(got).replace("${", "$${"))
            elif p.root in roots:
                got = lookup(p)
                if isinstance(got, Inline):
                    if not isinstance(got.template, str):
                        raise ExpressionError(
                            f"`{p.text}` is a map or list that reads resources: it cannot be part of a string", p.text
                        )
                    out.append(got.template)
                else:
                    out.append(_render(got).replace("${", "$${"))
            elif p.dynamic:
                out.append(p.bind(lookup).text if _touches(p, roots) else p.text)
            else:
                out.append(p.text)
        return "".join(out)
    if isinstance(value, dict):
        changed = False
        new: dict[Any, Any] = {}
        for k, v in value.items():
            r = resolve_partial(v, lookup, roots, memo)
            changed = changed or r is not v
            new[k] = r
        return new if changed else value
    if isinstance(value, list):
        items = [resolve_partial(v, lookup, roots, memo) for v in value]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return items
        return value
    return value


def _touches(ref: Reference, roots: frozenset[str]) -> bool:
    """True if resolving `roots` changes this reference (itself, or a dynamic index in it)."""
    return ref.root in roots or (bool(ref.dynamic) and any(r.root in roots for r in ref.inner_refs()))


def _expr_touches(expr: Expression, roots: frozenset[str]) -> bool:
    # an expression of literals alone is evaluated at the first chance, so its errors show early
    return not expr.refs or not roots.isdisjoint(expr.touched_roots)


#: an expression rewritten by `resolve_partial` -> the expression as the plan file wrote it
_ORIGINS: dict[str, str] = {}
#: an expression as written -> (file, where in it: computed on demand, only an error needs it)
_WHERE: dict[str, tuple[str, Callable[[], Any]]] = {}


def note_location(expr_text: str, where: Callable[[], Any], file: str = "") -> None:
    """Remember where an expression was written, for errors found when it is evaluated later: its
    first place in a file (a plan loaded later in the same process takes the entry over)."""
    got = _WHERE.get(expr_text)
    if got is None or got[0] != file:
        _WHERE[expr_text] = (file, where)


def note_origin(new_text: str, written: str) -> None:
    """Remember that expression `new_text` was made from `written` (by binding some values)."""
    _ORIGINS.setdefault(new_text, _ORIGINS.get(written, written))


def origin_of(expr_text: str) -> tuple[str, Any]:
    """(the expression as written, its location or None) for an expression, maybe rewritten."""
    original = _ORIGINS.get(expr_text, expr_text)
    got = _WHERE.get(original)
    return original, (got[1]() if got is not None else None)


def _partial_expression(
    expr: Expression, lookup: Callable[[Reference], Any], roots: frozenset[str], memo: dict[Any, Any] | None = None
) -> Any:
    """Evaluate an expression whose references are all in `roots`, or else write the values of
    those that are into its source as literals (the result is an `Expression` to finish later)."""
    if memo is None:
        return _partial_expression_now(expr, lookup, roots)
    if expr.text in memo:
        return memo[expr.text]
    if any(r.root == "each" or r.dynamic for r in expr.refs):
        return _partial_expression_now(expr, lookup, roots)
    # the same expression over many resources reading the same variables but other resources
    # (`${var.prod ? resources.X.id : 'n'}`) is rewritten alike: keep the rewrite by its shape
    shape = (expr.cel_source, tuple(r.text if r.root in roots else "" for r in expr.refs))
    rewrite = memo.get(shape)
    if rewrite is None:
        got = _partial_expression_now(expr, lookup, roots)
        if not isinstance(got, Expression) or any(r.root == "local" for r in expr.refs):
            memo[expr.text] = got
            return got
        kept_old = [i for i, r in enumerate(expr.refs) if r.root not in roots]
        memo[shape] = rewrite = (got.pieces, kept_old)
        memo[expr.text] = got
        return got
    pieces, kept_old = rewrite
    refs = tuple(expr.refs[i] for i in kept_old)
    body = "".join(p if isinstance(p, str) else refs[p].text[2:-1] for p in pieces)
    new = Expression("${" + body + "}", pieces, refs)
    note_origin(new.text, expr.text)
    _remember_part(body, new)
    return new


def _partial_expression_now(expr: Expression, lookup: Callable[[Reference], Any], roots: frozenset[str]) -> Any:
    refs = [r.bind(lookup) if r.dynamic and _touches(r, roots) else r for r in expr.refs]
    values = {i: lookup(r) for i, r in enumerate(refs) if r.root in roots}
    if len(values) == len(refs) and not any(isinstance(v, Inline) for v in values.values()):
        bound = Expression(expr.text, expr.pieces, tuple(refs))
        by_text = {r.text: values[i] for i, r in enumerate(refs)}
        return _evaluate(bound, lambda ref: by_text[ref.text])

    # the new expression is made from the pieces (not by scanning its text again): a value's
    # source joins the text around it, a reference still to resolve gets its new index
    pieces: list[str | int] = []
    kept: list[Reference] = []
    new_index: dict[int, int] = {}
    text_parts: list[str] = []
    for piece in expr.pieces:
        if isinstance(piece, str):
            written = piece
        elif piece in values:
            got = values[piece]
            written = f"({got.cel})" if isinstance(got, Inline) else cel_literal(got)
        else:
            if piece not in new_index:
                new_index[piece] = len(kept)
                kept.append(refs[piece])
            if text_parts:
                pieces.append("".join(text_parts))
                text_parts = []
            pieces.append(new_index[piece])
            continue
        text_parts.append(written)
    if text_parts:
        pieces.append("".join(text_parts))
    if any(isinstance(v, Inline) for v in values.values()):
        # an inlined local brings references of its own: those need the scanner
        body = "".join(p if isinstance(p, str) else kept[p].text[2:-1] for p in pieces)
        note_origin("${" + body + "}", expr.text)
        got = parse_part(body)
        if isinstance(got, Reference):  # pragma: no cover - a rewritten expression stays one
            return Expression(got.text, (0,), (got,))
        return got
    body = "".join(p if isinstance(p, str) else kept[p].text[2:-1] for p in pieces)
    new = Expression("${" + body + "}", tuple(pieces), tuple(kept))
    note_origin(new.text, expr.text)
    _remember_part(body, new)
    return new


class Inline:
    """What a lookup gives for a value that is still a template (a local that reads resources):
    `template` takes the reference's place in a template, `cel` (its CEL source) in an expression."""

    __slots__ = ("cel", "template")

    def __init__(self, template: Any) -> None:
        self.template = template
        self.cel = template_cel(template)


def template_cel(value: Any) -> str:
    """A template value (strings may hold `${...}`) as one CEL expression with the same value."""
    if isinstance(value, str):
        if "$" not in value:
            return cel_literal(value)
        parts = parse_template(value)
        if len(parts) == 1 and not isinstance(parts[0], str):
            return "(" + parts[0].text[2:-1] + ")"
        return " + ".join(
            cel_literal(p) if isinstance(p, str) else "string(" + p.text[2:-1] + ")" for p in parts
        )
    if isinstance(value, list):
        return "[" + ", ".join(template_cel(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{cel_literal(str(k))}: {template_cel(v)}" for k, v in value.items()) + "}"
    return cel_literal(value)


def cel_literal(value: Any) -> str:
    """A value as CEL source text (the inverse of evaluating it)."""
    import json
    import math

    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f'double("{value}")' if math.isinf(value) or math.isnan(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(cel_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{cel_literal(str(k))}: {cel_literal(v)}" for k, v in value.items()) + "}"
    raise ExpressionError(f"a {type(value).__name__} cannot be written in an expression")


def contains_unknown(value: Any) -> bool:
    """True if `value` is or holds an `Unknown` anywhere."""
    # map rather than a generator: called for every property of every resource of a plan
    if isinstance(value, dict):
        return any(map(contains_unknown, value.values()))
    if isinstance(value, list):
        return any(map(contains_unknown, value))
    return isinstance(value, Unknown)


def unknown_paths(value: dict[str, Any]) -> list[str]:
    """Dotted paths of the `Unknown` leaves of a mapping (list items as `.0`, `.1`)."""
    out: list[str] = []

    def walk(v: Any, prefix: str) -> None:
        if isinstance(v, Unknown):
            out.append(prefix)
        elif isinstance(v, dict):
            for k, item in v.items():
                walk(item, f"{prefix}.{k}" if prefix else str(k))
        elif isinstance(v, list):
            for i, item in enumerate(v):
                walk(item, f"{prefix}.{i}" if prefix else str(i))

    walk(value, "")
    return out


def navigate(value: Any, path: tuple[str | int, ...], text: str) -> Any:
    """Follow `path` into a value (dict keys, list indexes); raise ExpressionError if absent."""
    for step in path:
        if isinstance(value, Unknown):
            return value
        if isinstance(value, dict):
            if step in value:
                value = value[step]
            elif str(step) in value:
                value = value[str(step)]
            else:
                raise ExpressionError(f"`{text}`: no key {step!r}", text)
        elif isinstance(value, list) and isinstance(step, int):
            if not 0 <= step < len(value):
                raise ExpressionError(f"`{text}`: index {step} out of range (length {len(value)})", text)
            value = value[step]
        else:
            raise ExpressionError(f"`{text}`: cannot take {step!r} of a {type(value).__name__}", text)
    return value
