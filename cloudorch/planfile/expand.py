"""Expanding a plan's resources into instances: one per for_each key, addressed `name[key]`.

This module owns `Instance` and the rules for referring to instances (`${resources.web[eu].arn}`
for a for_each resource, `${resources.web.arn}` otherwise). It resolves `var`, `env` and
`each` but leaves `${resources...}` for the engine; it does not build the graph or find cycles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cloudorch.errors import ConfigError, Location, did_you_mean
from cloudorch.planfile.conditional import null_disabled
from cloudorch.planfile.expressions import (
    ExpressionError,
    Reference,
    Unknown,
    find_refs,
    iter_strings,
    navigate,
    resolve_partial,
    strings_in,
)
from cloudorch.planfile.limits import InputLimits, raise_hint
from cloudorch.planfile.model import Lifecycle, PlanSpec
from cloudorch.planfile.source import paused_gc

_INSTANCE_ROOTS = frozenset({"var", "env", "stacks", "each", "local"})


@dataclass(slots=True)
class Instance:
    """One resource instance after for_each expansion.

    `properties` is a template: `var`, `env`, `each` and `local` are resolved (an expression is
    evaluated, or has those values written into it), `${resources...}` (and
    `${stage...}`/`${release...}`) remain, and literal `${` stay escaped as `$${`. Always pass
    it through `resolve(properties, lookup)` before use. Treat it as read-only: instances
    share unchanged containers with the plan and with each other.
    """

    address: str
    name: str
    key: str | None
    type: str
    provider: str
    properties: dict[str, Any]
    depends_on: list[str]
    lifecycle: Lifecycle
    location: Location
    #: top-level property names whose value comes from a sensitive variable (directly, or through
    #: `each.value` of a for_each over one); the planner adds those read from sensitive properties
    sensitive: frozenset[str] = frozenset()
    #: `properties` are the resource's as written and hold no `${` and no Unknown, so resolving
    #: them gives an equal value (set by `expand`; False tells nothing)
    literal: bool = False


def instance_address(name: str, key: str | None) -> str:
    return name if key is None else f"{name}[{key}]"


def _ref_location(plan: PlanSpec, base: tuple[str | int, ...], value: Any, text: str) -> Location:
    """Where the string holding `text` was written under `base` (searched only on error)."""
    for sub, s in iter_strings(value):
        if text in s:
            return plan.location(*base, *sub)
    return plan.location(*base)


def check_resource_refs(plan: PlanSpec, refs: list[Reference], base: tuple[str | int, ...], value: Any) -> None:
    """Resource references must name an existing instance: `name[key]` iff `name` has for_each."""
    for ref in refs:
        if ref.root != "resources":
            continue
        try:
            target, key, attr = ref.resource_target()
        except ExpressionError as exc:  # pragma: no cover - load_plan already rejects it
            raise ConfigError(str(exc), location=_ref_location(plan, base, value, ref.text)) from None
        if target not in plan.resources:
            raise ConfigError(
                f"`{ref.text}` refers to resource `{target}`, which is not in this plan",
                location=_ref_location(plan, base, value, ref.text),
                hint=did_you_mean(target, list(plan.resources)) or "declare it under `resources:`",
            )
        keys = plan.for_each_keys.get(target)
        if keys is None and key is not None:
            raise ConfigError(
                f"`{ref.text}`: resource `{target}` has no for_each, so it has no instance `{key}`",
                location=_ref_location(plan, base, value, ref.text),
                hint=f"write `${{resources.{target}.ATTR}}`",
            )
        if keys is not None:
            if key is None:
                example = next(iter(keys), "KEY")
                raise ConfigError(
                    f"`{ref.text}`: resource `{target}` has for_each; say which instance",
                    location=_ref_location(plan, base, value, ref.text),
                    hint=f"use `${{resources.{target}[{example}]{_attr_text(attr)}}}`",
                )
            if key not in keys and 1 not in ref.dynamic:  # a dynamic key is checked per instance
                known = ", ".join(list(keys)[:10])
                raise ConfigError(
                    f"`{ref.text}`: resource `{target}` has no instance `{key}`",
                    location=_ref_location(plan, base, value, ref.text),
                    hint=did_you_mean(key, list(keys)) or f"its keys are: {known}",
                )


def _attr_text(attr: tuple[str | int, ...]) -> str:
    return "".join(f"[{a}]" if isinstance(a, int) else f".{a}" for a in attr) or ".ATTR"


def unexpanded(plan: PlanSpec, name: str) -> Instance:
    """Resource `name` as one instance with `each` left unresolved, e.g. to check a for_each
    resource that has no keys right now (its instances would get the same properties)."""
    spec = plan.resources[name]

    def lookup(ref: Reference) -> Any:
        if ref.root == "var":
            return navigate(plan.variable_values[str(ref.path[0])], ref.path[1:], ref.text)
        if ref.root == "stacks":
            return navigate(plan.stack_values[str(ref.path[0])], ref.path[1:], ref.text)
        if ref.root == "local":
            return plan.local_values.lookup(ref)
        return plan.env_values[str(ref.path[0])]

    return Instance(
        address=name,
        name=name,
        key=None,
        type=spec.type,
        provider=spec.provider or spec.type.partition(".")[0],
        properties=resolve_partial(spec.properties, lookup, frozenset({"var", "env", "stacks", "local"})),
        depends_on=list(spec.depends_on),
        lifecycle=spec.lifecycle,
        location=plan.location("resources", name),
        sensitive=sensitive_properties(plan, name, spec.properties),
    )


def expand(plan: PlanSpec) -> list[Instance]:
    """Every resource instance of the plan, in file order (for_each keys in their order)."""
    with paused_gc():
        return _expand(plan)


def check_instance_count(plan: PlanSpec, limits: InputLimits | None = None) -> int:
    """The number of instances the plan expands to; over `max_instances` is a located error."""
    limit = (limits or InputLimits.from_env()).max_instances
    total = 0
    for name in plan.resources:
        keys = plan.for_each_keys.get(name)
        total += 1 if keys is None else len(keys)
        if total > limit:
            where = ("resources", name, "for_each") if keys is not None else ("resources", name)
            raise ConfigError(
                f"the plan expands to more than {limit:,} resource instances (at `{name}`)",
                location=plan.location(*where),
                hint="split the plan, or " + raise_hint("max_instances"),
            )
    return total


def _plan_sensitive_sources(plan: PlanSpec) -> frozenset[str]:
    """The roots whose values are sensitive anywhere in the plan: `var.X`, `env.X`, stack outputs, locals."""
    secret = plan.sensitive_variables()
    found = {f"var.{v}" for v in secret} | {f"env.{v}" for v in plan.sensitive_env}
    found |= {f"stacks.{stack}.outputs.{out}" for stack, out in plan.stack_secrets}
    found |= {f"local.{n}" for n in plan.local_values.sensitive}
    return frozenset(found)


def _sensitive_sources(plan: PlanSpec, name: str, in_plan: frozenset[str] | None = None) -> frozenset[str]:
    """The roots whose values are sensitive inside resource `name`: `var.X` and `env.X` names, and
    `each` when its for_each is built from a sensitive variable or environment variable.

    `in_plan` passes `_plan_sensitive_sources(plan)` when the caller has it (it is the same for
    every resource of the plan)."""
    found = _plan_sensitive_sources(plan) if in_plan is None else in_plan
    for_each = plan.resources[name].for_each
    if for_each is not None and any(_is_sensitive_ref(r, found) for r in find_refs(for_each)):
        return found | {"each"}
    return found


def _is_sensitive_ref(ref: Reference, sources: frozenset[str]) -> bool:
    if ref.root == "each":
        # the keys of a for_each name instances (they are addresses): only values are secret
        return "each" in sources and bool(ref.path) and ref.path[0] == "value"
    if ref.root in ("var", "env", "local") and ref.path:
        return f"{ref.root}.{ref.path[0]}" in sources
    if ref.root == "stacks" and len(ref.path) >= 3:
        return f"stacks.{ref.path[0]}.outputs.{ref.path[2]}" in sources
    return any(_is_sensitive_ref(inner, sources) for inner in ref.inner_refs())


def sensitive_properties(
    plan: PlanSpec, name: str, properties: dict[str, Any], in_plan: frozenset[str] | None = None
) -> frozenset[str]:
    """Top-level property names of resource `name` that refer to a sensitive variable.

    `in_plan`: `_plan_sensitive_sources(plan)`, when the caller has computed it."""
    sources = _sensitive_sources(plan, name, in_plan)
    if len(sources) == 0:
        return frozenset()
    return frozenset(
        str(k) for k, v in properties.items() if any(_is_sensitive_ref(r, sources) for r in find_refs(v))
    )


#: a sensitive variable's text this long or longer is recognised inside other values (a stage's
#: `vars:` built from it, say); shorter ones would match too much by chance
SECRET_TEXT_MIN = 6


def _holding_secret(values: dict[str, Any], texts: set[str]) -> frozenset[str]:
    """Top-level keys of `values` whose strings contain one of `texts`."""
    if not texts:
        return frozenset()
    return frozenset(str(k) for k, v in values.items() if any(t in s for s in strings_in(v) for t in texts))


def _secret_texts(plan: PlanSpec) -> set[str]:
    return {t for t in plan.sensitive_texts() if len(t) >= SECRET_TEXT_MIN}


def check_output_sensitivity(plan: PlanSpec) -> None:
    """An output built from a sensitive variable (or sensitive `${env.*}`) must say `sensitive: true` itself."""
    if not plan.has_secrets():
        return
    secret = {("var", v) for v in plan.sensitive_variables()} | {("env", v) for v in plan.sensitive_env}
    secret |= {("stacks", f"{stack}.outputs.{out}") for stack, out in plan.stack_secrets}
    texts = _secret_texts(plan)
    secret_locals = plan.local_values.sensitive
    for name, output in plan.outputs.items():
        if output.sensitive:
            continue
        used = sorted(
            {
                (root, head)
                for root, head in output.written_refs
                if (root, head) in secret or (root == "local" and head in secret_locals)
            }
        )
        if not used and _holding_secret({"value": output.value}, texts):
            used = sorted(secret)  # through a stage's vars or the release block: the value tells
        if used:
            what = {"var": "variable", "env": "environment variable", "stacks": "output of stack", "local": "local"}[
                used[0][0]
            ]
            raise ConfigError(
                f"output `{name}` is built from sensitive {what} `{used[0][1]}` but is not declared sensitive",
                location=plan.location("outputs", name),
                hint=f"add `sensitive: true` to output `{name}` (write it as `{{value: ..., sensitive: true}}`)",
            )


def template_strings(value: Any) -> list[str]:
    """The strings holding `${` in a value (inside dicts and lists), in order of appearance:
    `find_refs` of these is `find_refs(value)`."""
    found: list[str] = []
    scan_templates(value, found)
    return found


def scan_templates(value: Any, templates: list[str]) -> bool:
    """Append the strings of `value` holding `${` to `templates`; True if `value` holds an Unknown.

    Most properties of a large plan hold no template: this walk (no generators) is what such a
    plan pays per property tree.
    """
    if isinstance(value, str):
        if "${" in value:
            templates.append(value)
        return False
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, list):
        items = value
    else:
        return isinstance(value, Unknown)
    unknown = False
    for v in items:
        if isinstance(v, str):
            if "${" in v:
                templates.append(v)
        elif scan_templates(v, templates):
            unknown = True
    return unknown


def _expand(plan: PlanSpec) -> list[Instance]:
    check_instance_count(plan)
    check_output_sensitivity(plan)
    out: list[Instance] = []
    values = plan.variable_values
    env_values = plan.env_values
    local_values = plan.local_values
    texts = _secret_texts(plan) if plan.has_secrets() else set()
    secret_sources = _plan_sensitive_sources(plan)
    disabled = plan.disabled
    memo: dict[Any, Any] = {}  # expressions without `each` evaluate alike in every instance
    for name, spec in plan.resources.items():
        base = ("resources", name, "properties")
        props = spec.properties
        templates: list[str] = []
        holds_unknown = scan_templates(props, templates)
        refs = find_refs(templates) if templates else []
        if refs:
            check_resource_refs(plan, refs, base, props)
            deps = list(dict.fromkeys([*spec.depends_on, *(str(r.path[0]) for r in refs if r.root == "resources")]))
            dynamic = any(r.dynamic for r in refs)
            # a local that reads resources brings its references into the instance
            through_locals = any(r.root == "local" and not local_values.is_static(str(r.path[0])) for r in refs)
            needs_resolve = dynamic or any(r.root in _INSTANCE_ROOTS for r in refs)
        else:
            deps = list(dict.fromkeys(spec.depends_on))
            dynamic = through_locals = needs_resolve = False
        location = plan.location("resources", name)
        provider = spec.provider or spec.type.partition(".")[0]
        # a property reads a sensitive value only through a reference to a sensitive source
        secret_keys = (
            sensitive_properties(plan, name, props, secret_sources) if refs and secret_sources else frozenset()
        )
        keys = plan.for_each_keys.get(name)
        items: list[tuple[str | None, Any]] = list(keys.items()) if keys is not None else [(None, None)]
        for key, each_value in items:
            instance_deps: list[str] = []
            address = instance_address(name, key)
            if disabled and address in disabled:
                continue
            if needs_resolve:

                def lookup(ref: Reference, key: str | None = key, each_value: Any = each_value) -> Any:
                    if ref.root == "var":
                        return navigate(values[str(ref.path[0])], ref.path[1:], ref.text)
                    if ref.root == "env":
                        return env_values[str(ref.path[0])]
                    if ref.root == "stacks":
                        return navigate(plan.stack_values[str(ref.path[0])], ref.path[1:], ref.text)
                    if ref.root == "local":
                        return local_values.lookup(ref)
                    if ref.path[0] == "key":
                        return key
                    return navigate(each_value, ref.path[1:], ref.text)

                try:
                    resolved = resolve_partial(props, lookup, _INSTANCE_ROOTS, memo)
                except ExpressionError as exc:
                    raise ConfigError(
                        f"{exc} (instance `{instance_address(name, key)}`)",
                        location=_ref_location(plan, base, props, exc.text),
                        # an expression's own error (cel.ExpressionEvalError) brings its hint
                        hint=getattr(exc, "hint", None) or "check the for_each value or variable it refers to",
                    ) from None
                if plan.module_outputs:  # `${modules.net[each.key].out}` now names an instance
                    resolved, instance_deps = _module_outputs(plan, name, key, resolved, props)
                if dynamic or through_locals:
                    # `${resources.web[each.key].id}` now names a key, and a local may have
                    # brought references in: do they exist, and what does the instance depend on?
                    now = find_refs(resolved)
                    check_resource_refs(plan, now, base, resolved)
                    if through_locals:
                        deps = list(dict.fromkeys([*deps, *(str(r.path[0]) for r in now if r.root == "resources")]))
            else:
                resolved = props
            if disabled:
                try:
                    resolved = null_disabled(resolved, disabled)
                except ExpressionError as exc:
                    raise ConfigError(
                        f"{exc} (instance `{address}`)",
                        location=_ref_location(plan, base, props, exc.text),
                        hint="read it inside an expression that tests the same condition, e.g. "
                        "`${var.use_cdn ? resources.cdn.domain : null}` (a disabled instance reads as null there)",
                    ) from None
            out.append(
                Instance(
                    address=address,
                    name=name,
                    key=key,
                    type=spec.type,
                    provider=provider,
                    properties=resolved,
                    depends_on=list(deps) + [d for d in dict.fromkeys(instance_deps) if d not in deps]
                    if instance_deps
                    else list(deps),
                    lifecycle=spec.lifecycle,
                    location=location,
                    sensitive=secret_keys | _holding_secret(resolved, texts) if texts else secret_keys,
                    literal=resolved is props and not templates and not holds_unknown,
                )
            )
    for name, output in plan.outputs.items():
        check_resource_refs(plan, find_refs(output.value), ("outputs", name), output.value)
    return out


def _module_outputs(
    plan: PlanSpec, name: str, key: str | None, resolved: Any, props: Any
) -> tuple[Any, list[str]]:
    """Instance properties with `${modules...}` outputs resolved, and the resources they name."""
    from cloudorch.planfile.modules import resolve_late

    try:
        out = resolve_late(plan.module_outputs, resolved)
    except ExpressionError as exc:
        raise ConfigError(
            f"{exc} (instance `{instance_address(name, key)}`)",
            location=_ref_location(plan, ("resources", name, "properties"), props, "modules"),
            hint="the for_each keys of the resource must be instance keys of the module",
        ) from None
    if out is resolved:
        return out, []
    return out, [str(r.path[0]) for r in find_refs(out) if r.root == "resources"]


# --------------------------------------------------------------------------- stages and releases

#: roots bound per release stage: `${stage.name}`, `${stage.vars.X}`, `${release.version}`, `${release.X}`
STAGE_ROOTS = frozenset({"stage", "release"})


def stage_context(plan: PlanSpec, stage: str | None, version: Any = None) -> dict[str, Any]:
    """The values `${stage.*}` and `${release.*}` take in one stage of a release.

    `release` is the plan's `release:` block with `version` replaced by `version` when given
    (`--version` on release commands). `stage` is None on a plan without stages: then only
    `${release.*}` can be bound. A stage's own vars may use `${release.*}` and `${stage.name}`.
    """
    release: dict[str, Any] = {k: v for k, v in (plan.release or {}).items() if k != "groups"}
    if version is not None:
        release["version"] = version
    ctx: dict[str, Any] = {"release": release}
    if stage is not None:
        spec = (plan.stages or {}).get(stage) or {}
        raw_vars = (spec.get("vars") if isinstance(spec, dict) else None) or {}
        head = {"release": release, "stage": {"name": stage, "vars": {}}}
        vars_ = _bind_value(plan, ("stages", stage, "vars"), raw_vars, head)
        ctx["stage"] = {"name": stage, "vars": vars_ if isinstance(vars_, dict) else {}}
    return ctx


def _bind_value(plan: PlanSpec, base: tuple[str | int, ...], value: Any, context: dict[str, Any]) -> Any:
    """Resolve the `stage` and `release` references of a template, with located errors."""

    def lookup(ref: Reference) -> Any:
        if ref.root not in context:
            if ref.root == "stage":
                raise ExpressionError(
                    f"`{ref.text}` needs a release stage, and this run has none (the plan declares no `stages:`)",
                    ref.text,
                )
            raise ExpressionError(f"`{ref.text}` cannot be resolved here", ref.text)
        return navigate(context[ref.root], ref.path, ref.text)

    try:
        return resolve_partial(value, lookup, STAGE_ROOTS)
    except ExpressionError as exc:
        where = f"stage `{context['stage']['name']}`" if "stage" in context else "this run"
        raise ConfigError(
            f"{exc} (in {where})",
            location=_ref_location(plan, base, value, exc.text) if exc.text else plan.location(*base),
            hint="`${stage.name}`, `${stage.vars.NAME}` (NAME under the stage's `vars:`), "
            "`${release.version}` (--version, or `release.version` in the plan) and `${release.KEY}`",
        ) from None


def bind_stage(plan: PlanSpec, context: dict[str, Any]) -> PlanSpec:
    """A copy of `plan` with `${stage.*}` and `${release.*}` resolved in resources and outputs.

    `context` comes from `stage_context`. The copy is what one stage's run plans and applies;
    the original plan is left untouched (instances share containers with it).
    """
    from dataclasses import replace

    resources = {}
    for name, spec in plan.resources.items():
        base = ("resources", name, "properties")
        bound = _bind_value(plan, base, spec.properties, context)
        resources[name] = spec if bound is spec.properties else spec.model_copy(update={"properties": bound})
    outputs = {}
    for name, out in plan.outputs.items():
        bound = _bind_value(plan, ("outputs", name), out.value, context)
        outputs[name] = out if bound is out.value else out.model_copy(update={"value": bound})
    policies = _bind_value(plan, ("policies",), plan.policies, context) if plan.policies else plan.policies
    return replace(plan, resources=resources, outputs=outputs, policies=policies)


def uses_roots(plan: PlanSpec, roots: frozenset[str]) -> bool:
    """Whether any resource property or output refers to one of `roots`."""
    templates: list[str] = []
    for spec in plan.resources.values():
        scan_templates(spec.properties, templates)
    for output in plan.outputs.values():
        scan_templates(output.value, templates)
    return any(r.root in roots for r in find_refs(templates))
