"""Loading a plan file: YAML -> validated models -> `PlanSpec` with variables chosen.

This module owns turning every way a plan file can be wrong into one located `ConfigError`
(file, line, column, field path, hint): syntax, version, unknown keys, wrong types, bad
references to variables, env vars, resources and `each`. Resource types are checked later by
`cloudorch.planfile.typecheck`, which needs the provider registry.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from cloudorch.errors import ConfigError, Location, did_you_mean
from cloudorch.planfile.blocks import check_data_ref, load_data, load_imports, load_moves
from cloudorch.planfile.conditional import disabled_instances
from cloudorch.planfile.expressions import (
    Expression,
    ExpressionError,
    Reference,
    navigate,
    note_location,
    parse_template,
    path_of,
    resolve,
    resolve_partial,
)
from cloudorch.planfile.limits import InputLimits
from cloudorch.planfile.locals import Locals, compute_locals
from cloudorch.planfile.model import (
    NAME_PATTERN,
    PROVIDER_KEY_PATTERN,
    RESOURCE_KEYS,
    TOP_LEVEL_KEYS,
    Lifecycle,
    OutputSpec,
    PlanFileModel,
    PlanSpec,
    VariableSpec,
)
from cloudorch.planfile.source import FieldPath, SourceMap, dotted, parse_yaml, paused_gc, read_bounded
from cloudorch.planfile.stackref import StackOutput, StackReader, StackReadError
from cloudorch.planfile.variables import choose_values, remember_secret

_NAME_RE = re.compile(NAME_PATTERN)
_PROVIDER_KEY_RE = re.compile(PROVIDER_KEY_PATTERN)
#: a plan's `name:` and its stage names become state keys and file names (`<name>.json`,
#: `<name>.<stage>.json`, the ledger `<name>..release`): no `/`, no `..`, no control characters
_PLAN_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_STAGE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$")
PLAN_NAME_HINT = (
    "a plan name holds letters, digits, `_`, `-` and `.` (up to 100, not starting with `.` or `-`, "
    "no `..`, not ending with `.`): it names state files"
)
STAGE_NAME_HINT = (
    "a stage name holds letters, digits, `_` and `-` (up to 63, not starting with `-`): it names state files"
)
#: what a template resolves at load: variables, env vars, locals and other stacks' outputs
_LOAD_ROOTS = frozenset({"var", "env", "local", "stacks"})
_FORBIDDEN_KEY_CHARS = frozenset("[]\"'")
_SYNTAX_HINT = "references look like `${var.name}` or `${resources.web.arn}`; write `$${` for a literal `${`"

#: what `locals:` may read
_LOCAL_SCOPE = frozenset({"var", "env", "local", "resources"})

_FIELDS_BY_MODEL: dict[str, tuple[str, ...]] = {
    "top": TOP_LEVEL_KEYS,
    "resource": RESOURCE_KEYS,
    "variable": tuple(VariableSpec.model_fields),
    "lifecycle": tuple(Lifecycle.model_fields),
    "output": tuple(OutputSpec.model_fields),
}


def load_plan(
    path: Path,
    *,
    vars: Mapping[str, str] | None = None,
    var_files: Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
    stacks: StackReader | None = None,
) -> PlanSpec:
    """Read, validate and prepare a plan file; raise a located ConfigError on any bad input.

    `stacks` reads the outputs of the stacks the plan names under `stacks:` (see `stackref`)."""
    path = Path(path)
    try:
        text = read_bounded(str(path), InputLimits.from_env())  # a huge file is refused unread
    except OSError as exc:
        raise ConfigError(
            f"cannot read plan file: {exc.strerror}",
            location=Location(str(path)),
            hint="pass the path of a plan file, e.g. `cloudorch validate plans/quickstart.yaml`",
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("plan file is not UTF-8 text", location=Location(str(path))) from exc
    return load_plan_text(text, path, vars=vars or {}, var_files=var_files, env=env, stacks=stacks)


def load_plan_text(
    text: str,
    path: Path,
    *,
    vars: Mapping[str, str] | None = None,
    var_files: Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
    stacks: StackReader | None = None,
) -> PlanSpec:
    """Like `load_plan`, for text already read (tests, stdin)."""
    with paused_gc():
        return _load(text, path, vars=vars or {}, var_files=var_files, env=env, stacks=stacks)


def _load(
    text: str,
    path: Path,
    *,
    vars: Mapping[str, str],
    var_files: Sequence[Path],
    env: Mapping[str, str] | None,
    stacks: StackReader | None = None,
) -> PlanSpec:
    data, source_map = parse_yaml(text, str(path))
    model = _validate_model(data, source_map)
    _check_names(model, source_map)
    values = choose_values(model.variables, vars=vars or {}, var_files=var_files, plan_source=source_map)
    modules_digest = ""
    module_outputs: dict[str, dict[str, Any]] = {}
    if model.modules:  # module instances join the plan as resources with module addresses
        from cloudorch.planfile.modules import expand_modules

        model, source_map, modules_digest, module_outputs = expand_modules(
            model, source_map, path, values, os.environ if env is None else env
        )
    checker = _ReferenceChecker(model, values, os.environ if env is None else env, source_map)
    checker.stack_reader = stacks
    checker.base_dir = path.parent
    checker.check_all()
    plan = PlanSpec(
        version=model.version,
        name=model.name,
        variables=model.variables,
        providers={},
        resources=model.resources,
        outputs={},
        stages=None,
        release=None,
        policies=None,
        backend=None,
        path=path,
        text=text,
        variable_values=values,
        env_values=checker.env_values,
        sensitive_env=frozenset(model.sensitive_env),
        stack_values=checker.stack_values,
        stack_secrets=frozenset(checker.stack_secrets),
        source_map=source_map,
        locals=model.locals,
        local_values=checker.locals,
        modules_digest=modules_digest,
        module_outputs=module_outputs,
    )
    lookup = checker.lookup
    plan.providers = {k: resolve(v, lookup) for k, v in model.providers.items()}
    plan.backend = resolve(model.backend, lookup)
    plan.outputs = {
        k: o.model_copy(update={"value": _resolve_located(o.value, lookup, source_map, ("outputs", k))})
        for k, o in model.outputs.items()
    }
    plan.stages = resolve_partial(model.stages, lookup, _LOAD_ROOTS)
    plan.release = resolve_partial(model.release, lookup, _LOAD_ROOTS)
    plan.policies = resolve_partial(model.policies, lookup, _LOAD_ROOTS)
    plan.for_each_keys = checker.for_each_keys
    plan.disabled = disabled_instances(plan)
    plan.data = load_data(model.data, lookup, plan.location)
    plan.moves = load_moves(model.moved, plan.location)
    plan.imports = load_imports(model.imports, model.resources, checker.lookup_each, plan.location)
    plan.notifications = resolve(model.notifications, lookup)
    return plan


def _resolve_located(value: Any, lookup: Any, source_map: SourceMap, base: FieldPath) -> Any:
    try:
        return resolve_partial(value, lookup, _LOAD_ROOTS)
    except ConfigError:
        raise
    except ExpressionError as exc:
        raise ConfigError(
            str(exc), location=source_map.location((*base, *path_of(value, exc.text))) if exc.text else None
        ) from None


# --------------------------------------------------------------------------- shape


def _validate_model(data: Any, source_map: SourceMap) -> PlanFileModel:
    if data is None:
        raise ConfigError(
            "plan file is empty", location=Location(source_map.file, 1, 1), hint="start it with `version: 1`"
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"a plan file must be a mapping, not a {type(data).__name__}",
            location=source_map.location(()),
            hint="start it with `version: 1`, then `resources:`",
        )
    if "version" not in data:
        raise ConfigError(
            "plan file has no `version`", location=source_map.location(()), hint="add `version: 1` at the top"
        )
    if data["version"] != 1 or isinstance(data["version"], bool):
        raise ConfigError(
            f"unsupported plan file version {data['version']!r}",
            location=source_map.location(("version",)),
            hint="this cloudorch reads `version: 1`",
        )
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(
                f"unknown top-level key `{key}`",
                location=source_map.location((key,)),
                hint=did_you_mean(str(key), TOP_LEVEL_KEYS) or "known keys: " + ", ".join(TOP_LEVEL_KEYS),
            )
    try:
        return PlanFileModel.model_validate(data)
    except ValidationError as exc:
        raise _from_validation_error(exc.errors()[0], source_map, len(exc.errors())) from None


def _model_of(loc: FieldPath) -> str | None:
    """Which model a pydantic error location points into (for did-you-mean on unknown fields)."""
    if len(loc) == 1:
        return "top"
    if len(loc) == 3 and loc[0] == "resources":
        return "resource"
    if len(loc) == 4 and loc[0] == "resources" and loc[2] == "lifecycle":
        return "lifecycle"
    if len(loc) == 3 and loc[0] == "variables":
        return "variable"
    if len(loc) == 3 and loc[0] == "outputs":
        return "output"
    return None


_TYPE_WORDS = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "an integer",
    "float_type": "a number",
    "dict_type": "a mapping",
    "list_type": "a list",
    "literal_error": None,
}


def _from_validation_error(err: ErrorDetails, source_map: SourceMap, count: int = 1) -> ConfigError:
    loc: FieldPath = tuple(err["loc"])
    location = source_map.location(loc)
    kind = err["type"]
    more = f" (and {count - 1} more error{'s' if count > 2 else ''})" if count > 1 else ""
    field = dotted(loc)
    if kind == "extra_forbidden":
        model = _model_of(loc)
        known = _FIELDS_BY_MODEL.get(model or "", ())
        where = f"resource `{loc[1]}`" if model == "resource" else f"`{dotted(loc[:-1])}`"
        return ConfigError(
            f"unknown field `{loc[-1]}` in {where}{more}",
            location=location,
            hint=did_you_mean(str(loc[-1]), known) or ("known fields: " + ", ".join(known) if known else None),
        )
    if kind == "missing":
        return ConfigError(
            f"missing required field `{loc[-1]}` in `{dotted(loc[:-1])}`{more}",
            location=source_map.location(loc[:-1]),
            hint=f"add `{loc[-1]}:`",
        )
    want = _TYPE_WORDS.get(kind)
    if want:
        got = _describe(err.get("input"))
        return ConfigError(
            f"`{field}` must be {want}, got {got}{more}",
            location=location,
            hint="quote a value to make it a string" if want == "a string" else f"write {want} here",
        )
    hint = "use one of the values listed" if kind in ("literal_error", "enum") else None
    return ConfigError(f"`{field}`: {err['msg']}{more}", location=location, hint=hint)


def for_each_keys(
    value: Any,
    owner: str,
    *,
    describe: Callable[[Any], str],
    location: Location,
    item_location: Callable[[int], Location] | None = None,
) -> dict[str, Any]:
    """The instance keys a for_each value gives (a list of strings or a mapping), checked: each key
    names an instance, so it is unique, non-empty and holds no brackets or quotes. `owner` names
    what has the for_each in messages (`` `web` ``, ``module `net` ``)."""
    at = item_location or (lambda _i: location)
    keys: dict[str, Any] = {}
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(
                    f"for_each of {owner} must list strings, item {i} is {describe(item)}",
                    location=at(i),
                    hint="quote the item, or use a mapping of key -> value",
                )
            if item in keys:
                raise ConfigError(
                    f"for_each of {owner} lists `{item}` twice",
                    location=at(i),
                    hint="each key must be unique: it names an instance",
                )
            keys[item] = item
    elif isinstance(value, dict):
        keys = {str(k): v for k, v in value.items()}
    else:
        raise ConfigError(
            f"for_each of {owner} must be a list of strings or a mapping, got {describe(value)}",
            location=location,
            hint='write e.g. `for_each: [eu, us]` or `for_each: "${var.regions}"`',
        )
    for key in keys:
        if not key or _FORBIDDEN_KEY_CHARS & set(key):
            raise ConfigError(
                f"for_each key {key!r} of {owner} cannot name an instance",
                location=location,
                hint="keys are non-empty and hold no brackets or quotes",
            )
    return keys


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a bool ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _check_names(model: PlanFileModel, source_map: SourceMap) -> None:
    name = model.name
    if name is not None and (not _PLAN_NAME_RE.match(name) or ".." in name or name.endswith(".")):
        raise ConfigError(
            f"invalid plan name {_shown(name)}", location=source_map.location(("name",)), hint=PLAN_NAME_HINT
        )
    if isinstance(model.stages, Mapping):
        for stage in model.stages:
            if not isinstance(stage, str) or not _STAGE_NAME_RE.match(stage):
                raise ConfigError(
                    f"invalid stage name {_shown(stage)}",
                    location=source_map.location(("stages", stage)),
                    hint=STAGE_NAME_HINT,
                )
    for section, names in (
        ("resources", model.resources),
        ("variables", model.variables),
        ("outputs", model.outputs),
        ("locals", model.locals),
    ):
        for name in names:
            if not _NAME_RE.match(name):
                raise ConfigError(
                    f"invalid name `{name}` in {section}",
                    location=source_map.location((section, name)),
                    hint="names start with a letter or `_` and hold letters, digits, `_` and `-`",
                )
    for key in model.providers:
        if not _PROVIDER_KEY_RE.match(key):
            raise ConfigError(
                f"invalid provider block key `{key}`",
                location=source_map.location(("providers", key)),
                hint="write the provider name (`aws`), or an alias like `aws.west`",
            )
    for name, spec in model.resources.items():
        prefix = spec.type.partition(".")[0]
        if spec.provider is None:
            continue
        if spec.provider.partition(".")[0] != prefix:
            raise ConfigError(
                f"resource `{name}` of type {spec.type} cannot use provider block `{spec.provider}`",
                location=source_map.location(("resources", name, "provider")),
                hint=f"use a `{prefix}` block such as `{prefix}` or `{prefix}.<alias>`",
            )
        if spec.provider not in model.providers and "." in spec.provider:
            raise ConfigError(
                f"resource `{name}` uses provider block `{spec.provider}`, which is not declared",
                location=source_map.location(("resources", name, "provider")),
                hint=did_you_mean(spec.provider, list(model.providers))
                or f"add it under `providers:`, e.g. `{spec.provider}: {{...}}`",
            )


def _shown(value: Any) -> str:
    # repr escapes control characters, so a hostile name cannot act on the terminal
    return repr(value)[:120]


# --------------------------------------------------------------------------- references


def _templates_in(value: Any) -> list[str]:
    """The strings holding a `$` in a value (inside dicts and lists), in `strings_in` order.

    Walked with a stack rather than nested generators: this runs on every resource's properties.
    """
    out: list[str] = []
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            if "$" in item:
                out.append(item)
        elif isinstance(item, dict):
            todo.extend(reversed(item.values()))
        elif isinstance(item, list):
            todo.extend(reversed(item))
    return out


class _LazyPath:
    """Where a string sits under `base`; searched for only when an error needs it."""

    __slots__ = ("base", "text", "value")

    def __init__(self, base: FieldPath, value: Any, text: str) -> None:
        self.base, self.value, self.text = base, value, text

    def path(self) -> FieldPath:
        return (*self.base, *path_of(self.value, self.text))


class _ReferenceChecker:
    """Checks every `${...}` of a plan against its scope, and resolves `var`/`env`/for_each."""

    def __init__(
        self,
        model: PlanFileModel,
        values: dict[str, Any],
        env: Mapping[str, str],
        source_map: SourceMap,
    ) -> None:
        self.model = model
        self.values = values
        self.env = env
        self.source_map = source_map
        self.env_values: dict[str, str] = {}
        self.stack_reader: StackReader | None = None
        self.base_dir = Path(".")
        self.stack_values: dict[str, Any] = {}
        self.stack_secrets: set[tuple[str, str]] = set()
        self._stack_outputs: dict[str, Mapping[str, StackOutput]] = {}
        self.for_each_keys: dict[str, dict[str, Any]] = {}
        self.locals = Locals()
        # strings already checked in a given scope: plans repeat the same templates
        self._checked: set[tuple[str, str]] = set()
        self._checked_expressions: set[tuple[str, frozenset[str], str | None]] = set()

    def lookup(self, ref: Reference) -> Any:
        """Values of `var` and `env` references (already checked, so never missing)."""
        if ref.root == "var":
            return navigate(self.values[str(ref.path[0])], ref.path[1:], ref.text)
        if ref.root == "env":
            return self.env_values[str(ref.path[0])]
        if ref.root == "stacks":
            return navigate(self.stack_values[str(ref.path[0])], ref.path[1:], ref.text)
        if ref.root == "local":
            return self.locals.lookup(ref)
        raise ExpressionError(f"`{ref.text}` cannot be resolved here")  # pragma: no cover

    def lookup_each(self, ref: Reference) -> Any:
        """`lookup`, with `each` left to the caller's scope (an import's for_each)."""
        if ref.root not in _LOAD_ROOTS:
            raise ExpressionError(f"`{ref.text}` cannot be used here (only var, env, local and each)", ref.text)
        head = str(ref.path[0]) if ref.path else ""
        if ref.root == "var" and head not in self.values:
            raise ExpressionError(f"`{ref.text}` refers to undeclared variable `{head}`", ref.text)
        if ref.root == "env" and head not in self.env:
            raise ExpressionError(f"environment variable `{head}` is not set (used by `{ref.text}`)", ref.text)
        if ref.root == "env":
            self.env_values[head] = self.env[head]
        return self.lookup(ref)

    def check_all(self) -> None:
        m = self.model
        if m.locals:
            for name, value in m.locals.items():
                self._check_tree(value, ("locals", name), _LOCAL_SCOPE, None)
            secret = frozenset(k for k, v in m.variables.items() if v.sensitive)
            self.locals = compute_locals(m.locals, self.source_map, self._var_env_lookup, secret)
        for key, block in m.providers.items():
            self._check_tree(block, ("providers", key), _LOAD_ROOTS, "a provider block")
        self._check_tree(m.backend, ("backend",), _LOAD_ROOTS, "the backend")
        self._check_tree(m.notifications, ("notifications",), _LOAD_ROOTS, "notifications")
        in_properties = frozenset({"var", "env", "local", "stacks", "resources", "stage", "release", "data"})
        # `${modules.net[each.key].out}` is left by `modules.expand_modules` in for_each resources
        in_for_each_properties = in_properties | {"each"} | ({"modules"} if m.modules else set())
        for name, spec in m.resources.items():
            base = ("resources", name)
            if spec.for_each is not None:
                self._check_tree(spec.for_each, (*base, "for_each"), _LOAD_ROOTS, "for_each")
                self.for_each_keys[name] = self._for_each_keys(name, spec.for_each)
            if isinstance(spec.enabled, str):
                scope = _LOAD_ROOTS | {"each"} if spec.for_each is not None else _LOAD_ROOTS
                self._check_tree(spec.enabled, (*base, "enabled"), scope, "enabled")
            allowed = in_properties if spec.for_each is None else in_for_each_properties
            self._check_tree(spec.properties, (*base, "properties"), allowed, None, name)
            for i, dep in enumerate(spec.depends_on):
                if dep not in m.resources:
                    raise ConfigError(
                        f"resource `{name}` depends on `{dep}`, which is not a resource in this plan",
                        location=self.source_map.location((*base, "depends_on", i)),
                        hint=did_you_mean(dep, list(m.resources)) or "depends_on names resources of this plan",
                    )
        later = frozenset({"var", "env", "local", "stacks", "resources", "stage", "release"})
        for name, data in m.data.items():
            given = data.model_dump(exclude={"type", "provider"})
            self._check_tree(given, ("data", name), _LOAD_ROOTS, "a data source")
        for name, out in m.outputs.items():
            self._check_tree(out.value, ("outputs", name), later | {"data"}, None)
        self._check_tree(m.stages, ("stages",), later, None)
        self._check_tree(m.release, ("release",), later, None)
        self._check_tree(m.policies, ("policies",), later, None)

    def _check_tree(
        self,
        value: Any,
        base: FieldPath,
        allowed: frozenset[str],
        known_early: str | None,
        resource: str | None = None,
    ) -> None:
        templates = _templates_in(value)
        if not templates:
            return
        scope = f"{','.join(sorted(allowed))}|{resource or ''}"
        for s in templates:
            if (scope, s) in self._checked:
                continue
            where = _LazyPath(base, value, s)
            try:
                parts = parse_template(s)
            except ExpressionError as exc:
                raise ConfigError(
                    str(exc),
                    location=self.source_map.location(where.path()),
                    hint=_SYNTAX_HINT,
                ) from None
            for p in parts:
                if isinstance(p, Reference):
                    self._check_ref(p, where, allowed, known_early, resource)
                elif isinstance(p, Expression):
                    self._check_expression(p, where, allowed, known_early, resource)
            self._checked.add((scope, s))

    def _check_expression(
        self,
        expr: Expression,
        where: _LazyPath,
        allowed: frozenset[str],
        known_early: str | None,
        resource: str | None,
    ) -> None:
        from cloudorch.planfile.cel import compile_check

        key = (expr.text, allowed, known_early)
        if key in self._checked_expressions:
            return  # the same expression in the same scope (in another resource): same verdict
        source_map = self.source_map
        note_location(expr.text, lambda: source_map.location(where.path()), source_map.file)
        for ref in expr.refs:
            self._check_ref(ref, where, allowed, known_early, resource)
        compile_check(expr)
        self._checked_expressions.add(key)

    def _var_env_lookup(self, ref: Reference) -> Any:
        if ref.root == "env":
            self.env_values.setdefault(str(ref.path[0]), self.env[str(ref.path[0])])
        return self.lookup(ref)

    def _check_ref(
        self,
        ref: Reference,
        where: _LazyPath,
        allowed: frozenset[str],
        known_early: str | None,
        resource: str | None,
    ) -> None:

        if ref.root not in allowed:
            if ref.root == "each":
                hint = "`each` is only available in the properties of a resource with `for_each`"
            elif known_early:
                hint = f"{known_early} must be known before anything is created: use `var` or `env`"
            else:
                hint = None
            raise ConfigError(
                f"`{ref.text}` cannot be used here",
                location=self.source_map.location(where.path()),
                hint=hint,
            )
        if not ref.path:
            raise ConfigError(
                f"`{ref.text}` is incomplete",
                location=self.source_map.location(where.path()),
                hint=f"write e.g. `${{{ref.root}.NAME}}`",
            )
        head = str(ref.path[0])
        if ref.root == "var":
            if head not in self.values:
                raise ConfigError(
                    f"`{ref.text}` refers to undeclared variable `{head}`",
                    location=self.source_map.location(where.path()),
                    hint=did_you_mean(head, list(self.values))
                    or f"declare it under `variables:`, e.g. `{head}: {{type: string}}`",
                )
            try:
                navigate(self.values[head], ref.path[1:], ref.text)
            except ExpressionError as exc:
                raise ConfigError(
                    str(exc),
                    location=self.source_map.location(where.path()),
                    hint=f"check the value of variable `{head}`",
                ) from None
        elif ref.root == "local":
            self._check_local_ref(ref, head, where, known_early)
        elif ref.root == "env":
            if len(ref.path) != 1:
                raise ConfigError(
                    f"`{ref.text}`: an env var has no attributes",
                    location=self.source_map.location(where.path()),
                )
            if head not in self.env:
                raise ConfigError(
                    f"environment variable `{head}` is not set (used by `{ref.text}`)",
                    location=self.source_map.location(where.path()),
                    hint=f"export {head}=... before running cloudorch",
                )
            self.env_values[head] = self.env[head]
            if head in self.model.sensitive_env:
                remember_secret(self.env[head])
        elif ref.root == "stacks":
            self._check_stack_ref(ref, head, where)
        elif ref.root == "resources":
            for inner in ref.inner_refs():  # `web[each.key]`: the key follows the same scope rules
                self._check_ref(inner, where, allowed, known_early, resource)
            if head not in self.model.resources:
                raise ConfigError(
                    f"`{ref.text}` refers to resource `{head}`, which is not in this plan",
                    location=self.source_map.location(where.path()),
                    hint=did_you_mean(head, list(self.model.resources)) or "declare it under `resources:`",
                )
        elif ref.root == "data":
            check_data_ref(ref, self.model.data, self.source_map.location(where.path()))
        elif ref.root == "each" and (head not in ("key", "value") or (head == "key" and len(ref.path) > 1)):
            raise ConfigError(
                f"`{ref.text}`: `each` has only `key` and `value`",
                location=self.source_map.location(where.path()),
                hint="write `${each.key}` or `${each.value}`",
            )

    def _check_stack_ref(self, ref: Reference, head: str, where: _LazyPath) -> None:
        """`${stacks.NAME.outputs.OUT...}`: NAME is declared under `stacks:` and its state has OUT."""
        location = self.source_map.location(where.path())
        spec = self.model.stacks.get(head)
        if spec is None:
            raise ConfigError(
                f"`{ref.text}` refers to stack `{head}`, which this plan does not declare",
                location=location,
                hint=did_you_mean(head, list(self.model.stacks))
                or f"declare it: `stacks: {{{head}: {{plan: ../{head}/plan.yaml}}}}`",
            )
        if len(ref.path) < 3 or ref.path[1] != "outputs":
            raise ConfigError(
                f"`{ref.text}`: a stack reference reads an output, `${{stacks.{head}.outputs.NAME}}`",
                location=location,
            )
        outputs = self._stack_outputs.get(head)
        if outputs is None:
            if self.stack_reader is None:
                raise ConfigError(
                    f"`{ref.text}`: other stacks' outputs cannot be read here",
                    location=location,
                    hint="run it through a command that reads state (plan, apply, validate)",
                )
            if spec.vars:  # `vars: {token: "${var.network_token}"}`: this plan's variables and env
                self._check_tree(spec.vars, ("stacks", head, "vars"), frozenset({"var", "env"}), "a stack's vars")
                given = {k: resolve(v, self.lookup) for k, v in spec.vars.items()}
                text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in given.items()}
                spec = spec.model_copy(update={"vars": text})
            try:
                outputs = self.stack_reader(head, spec, self.base_dir)
            except StackReadError as exc:
                raise ConfigError(
                    f"`{ref.text}`: {exc.message}", location=location, hint=exc.hint
                ) from None
            self._stack_outputs[head] = outputs
        name = str(ref.path[2])
        if name not in outputs:
            known = ", ".join(sorted(outputs)) or "none"
            raise ConfigError(
                f"`{ref.text}`: stack `{head}` has no output `{name}` in its state (its outputs: {known})",
                location=location,
                hint=did_you_mean(name, list(outputs)) or f"apply stack `{head}` with that output first",
            )
        got = outputs[name]
        try:
            value = got.clear_value()
        except StackReadError as exc:
            raise ConfigError(f"`{ref.text}`: {exc.message}", location=location, hint=exc.hint) from None
        self.stack_values.setdefault(head, {"outputs": {}})["outputs"][name] = value
        if got.sensitive:
            self.stack_secrets.add((head, name))
            remember_secret(value)
        try:
            navigate(value, ref.path[3:], ref.text)
        except ExpressionError as exc:
            raise ConfigError(str(exc), location=location, hint=f"check output `{name}` of stack `{head}`") from None
    def _check_local_ref(self, ref: Reference, head: str, where: _LazyPath, known_early: str | None) -> None:
        declared = self.model.locals
        if head not in declared:
            raise ConfigError(
                f"`{ref.text}` refers to undeclared local `{head}`",
                location=self.source_map.location(where.path()),
                hint=did_you_mean(head, list(declared)) or f"declare it under `locals:`, e.g. `{head}: ...`",
            )
        if not (self.locals.values or self.locals.templates):
            return  # checking the locals themselves: `locals.local_order` checks these references
        if known_early and not self.locals.is_static(head):
            raise ConfigError(
                f"`{ref.text}`: local `{head}` reads resources, and {known_early} must be known "
                "before anything is created",
                location=self.source_map.location(where.path()),
                hint="use a local that reads only var, env and other such locals",
            )
        try:
            self.locals.lookup(ref)
        except ExpressionError as exc:
            raise ConfigError(
                str(exc), location=self.source_map.location(where.path()), hint=f"check the value of local `{head}`"
            ) from None

    def _for_each_keys(self, name: str, raw: Any) -> dict[str, Any]:
        where = ("resources", name, "for_each")
        value = resolve(raw, self.lookup) if isinstance(raw, str) else raw
        loc = self.source_map.location(where)
        return for_each_keys(
            value,
            f"`{name}`",
            describe=_describe,
            location=loc,
            item_location=lambda i: self.source_map.location((*where, i)) if raw is value else loc,
        )
