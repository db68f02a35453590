"""Conditional resources: `enabled: "${...}"` decides whether an instance is in the plan at all.

This module owns evaluating `enabled` (a bool, or a template that must give one when the plan is
loaded: it may read `var`, `env`, `local` and, with for_each, `each`), and what references to a
disabled instance become: inside an expression they read `null` (so `${var.cdn ? resources.cdn.domain
: null}` works both ways); a plain `${resources.cdn.domain}` is a located error. An instance that
is not in the plan but is in state is deleted by the planner, as any instance removed from the file.
`evaluate_enabled` is the entry point for other blocks with `enabled` (module instances).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from cloudorch.errors import ConfigError, Location
from cloudorch.planfile.expressions import (
    Expression,
    ExpressionError,
    Reference,
    Unknown,
    contains_unknown,
    navigate,
    note_origin,
    parse_part,
    parse_template,
    resolve,
)

if TYPE_CHECKING:
    from cloudorch.planfile.model import PlanSpec

ENABLED_HINT = (
    "write `enabled: true`/`false`, or an expression known before anything is created, e.g. "
    "`enabled: \"${var.env == 'prod'}\"` (it may read var, env, local and each)"
)


def evaluate_enabled(raw: Any, lookup: Callable[[Reference], Any], *, what: str, location: Location) -> bool:
    """Whether `what` (e.g. "resource `cdn`", "instance `web[eu]`") is enabled; errors are located."""
    if raw is None:
        return True
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        try:
            value = resolve(raw, lookup)
        except ConfigError:
            raise
        except ExpressionError as exc:
            raise ConfigError(f"`enabled` of {what}: {exc}", location=location, hint=ENABLED_HINT) from None
        if isinstance(value, bool):
            return value
        if isinstance(value, Unknown) or contains_unknown(value):
            raise ConfigError(
                f"`enabled` of {what} is known only after apply",
                location=location,
                hint=ENABLED_HINT,
            )
        raise ConfigError(
            f"`enabled` of {what} must be true or false, got {type(value).__name__} {value!r:.60}",
            location=location,
            hint=ENABLED_HINT,
        )
    raise ConfigError(
        f"`enabled` of {what} must be true or false, got {type(raw).__name__}", location=location, hint=ENABLED_HINT
    )


def disabled_instances(plan: PlanSpec) -> frozenset[str]:
    """Addresses of the plan's instances whose `enabled` is false (they are not in the plan)."""
    out: set[str] = set()
    locals_ = plan.local_values
    for name, spec in plan.resources.items():
        if spec.enabled is None or spec.enabled is True:
            continue
        keys = plan.for_each_keys.get(name)
        items: list[tuple[str | None, Any]] = list(keys.items()) if keys is not None else [(None, None)]
        where = plan.location("resources", name, "enabled")
        for key, each_value in items:

            def lookup(ref: Reference, key: str | None = key, each_value: Any = each_value) -> Any:
                if ref.root == "var":
                    return navigate(plan.variable_values[str(ref.path[0])], ref.path[1:], ref.text)
                if ref.root == "env":
                    return plan.env_values[str(ref.path[0])]
                if ref.root == "local":
                    return locals_.lookup(ref)
                if ref.path[0] == "key":
                    return key
                return navigate(each_value, ref.path[1:], ref.text)

            address = name if key is None else f"{name}[{key}]"
            what = f"instance `{address}`" if key is not None else f"resource `{name}`"
            if not evaluate_enabled(spec.enabled, lookup, what=what, location=where):
                out.add(address)
    return frozenset(out)


def _target_address(ref: Reference) -> str:
    name, key, _attr = ref.resource_target()
    return name if key is None else f"{name}[{key}]"


def reads_disabled(ref: Reference, disabled: Collection[str]) -> bool:
    """Whether a `resources` reference reads an instance that is not in the plan."""
    if ref.root != "resources" or ref.dynamic:
        return False
    address = _target_address(ref)
    return address in disabled


def _nulling(expr: Expression, hit: set[int]) -> Callable[[int], str]:
    def written(i: int) -> str:
        return "null" if i in hit else expr.refs[i].text[2:-1]

    return written


def null_disabled(value: Any, disabled: Collection[str]) -> Any:
    """`value` (a template) with every reference to a disabled instance inside an expression made
    `null`; a plain reference to one raises ExpressionError (its `text` locates it)."""
    if isinstance(value, str):
        if "${resources" not in value:
            return value
        parts = parse_template(value)
        changed = False
        out: list[str] = []
        for p in parts:
            if isinstance(p, str):
                out.append(p.replace("${", "$${"))
            elif isinstance(p, Reference):
                if reads_disabled(p, disabled):
                    raise ExpressionError(
                        f"`{p.text}` reads `{_target_address(p)}`, which is disabled (`enabled` is false)", p.text
                    )
                out.append(p.text)
            else:
                hit = {i for i, r in enumerate(p.refs) if reads_disabled(r, disabled)}
                if not hit:
                    out.append(p.text)
                    continue
                changed = True
                body = p.source(_nulling(p, hit))
                new = parse_part(body)
                text = new.text if isinstance(new, Expression) else "${" + body + "}"
                note_origin(text, p.text)
                out.append(text)
        return "".join(out) if changed else value
    if isinstance(value, dict):
        new_d = {k: null_disabled(v, disabled) for k, v in value.items()}
        return new_d if any(new_d[k] is not value[k] for k in value) else value
    if isinstance(value, list):
        new_l = [null_disabled(v, disabled) for v in value]
        return new_l if any(a is not b for a, b in zip(new_l, value, strict=True)) else value
    return value
