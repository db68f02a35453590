"""The functions plan expressions may call beyond CEL's own: strings, maps and `cidrsubnet`.

This module owns what each function does and which argument types it accepts (`SIGNATURES`,
read by `cloudorch.planfile.cel` to declare them). The functions are plain Python over plain
values (str, int, float, bool, None, list, dict); a wrong argument raises `FunctionError`, whose
message the expression's located error shows.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any


class FunctionError(ValueError):
    """A function was called with an argument it cannot take; the message says which and why."""


def _text(fn: str, value: Any) -> str:
    """A scalar as text (numbers and bools too, as Terraform's string conversion); else an error."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise FunctionError(f"{fn}: expected a string, got {_kind(value)}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int):
        return "an int"
    if isinstance(value, float):
        return "a double"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    return type(value).__name__


def join(items: list[Any], sep: str) -> str:
    """`join(["a", "b"], "-")` -> "a-b"; numbers and bools are written as text, null is an error."""
    return sep.join(_text("join", v) for v in items)


def split(s: str, sep: str) -> list[str]:
    """`split("a,b", ",")` -> ["a", "b"]; an empty string gives [] (Terraform gives [""]; CEL
    users expect an empty list to stay empty); an empty separator splits into characters."""
    if s == "":
        return []
    if sep == "":
        return list(s)
    return s.split(sep)


def lower(s: str) -> str:
    return s.lower()


def upper(s: str) -> str:
    return s.upper()


def replace(s: str, old: str, new: str) -> str:
    """Every occurrence of `old` replaced by `new`; an empty `old` is an error (it matches everywhere)."""
    if old == "":
        raise FunctionError("replace: the text to replace is empty")
    return s.replace(old, new)


_VERB_RE = re.compile(r"%(?:%|(-?)(\d*)(?:\.(\d+))?([sdvqtfx]))")


def format(fmt: str, args: Any) -> str:
    """printf-like: `%s` (text), `%d` (integer), `%f`/`%.2f` (number), `%t` (bool), `%q` (quoted),
    `%v` (any value as text), `%x` (hex integer), `%%`; width as in `%5s`, `%-5s`, `%03d`.

    `args` is one value or a list of them; the count must match the verbs."""
    values = args if isinstance(args, list) else [args]
    out: list[str] = []
    pos = 0
    used = 0
    for m in _VERB_RE.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        if m.group(0) == "%%":
            out.append("%")
            continue
        left, width, precision, verb = m.groups()
        if used >= len(values):
            raise FunctionError(f"format: {fmt!r} needs more than {len(values)} argument(s)")
        value = values[used]
        used += 1
        out.append(_pad(_verb(verb, value, precision), width, left == "-", verb in "dfx" and width.startswith("0")))
    if "%" in fmt[pos:]:
        raise FunctionError(f"format: {fmt!r} has an unknown verb at `{fmt[pos:][fmt[pos:].index('%') :][:3]}`")
    out.append(fmt[pos:])
    if used != len(values):
        raise FunctionError(f"format: {fmt!r} uses {used} argument(s), {len(values)} given")
    return "".join(out)


def _verb(verb: str, value: Any, precision: str | None) -> str:
    import json

    if verb == "s":
        return _text("format %s", value)
    if verb == "v":
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if verb == "q":
        return json.dumps(_text("format %q", value))
    if verb == "t":
        if not isinstance(value, bool):
            raise FunctionError(f"format %t: expected a bool, got {_kind(value)}")
        return "true" if value else "false"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FunctionError(f"format %{verb}: expected a number, got {_kind(value)}")
    if verb == "d":
        if isinstance(value, float) and not value.is_integer():
            raise FunctionError(f"format %d: {value} is not a whole number")
        return str(int(value))
    if verb == "x":
        if isinstance(value, float):
            raise FunctionError("format %x: expected an int")
        return f"{value:x}"
    return f"{float(value):.{int(precision) if precision else 6}f}"


def _pad(s: str, width: str, left: bool, zero: bool) -> str:
    if not width:
        return s
    w = int(width)
    if left:
        return s.ljust(w)
    if zero:
        sign = "-" if s.startswith("-") else ""
        return sign + s[len(sign) :].rjust(w - len(sign), "0")
    return s.rjust(w)


def merge(*maps: Any) -> dict[Any, Any]:
    """Maps merged left to right (a later key wins); `merge([m1, m2, ...])` merges a list of maps."""
    if len(maps) == 1 and isinstance(maps[0], list):
        maps = tuple(maps[0])
    out: dict[Any, Any] = {}
    for i, m in enumerate(maps):
        if m is None:
            continue  # a null (an optional map not set) merges as empty
        if not isinstance(m, dict):
            raise FunctionError(f"merge: argument {i + 1} is {_kind(m)}, not a map")
        out.update(m)
    return out


_MISSING: Any = object()


def lookup(m: dict[Any, Any], key: Any, default: Any = _MISSING) -> Any:
    """`lookup(map, key, default)`: the value at `key`, or `default` when the map has no such key."""
    if key in m:
        return m[key]
    if default is _MISSING:
        known = ", ".join(sorted(str(k) for k in m)[:10]) or "none"
        raise FunctionError(f"lookup: no key {key!r} (keys: {known}); pass a default as the third argument")
    return default


def keys(m: dict[Any, Any]) -> list[Any]:
    """The map's keys, sorted (as Terraform's `keys`, so the result does not depend on file order)."""
    return sorted(m, key=_sort_key)


def values(m: dict[Any, Any]) -> list[Any]:
    """The map's values, in the order of `keys(m)`."""
    return [m[k] for k in keys(m)]


def _sort_key(k: Any) -> tuple[int, Any]:
    return (0, k) if isinstance(k, int | float) and not isinstance(k, bool) else (1, str(k))


def cidrsubnet(prefix: str, newbits: int, netnum: int) -> str:
    """Terraform's `cidrsubnet`: subnet number `netnum` of `prefix` extended by `newbits` bits.

    `cidrsubnet("10.0.0.0/16", 8, 2)` -> "10.0.2.0/24"; IPv6 works the same way."""
    try:
        net = ipaddress.ip_network(prefix, strict=False)
    except ValueError as exc:
        raise FunctionError(f"cidrsubnet: {prefix!r} is not a CIDR prefix ({exc})") from None
    if isinstance(newbits, bool) or isinstance(netnum, bool):
        raise FunctionError("cidrsubnet: newbits and netnum are integers")
    if newbits < 0:
        raise FunctionError(f"cidrsubnet: newbits must not be negative, got {newbits}")
    new_prefix = net.prefixlen + newbits
    if new_prefix > net.max_prefixlen:
        raise FunctionError(
            f"cidrsubnet: {prefix} has {net.max_prefixlen - net.prefixlen} bits left, {newbits} asked for"
        )
    if not 0 <= netnum < (1 << newbits):
        raise FunctionError(f"cidrsubnet: netnum {netnum} does not fit in {newbits} bit(s) (0 to {(1 << newbits) - 1})")
    base = int(net.network_address) + (netnum << (net.max_prefixlen - new_prefix))
    return f"{ipaddress.ip_address(base) if net.version == 4 else ipaddress.IPv6Address(base)}/{new_prefix}"


#: the argument kinds of each function's overloads, for declaring them to CEL: "string", "int",
#: "list", "map", or "any" (every CEL value kind); each tuple is one overload
SIGNATURES: dict[str, tuple[tuple[Callable[..., Any], tuple[str, ...]], ...]] = {
    "join": ((join, ("list", "string")),),
    "split": ((split, ("string", "string")),),
    "format": ((format, ("string", "any")),),
    "lower": ((lower, ("string",)),),
    "upper": ((upper, ("string",)),),
    "replace": ((replace, ("string", "string", "string")),),
    "merge": (
        (merge, ("list",)),
        (merge, ("map", "map")),
        (merge, ("map", "map", "map")),
        (merge, ("map", "map", "map", "map")),
    ),
    "lookup": (
        (lookup, ("map", "string")),
        (lookup, ("map", "int")),
        (lookup, ("map", "string", "any")),
        (lookup, ("map", "int", "any")),
    ),
    "keys": ((keys, ("map",)),),
    "values": ((values, ("map",)),),
    "cidrsubnet": ((cidrsubnet, ("string", "int", "int")),),
}
