"""Choosing variable values: default < `--var-file`s (in order) < `--var`.

This module owns parsing `--var NAME=TEXT` by the variable's declared type, reading variable
files (YAML or JSON), and type-checking every value with a location. It does not resolve
`${var.*}` references; `cloudorch.planfile.load` does, with the values chosen here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from cloudorch.errors import ConfigError, Location
from cloudorch.planfile.limits import InputLimits, raise_hint
from cloudorch.planfile.model import VariableSpec, VariableType
from cloudorch.planfile.source import SourceMap, parse_yaml, read_bounded

#: the text of every sensitive variable value chosen in this process (strings of 6 characters or
#: more): the CLI masks them in anything it prints, a last line of defence behind the masking of
#: changesets, outputs and messages
_SECRETS: set[str] = set()
_SECRET_MIN = 6


def known_secrets() -> frozenset[str]:
    """The sensitive variable values chosen so far in this process (see `_SECRETS`)."""
    return frozenset(_SECRETS)


def remember_secret(value: Any) -> None:
    """Add the text of a sensitive value (a variable's, or a sensitive `${env.*}`'s) to `_SECRETS`."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, str) and len(item) >= _SECRET_MIN:
            _SECRETS.add(item)
        elif isinstance(item, int | float) and not isinstance(item, bool) and len(str(item)) >= _SECRET_MIN:
            _SECRETS.add(str(item))


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def matches(kind: VariableType, value: Any) -> bool:
    """True if `value` has the declared type (null is allowed: it means "unset")."""
    return kind == "any" or value is None or _type_of(value) == kind


def parse_cli_value(kind: VariableType, text: str) -> Any:
    """Parse the text of `--var NAME=TEXT` by the declared type; ValueError if it does not fit."""
    if kind == "string":
        return text
    if kind == "bool":
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"{text!r} is not a bool (use true or false)")
    if kind == "number":
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"{text!r} is not a number") from None
    try:
        # the same bounded loader as plan files: `--var` text can be an alias bomb too
        value, _ = parse_yaml(text, "--var")
    except ConfigError as exc:
        if kind == "any" and exc.message.startswith("YAML syntax error"):
            return text
        raise ValueError(f"{text!r} is not valid YAML/JSON flow text ({exc.message})") from None
    if kind == "any":
        return value
    if not matches(kind, value):
        example = "[a, b]" if kind == "list" else "{k: v}"
        raise ValueError(f"{text!r} is not a {kind} (write it as flow text, e.g. {example})")
    return value


def _read_var_file(path: Path) -> tuple[dict[str, Any], SourceMap | None]:
    limits = InputLimits.from_env()
    try:
        text = read_bounded(str(path), limits)
    except OSError as exc:
        raise ConfigError(
            f"cannot read variable file: {exc.strerror}",
            location=Location(str(path)),
            hint="check the path given to --var-file",
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("variable file is not UTF-8 text", location=Location(str(path))) from exc
    try:
        data, source_map = parse_yaml(text, str(path), limits)
    except ConfigError as exc:
        if path.suffix.lower() != ".json" or not exc.message.startswith("YAML syntax error"):
            raise
        # JSON that YAML cannot read (tabs in indentation): no positions, but still usable
        try:
            data, source_map = json.loads(text), None
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"JSON syntax error: {exc.msg}", location=Location(str(path), exc.lineno, exc.colno)
            ) from exc
        except RecursionError:
            data = _TOO_DEEP
        if data is _TOO_DEEP or _depth(data) > limits.max_depth:
            raise ConfigError(
                f"JSON nested more than {limits.max_depth} levels deep",
                location=Location(str(path), 1, 1),
                hint="flatten the structure; " + raise_hint("max_depth"),
            ) from None
    if data is None:
        return {}, source_map
    if not isinstance(data, dict):
        raise ConfigError(
            "a variable file must be a mapping of variable names to values",
            location=Location(str(path), 1, 1),
            hint="write e.g. `region: eu-west-1`",
        )
    return data, source_map


_TOO_DEEP = object()


def _depth(value: Any) -> int:
    """How deeply containers nest in `value` (iteratively: the value may be deeper than the stack)."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth + 1)
            todo.extend((c, depth + 1) for c in children)
    return deepest


#: set while a plan is loaded only to find and read its state (`cloudorch ui`, `fleet status`, another
#: stack's outputs): a required variable nobody gave is then unknown instead of an error
_MISSING_UNKNOWN: ContextVar[bool] = ContextVar("cloudorch_missing_variables_unknown", default=False)


@contextmanager
def missing_variables_unknown() -> Iterator[None]:
    """Within: a required variable without a value is `Unknown`, not an error (reading state only)."""
    token = _MISSING_UNKNOWN.set(True)
    try:
        yield
    finally:
        _MISSING_UNKNOWN.reset(token)


def choose_values(
    declared: Mapping[str, VariableSpec],
    *,
    vars: Mapping[str, str],
    var_files: Sequence[Path],
    plan_source: SourceMap,
) -> dict[str, Any]:
    """The value of every declared variable, type-checked; errors name where a value came from."""
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if not spec.required:
            if not matches(spec.type, spec.default):
                raise _mismatch(name, spec, spec.default, plan_source.location(("variables", name, "default")))
            values[name] = spec.default
    for path in var_files:
        data, source_map = _read_var_file(Path(path))
        for name, value in data.items():
            where = source_map.location((name,)) if source_map is not None else Location(str(path), field=str(name))
            found = declared.get(str(name))
            if found is None:
                raise ConfigError(
                    f"variable file sets undeclared variable `{name}`",
                    hint=_declare_hint(str(name), declared),
                    location=where,
                )
            if not matches(found.type, value):
                raise _mismatch(str(name), found, value, where)
            values[str(name)] = value
    for name, text in vars.items():
        where = Location("<command line>", field=f"--var {name}")
        wanted = declared.get(name)
        if wanted is None:
            raise ConfigError(
                f"--var sets undeclared variable `{name}`", hint=_declare_hint(name, declared), location=where
            )
        try:
            values[name] = parse_cli_value(wanted.type, text)
        except ValueError as exc:
            # the parse error quotes the text: never for a secret
            if wanted.sensitive:
                remember_secret(text)
            why = f"the value is not a {wanted.type}" if wanted.sensitive else str(exc)
            raise ConfigError(
                f"--var {name}: {why}",
                hint=f"variable `{name}` is declared as type {wanted.type}",
                location=where,
            ) from None
    for name, spec in declared.items():
        if spec.sensitive and name in values:
            remember_secret(values[name])
        if name not in values and _MISSING_UNKNOWN.get():
            from cloudorch.planfile.expressions import Unknown

            values[name] = Unknown(f"var.{name}")
        elif name not in values:
            raise ConfigError(
                f"variable `{name}` has no value" + (f" ({spec.description})" if spec.description else ""),
                hint=f"pass --var {name}=... or set it in a --var-file, or give it a default",
                location=plan_source.location(("variables", name)),
            )
    return values


def _mismatch(name: str, spec: VariableSpec, value: Any, where: Location) -> ConfigError:
    shown = "" if spec.sensitive else f": {value!r}"  # never echo a secret into logs
    return ConfigError(
        f"variable `{name}` is declared as {spec.type} but got a {_type_of(value)}{shown}",
        hint=f"give a {spec.type} value, or change `type:` of variable `{name}`",
        location=where,
    )


def _declare_hint(name: str, declared: Mapping[str, VariableSpec]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(declared), n=1, cutoff=0.6)
    if close:
        return f"did you mean `{close[0]}`?"
    return f"declare it in the plan under `variables: {{{name}: {{type: string}}}}`"
