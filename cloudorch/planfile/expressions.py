"""References inside plan file strings: `${var.x}`, `${resources.web[eu].arn}`, `$${` for a literal.

This module owns the small template grammar of plan files (parse, find, resolve) and the `Unknown`
marker for values known only after apply. It never evaluates code and knows nothing of files:
errors are `ExpressionError`s that the caller turns into a located `ConfigError`.

Grammar of the text between `${` and `}`::

    ref     := ROOT step*
    step    := "." NAME | "[" (INT | '"' chars '"' | "'" chars "'" | BARE) "]"

A `.NAME` made only of digits is a list index, like `[0]`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

#: roots a reference may start with; `stage` and `release` are bound per release stage by
#: `expand.bind_stage` (`${stage.name}`, `${stage.vars.X}`, `${release.version}`, `${release.X}`);
#: `data` is read at plan (`cloudorch.engine.datasources`)
ROOTS = frozenset({"var", "resources", "env", "each", "stage", "release", "data"})

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


#: a parsed template: literal text and references, in order
Template = tuple[str | Reference, ...]


@lru_cache(maxsize=65536)
def _parse_ref(body: str) -> Reference:
    text = "${" + body + "}"
    m = _ROOT_RE.match(body)
    if m is None:
        raise ExpressionError(f"`{text}` is not a reference (expected e.g. `${{var.name}}`)")
    root = m.group(1)
    if root not in ROOTS:
        roots = ", ".join(sorted(ROOTS))
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


def _ref_end(s: str, start: int) -> int:
    """Index of the `}` closing a `${` whose body starts at `start`; quotes may hold a `}`."""
    quote = ""
    for i in range(start, len(s)):
        c = s[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "}":
            return i
    raise ExpressionError(f"unterminated `${{` in {s!r} (write `$${{` for a literal `${{`)")


@lru_cache(maxsize=65536)
def parse_template(s: str) -> Template:
    """Split a string into literal parts and references; cached, since plans repeat strings."""
    if "$" not in s:
        return (s,)
    parts: list[str | Reference] = []
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
            parts.append(_parse_ref(s[j + 2 : end]))
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
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
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
    for s in strings_in(value):
        if "${" in s:
            out.extend(p for p in parse_template(s) if isinstance(p, Reference))
    return out


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


def _resolve_string(s: str, lookup: Callable[[Reference], Any]) -> Any:
    parts = parse_template(s)
    if len(parts) == 1:
        only = parts[0]
        if isinstance(only, Reference):
            got = lookup(only)  # exactly one reference: keep the value's own type
            return Unknown(s) if isinstance(got, Unknown) else got
        return only
    out: list[str] = []
    for p in parts:
        if isinstance(p, str):
            out.append(p)
            continue
        got = lookup(p)
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


def resolve_partial(value: Any, lookup: Callable[[Reference], Any], roots: frozenset[str]) -> Any:
    """Resolve only references whose root is in `roots`; the result is still a template.

    Other references stay as their `${...}` text, literal `${` stay escaped as `$${`, and any
    `${` inside a substituted value is escaped, so a later `resolve` reads it as literal text.
    """
    if isinstance(value, str):
        if "${" not in value:
            return value
        parts = parse_template(value)
        if not any(isinstance(p, Reference) and _touches(p, roots) for p in parts):
            return value
        if len(parts) == 1:
            only = parts[0]
            assert isinstance(only, Reference)
            return escape(lookup(only)) if only.root in roots else only.bind(lookup).text
        out: list[str] = []
        for p in parts:
            if isinstance(p, str):
                out.append(p.replace("${", "$${"))
            elif p.root in roots:
                out.append(_render(lookup(p)).replace("${", "$${"))
            elif p.dynamic:
                out.append(p.bind(lookup).text if _touches(p, roots) else p.text)
            else:
                out.append(p.text)
        return "".join(out)
    if isinstance(value, dict):
        changed = False
        new: dict[Any, Any] = {}
        for k, v in value.items():
            r = resolve_partial(v, lookup, roots)
            changed = changed or r is not v
            new[k] = r
        return new if changed else value
    if isinstance(value, list):
        items = [resolve_partial(v, lookup, roots) for v in value]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return items
        return value
    return value


def _touches(ref: Reference, roots: frozenset[str]) -> bool:
    """True if resolving `roots` changes this reference (itself, or a dynamic index in it)."""
    return ref.root in roots or (bool(ref.dynamic) and any(r.root in roots for r in ref.inner_refs()))


def contains_unknown(value: Any) -> bool:
    """True if `value` is or holds an `Unknown` anywhere."""
    if isinstance(value, Unknown):
        return True
    if isinstance(value, dict):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_unknown(v) for v in value)
    return False


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
