"""Checking a plan against the installed resource types: types, properties, referenced attributes.

This module owns the errors a plan gets once the provider registry is known: an unknown type
(with "did you mean"), an unknown or mistyped property, a reference to an attribute the target
type does not have. Values still waiting on `${resources...}` are skipped, not guessed.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ValidationError

from cloudorch.errors import CloudorchError, ConfigError, Location, did_you_mean
from cloudorch.planfile.expand import Instance, expand, scan_templates, template_strings, unexpanded
from cloudorch.planfile.expressions import (
    Reference,
    Unknown,
    contains_unknown,
    find_refs,
    path_of,
    resolve,
)
from cloudorch.planfile.model import PlanSpec
from cloudorch.planfile.source import paused_gc
from cloudorch.provider.contract import ResourceType
from cloudorch.provider.registry import Registry

_IGNORE_HEAD = re.compile(r"[.\[]")

# core.null exposes each key of its `values` as an attribute (see NullResource._observed)
_VALUES_AS_ATTRIBUTES = frozenset({"core.null"})


def _unknown(ref: Reference) -> Unknown:
    return Unknown(ref.text)


def check_types(plan: PlanSpec, registry: Registry, instances: list[Instance] | None = None) -> None:
    """Raise a located ConfigError for the first type, property or attribute error of the plan.

    `instances` may pass the result of `expand(plan)` to avoid expanding twice.
    """
    with paused_gc():
        _check_types(plan, registry, instances)


def _check_types(plan: PlanSpec, registry: Registry, instances: list[Instance] | None) -> None:
    classes: dict[str, type[ResourceType[Any]]] = {}
    for name, spec in plan.resources.items():
        if spec.type in classes:
            continue
        try:
            classes[spec.type] = registry.type_class(spec.type)
        except CloudorchError as exc:
            raise type(exc)(exc.message, hint=exc.hint, location=plan.location("resources", name, "type")) from exc
    _check_provider_blocks(plan, registry, {t.partition(".")[0] for t in classes} | {"core"})
    for name, spec in plan.resources.items():
        _check_ignore_changes(plan, name, spec.lifecycle.ignore_changes, classes[spec.type])
    if instances is None:
        instances = expand(plan)
    checked: set[int] = set()
    for inst in instances:
        # instances without `each` share one properties dict: validate it once
        if id(inst.properties) in checked:
            continue
        checked.add(id(inst.properties))
        _check_properties(plan, inst, classes[inst.type])
    for name, keys in plan.for_each_keys.items():
        if not keys:  # no instances today, but its properties must still fit its type
            _check_properties(plan, unexpanded(plan, name), classes[plan.resources[name].type])
    # a literal instance holds its resource's properties as written: they hold no `${`
    _check_attributes(plan, classes, {inst.name for inst in instances if inst.literal})


def _check_provider_blocks(plan: PlanSpec, registry: Registry, used: set[str]) -> None:
    """Validate the blocks of providers the plan uses against their Config models."""
    for key, block in (plan.providers or {}).items():
        name = key.partition(".")[0]
        if name not in used:
            continue
        model = registry.provider_class(name).Config
        try:
            model.model_validate(dict(block or {}))
        except ValidationError as exc:
            where = plan.location("providers", key, *exc.errors()[0]["loc"])
            raise provider_config_error(key, model, exc, where) from None


def provider_config_error(
    key: str, model: type[BaseModel], exc: ValidationError, where: Location | None
) -> ConfigError:
    """A located error for a provider block, with the field's allowed range when it has one."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    field = ".".join(map(str, loc))
    if where is not None and where.field is None:
        where = Location(where.file, where.line, where.column, f"providers.{key}.{field}")
    if err["type"] == "extra_forbidden":
        fields = list(model.model_fields)
        return ConfigError(
            f"provider block {key}: unknown setting `{field}`",
            location=where,
            hint=did_you_mean(str(loc[-1]), fields) or "its settings are: " + ", ".join(fields),
        )
    return ConfigError(
        f"provider block {key}: `{field}`: {_clean_msg(err['msg'])} (got {err.get('input')!r})",
        location=where,
        hint=_range_hint(model, loc) or _field_hint(model, str(loc[0]) if loc else ""),
    )


def _range_hint(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    """"allowed: 1 <= max_concurrency", from a numeric field's constraints (nested models too)."""
    info = None
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not isinstance(part, str) or fields is None or part not in fields:
            break
        info = fields[part]
        current = _model_in(info.annotation)
    if info is None:
        return None
    low = high = ""
    for m in info.metadata:
        for attr, text, side in (("ge", "<=", "low"), ("gt", "<", "low"), ("le", "<=", "high"), ("lt", "<", "high")):
            bound = getattr(m, attr, None)
            if bound is None:
                continue
            if side == "low":
                low = f"{bound} {text} "
            else:
                high = f" {text} {bound}"
    if not (low or high):
        return None
    name = str(loc[-1])
    kind = "a whole number" if _is_int(info.annotation) else "a number"
    text = f"allowed: {low}{name}{high} ({kind})"
    if info.description:
        text += f"; {name}: {info.description}"
    return text


def _model_in(annotation: Any) -> Any:
    for arg in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _is_int(annotation: Any) -> bool:
    args = getattr(annotation, "__args__", ())
    return annotation is int or (int in args and float not in args)


def _check_ignore_changes(plan: PlanSpec, name: str, paths: list[str], cls: type[ResourceType[Any]]) -> None:
    if not paths:
        return
    fields = list(cls.Properties.model_fields)
    for i, path in enumerate(paths):
        head = _IGNORE_HEAD.split(path, maxsplit=1)[0]
        if head not in fields:
            raise ConfigError(
                f"lifecycle.ignore_changes of `{name}` names `{path}`, not a property of {cls.type_name}",
                location=plan.location("resources", name, "lifecycle", "ignore_changes", i),
                hint=did_you_mean(head, fields) or "its properties are: " + ", ".join(fields),
            )


def _check_properties(plan: PlanSpec, inst: Instance, cls: type[ResourceType[Any]]) -> None:
    model: type[BaseModel] = cls.Properties
    pending: set[str] = set()
    if inst.literal or _is_literal(inst.properties):
        # nothing to resolve and nothing unknown: resolving would give an equal value
        known = inst.properties
    else:
        props = resolve(inst.properties, _unknown)
        pending = {k for k, v in props.items() if contains_unknown(v)}
        known = {k: v for k, v in props.items() if k not in pending} if pending else props
    try:
        # the validator itself, as `model_validate` calls it (same errors), without the wrapper's
        # keyword handling: as costly as validating a small model, once per resource of a plan
        model.__pydantic_validator__.validate_python(known)
    except ValidationError as exc:
        # an error with no `loc` comes from a check across properties: when a value it may read
        # is still unknown it runs at apply instead, once every value is known
        errors = [
            e
            for e in exc.errors()
            if not (pending and (not e["loc"] or (e["type"] == "missing" and e["loc"][0] in pending)))
        ]
        if not errors:
            return
        err = errors[0]
        loc = tuple(err["loc"])
        suffix = f" (instance `{inst.address}`)" if inst.key is not None else ""
        if not loc:
            raise ConfigError(
                f"resource `{inst.name}` ({inst.type}): {_clean_msg(err['msg'])}{suffix}",
                location=plan.location("resources", inst.name, "properties"),
                hint="its properties are: " + ", ".join(model.model_fields),
            ) from None
        where = plan.location("resources", inst.name, "properties", *loc)
        if err["type"] == "extra_forbidden":
            fields = list(model.model_fields)
            raise ConfigError(
                f"unknown property `{loc[-1]}` of resource type {inst.type}{suffix}",
                location=where,
                hint=did_you_mean(str(loc[-1]), fields) or "its properties are: " + ", ".join(fields),
            ) from None
        if err["type"] == "missing":
            raise ConfigError(
                f"resource `{inst.name}` ({inst.type}) needs property `{'.'.join(map(str, loc))}`{suffix}",
                location=plan.location("resources", inst.name, "properties"),
                hint=_field_hint(model, str(loc[0])),
            ) from None
        raise ConfigError(
            f"property `{'.'.join(map(str, loc))}` of {inst.type}: {err['msg']}{suffix}",
            location=where,
            hint=_field_hint(model, str(loc[0])),
        ) from None


def _is_literal(value: Any) -> bool:
    """True if no string in `value` holds `${` and no value is Unknown: `resolve` leaves it equal."""
    templates: list[str] = []
    return not scan_templates(value, templates) and not templates


def _clean_msg(msg: str) -> str:
    # pydantic prefixes a validator's ValueError with "Value error, "
    return msg.removeprefix("Value error, ")


def _field_hint(model: type[BaseModel], name: str) -> str | None:
    info = model.model_fields.get(name)
    if info is None or not info.description:
        return None
    return f"`{name}`: {info.description}"


@lru_cache(maxsize=1024)
def _base_attribute_names(cls: type[ResourceType[Any]]) -> frozenset[str]:
    return frozenset(cls.attributes) | frozenset(cls.Properties.model_fields)


def attribute_names(
    cls: type[ResourceType[Any]], properties: dict[str, Any] | None = None
) -> frozenset[str] | set[str]:
    """Names `${resources.NAME.X}` may use: the type's attributes and its property names."""
    names = _base_attribute_names(cls)
    if cls.type_name in _VALUES_AS_ATTRIBUTES and properties:
        values = properties.get("values")
        if isinstance(values, dict):
            return names | {str(k) for k in values}
    return names


def _check_attributes(plan: PlanSpec, classes: dict[str, type[ResourceType[Any]]], literal: set[str]) -> None:
    """`literal`: resources whose properties are known to hold no `${` (not walked again)."""
    attrs: dict[str, frozenset[str] | set[str]] = {}

    def names_of(target: str) -> frozenset[str] | set[str]:
        got = attrs.get(target)
        if got is None:
            spec = plan.resources[target]
            got = attrs[target] = attribute_names(classes[spec.type], spec.properties)
        return got

    trees: list[tuple[tuple[str | int, ...], Any]] = [
        (("resources", name, "properties"), spec.properties)
        for name, spec in plan.resources.items()
        if name not in literal
    ]
    trees += [(("outputs", name), out.value) for name, out in plan.outputs.items()]
    seen: set[str] = set()
    for base, value in trees:
        for s in template_strings(value):
            if "resources" not in s or s in seen:
                continue
            seen.add(s)
            for ref in find_refs(s):  # references inside expressions too
                if ref.root != "resources":
                    continue
                # expand() has checked that the target and its instance key exist
                target, _key, attr = ref.resource_target()
                known = names_of(target)
                if not attr:
                    raise ConfigError(
                        f"`{ref.text}` names a resource but no attribute",
                        location=plan.location(*base, *path_of(value, s)),
                        hint="attributes of {}: {}".format(plan.resources[target].type, ", ".join(sorted(known))),
                    )
                if str(attr[0]) not in known:
                    target_type = plan.resources[target].type
                    raise ConfigError(
                        f"`{ref.text}`: resource type {target_type} has no attribute `{attr[0]}`",
                        location=plan.location(*base, *path_of(value, s)),
                        hint=did_you_mean(str(attr[0]), sorted(known)) or "its attributes: " + ", ".join(sorted(known)),
                    )
