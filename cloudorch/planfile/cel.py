"""Evaluating the CEL expressions of plan files, on cel-expr-python (Google's CEL runtime).

This module owns the CEL environment (the functions of `cloudorch.planfile.functions` declared
with their overloads), a cache of compiled programs, and one rule for values known only after
apply: a reference whose value is `Unknown` is compiled as a call that fails with a marker, and
a result carrying that marker is `Unknown`. CEL's own error absorption then does the rest:
`false ? x : "a"` and `true || x` are known while `x` is not, anything else that reads `x` is
unknown. It never locates errors in files itself: `ExpressionEvalError` carries the place the
expression was noted at (`expressions.note_location`).

The runtime is imported on the first evaluation, so plans without expressions never load it.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cloudorch.errors import ConfigError, Location
from cloudorch.planfile.expressions import (
    Expression,
    ExpressionError,
    Reference,
    Unknown,
    contains_unknown,
    origin_of,
)
from cloudorch.planfile.functions import SIGNATURES, FunctionError

if TYPE_CHECKING:
    from cel_expr_python import cel as _cel

#: what an unknown reference turns into in the compiled source, and the marker its error carries
_UNKNOWN_CALL = "__unknown()"
_UNKNOWN_MARK = "cloudorch: value known only after apply"
#: cel-cpp prefixes its messages with a status code (`INVALID_ARGUMENT: ...`)
_STATUS_RE = re.compile(r"^[A-Z_]+: ")
#: cel-cpp's run-time wording of a type mismatch, reworded as its type checker says it
_NO_OVERLOAD_RE = re.compile(r"^No matching overloads found : (.+?)\((.*)\)$")
#: the hint every expression error carries
HINT = (
    "expressions are CEL (https://cel.dev): `a ? b : c`, `+`, `size(x)`, `has(x.f)`, `l.map(x, ...)`, "
    "and join, split, format, lower, upper, replace, merge, lookup, keys, values, cidrsubnet "
    '(see README, "Expressions"); CEL does not mix int and double: write double(n) or int(x)'
)


class ExpressionEvalError(ExpressionError, ConfigError):
    """An expression that does not compile or fails when evaluated; located where it was written."""

    def __init__(self, message: str, text: str, location: Location | None) -> None:
        ConfigError.__init__(self, message, hint=HINT, location=location)
        self.text = text


class _Environment:
    """The CEL environment, built once per process (declaring the overloads takes a few ms)."""

    def __init__(self) -> None:
        from cel_expr_python import cel

        self.cel = cel
        T = cel.Type
        self.error_type = T.ERROR
        kinds: dict[str, list[Any]] = {
            "string": [T.STRING],
            "int": [T.INT],
            "list": [T.List(T.DYN)],
            "map": [T.Map(T.DYN, T.DYN)],
            # a `dyn` parameter does not match concrete values at run time in cel-expr-python
            # 0.1: declare one overload per kind of value instead
            "any": [T.BOOL, T.INT, T.UINT, T.DOUBLE, T.STRING, T.BYTES, T.NULL, T.List(T.DYN), T.Map(T.DYN, T.DYN)],
        }
        decls = []
        for name, overloads in SIGNATURES.items():
            declared = []
            seen: set[str] = set()
            for impl, params in overloads:
                for combo in _combinations([kinds[k] for k in params]):
                    oid = f"{name}_" + "_".join(_type_id(t) for t in combo)
                    if oid in seen:
                        continue
                    seen.add(oid)
                    declared.append(cel.Overload(oid, T.DYN, list(combo), impl=_guarded(name, impl)))
            decls.append(cel.FunctionDecl(name, declared))
        decls.append(cel.FunctionDecl("__unknown", [cel.Overload("__unknown_", T.DYN, [], impl=_unknown_call)]))
        self.variables = T.DYN
        self._envs: dict[int, Any] = {}
        self._decls = decls
        self._lock = threading.Lock()

    def env(self, count: int) -> Any:
        """An environment declaring `_r0` .. `_r{count-1}` (cached per count)."""
        got = self._envs.get(count)
        if got is None:
            with self._lock:
                got = self._envs.get(count)
                if got is None:
                    got = self.cel.NewEnv(
                        variables={f"_r{i}": self.variables for i in range(count)}, functions=self._decls
                    )
                    self._envs[count] = got
        return got


def _type_id(t: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "_", t.name().lower()).strip("_")


def _combinations(options: list[list[Any]]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [()]
    for opts in options:
        out = [(*prefix, o) for prefix in out for o in opts]
    return out


def _guarded(name: str, impl: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        try:
            return impl(*args)
        except FunctionError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise FunctionError(f"{name}: {exc}") from None

    return call


def _unknown_call() -> Any:
    raise FunctionError(_UNKNOWN_MARK)


_environment: _Environment | None = None
_environment_lock = threading.Lock()


def _env() -> _Environment:
    global _environment
    if _environment is None:
        with _environment_lock:
            if _environment is None:
                _environment = _Environment()
    return _environment


@lru_cache(maxsize=16384)
def _program(source: str, count: int) -> Any:
    """The compiled program of a source with `count` reference variables (cached: plans repeat
    the same expression over many resources, with only the references differing)."""
    return _env().env(count).compile(source)


#: sources that compiled: a plan checks each string per resource, and most repeat
_COMPILED: set[tuple[str, int]] = set()
#: what an expression gives when every value it reads is unknown: that depends on its CEL source
#: alone, whichever references those are (often `Unknown`, but `false && x` is false); type
#: checks and the planner ask it of every instance, which mostly share one source
_ALL_UNKNOWN: dict[tuple[str, int], Any] = {}
_MEMO_MAX = 100_000


def compile_check(expr: Expression) -> None:
    """Compile an expression now (at load), so a syntax or type error is reported before planning."""
    key = (expr.cel_source, len(expr.refs))
    if key in _COMPILED:
        return
    try:
        _program(*key)
    except RuntimeError as exc:
        raise _error(expr, _compile_message(str(exc))) from None
    if len(_COMPILED) >= _MEMO_MAX:
        _COMPILED.clear()
    _COMPILED.add(key)


def evaluate(expr: Expression, lookup: Callable[[Reference], Any]) -> Any:
    """The value of an expression; `Unknown(expr.text)` when it reads a value known only after apply."""
    values: dict[str, Any] = {}
    unknown: set[int] = set()
    for i, ref in enumerate(expr.refs):
        try:
            value = lookup(ref)
        except ConfigError as exc:
            if exc.location is None:  # the engine's lookup knows the target, not where it was read
                exc.location = origin_of(expr.text)[1]
            raise
        if isinstance(value, Unknown) or contains_unknown(value):
            unknown.add(i)
        else:
            values[f"_r{i}"] = value
    everything_unknown = bool(unknown) and len(unknown) == len(expr.refs)
    memo_key = (expr.cel_source, len(expr.refs))
    if everything_unknown and memo_key in _ALL_UNKNOWN:
        got = _ALL_UNKNOWN[memo_key]
        if got is _ALL_UNKNOWN:
            return Unknown(expr.text)
        return copy.deepcopy(got) if isinstance(got, list | dict) else got
    source = expr.source(lambda i: _UNKNOWN_CALL if i in unknown else f"_r{i}") if unknown else expr.cel_source
    try:
        program = _program(source, len(expr.refs))
    except RuntimeError as exc:
        raise _error(expr, _compile_message(str(exc))) from None
    try:
        result = program.eval(data=values)
    except (TypeError, ValueError, RuntimeError) as exc:  # a value CEL cannot hold
        raise _error(expr, f"cannot evaluate: {exc}") from None
    if result.type() == _env().error_type:
        message = _STATUS_RE.sub("", str(result.value()))
        message = _NO_OVERLOAD_RE.sub(r"found no matching overload for '\1' applied to '(\2)'", message)
        if _UNKNOWN_MARK in message:
            if everything_unknown:
                _memo_all_unknown(memo_key, _ALL_UNKNOWN)  # itself stands for "unknown"
            return Unknown(expr.text)
        raise _error(expr, message)
    value = result.plain_value()
    if everything_unknown:
        _memo_all_unknown(memo_key, value)
    return value


def _memo_all_unknown(key: tuple[str, int], value: Any) -> None:
    if len(_ALL_UNKNOWN) >= _MEMO_MAX:
        _ALL_UNKNOWN.clear()
    _ALL_UNKNOWN[key] = value


def _compile_message(raw: str) -> str:
    # "INVALID_ARGUMENT: ERROR: <input>:1:6: found no ... \n | src \n | ..^" -> the first line,
    # with the column (within the expression) kept
    first = _STATUS_RE.sub("", raw.strip().splitlines()[0]).removeprefix("ERROR: ").strip()
    first = re.sub(r"\s*\[[A-Z_]+\]$", "", first)
    return re.sub(r"^<input>:(\d+):(\d+): ", r"at column \2: ", first)


def _error(expr: Expression, message: str) -> ExpressionEvalError:
    original, location = origin_of(expr.text)
    return ExpressionEvalError(f"`{original}`: {message}", original, location)


def unknown_marker() -> str:
    """The text of the error an unknown value raises inside CEL (for tests)."""
    return _UNKNOWN_MARK


__all__ = ["HINT", "ExpressionEvalError", "compile_check", "evaluate", "unknown_marker"]

if TYPE_CHECKING:  # pragma: no cover
    _ = _cel
