"""The planner: refresh what state knows, diff it against the plan file, produce a changeset.

Refresh reads every resource in scope in parallel (one `read_many` per type where the type
offers one). The diff compares each property the plan sets with what the cloud reports (or,
for values the cloud cannot report, with what state recorded), honouring lifecycle rules, and
marks values that depend on not-yet-applied resources as known only after apply.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from cloudorch.changes import SENSITIVE, Action, Change, ChangeSet, PropertyDiff
from cloudorch.engine.providerset import ProviderSet
from cloudorch.engine.retry import call_with_retries
from cloudorch.errors import ConfigError, Location, ProviderError, did_you_mean
from cloudorch.planfile import Instance, PlanSpec, Reference, Unknown, contains_unknown, resolve
from cloudorch.planfile.expand import instance_address, unexpanded
from cloudorch.planfile.expressions import escape, find_refs
from cloudorch.planfile.source import paused_gc
from cloudorch.provider.contract import (
    RECOMPUTED,
    Observed,
    ReadRequest,
    ResourceType,
    force_new_fields,
    sensitive_fields,
)
from cloudorch.state.model import ResourceRecord, State, is_sensitive_marker, sensitive_marker


@dataclass
class PlanRequest:
    """What the user asked `plan` for (flags)."""

    refresh: bool = True
    targets: Sequence[str] = ()
    excludes: Sequence[str] = ()
    replace: Sequence[str] = ()
    destroy: bool = False
    parallelism: int = 256


@dataclass
class RefreshResult:
    observed: dict[str, Observed | None] = field(default_factory=dict)
    seconds: float = 0.0
    calls: int = 0


# --------------------------------------------------------------------------- validation


_adapters: dict[tuple[type[BaseModel], str], TypeAdapter[Any]] = {}


def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    key = (model, name)
    ad = _adapters.get(key)
    if ad is None:
        info = model.model_fields[name]
        ad = _adapters[key] = TypeAdapter(info.annotation if info.annotation is not None else Any)
    return ad


def validate_properties(
    model: type[BaseModel], props: Mapping[str, Any], *, locate: Callable[[str], Location | None]
) -> tuple[dict[str, Any], set[str]]:
    """Validate properties and fill defaults; properties holding an Unknown are kept as they are.

    Returns the JSON-shaped properties and the names of the top-level properties that are unknown.
    """
    unknown = {k for k, v in props.items() if contains_unknown(v)}
    if not unknown:
        try:
            return _validated_json(model, props), unknown
        except ValidationError as exc:
            raise _property_error(model, exc, locate) from exc
    known = {k: v for k, v in props.items() if k not in unknown}
    try:
        model.model_validate(known)
    except ValidationError as exc:
        # a check across properties (no `loc`) may read a value still unknown: it runs at apply
        real = [
            e
            for e in exc.errors()
            if e["loc"] and not (e["type"] == "missing" and e["loc"][0] in unknown)
        ]
        if real:
            raise _property_error(model, exc, locate, real) from exc
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in unknown:
            out[name] = props[name]
        elif name in known:
            ad = _field_adapter(model, name)
            out[name] = ad.dump_python(ad.validate_python(known[name]), mode="json")
        elif not info.is_required():
            out[name] = info.get_default(call_default_factory=True)
    return out, unknown


def _validated_json(model: type[BaseModel], props: Mapping[str, Any]) -> dict[str, Any]:
    """`model.model_validate(props).model_dump(mode="json")`, made by the same validator and
    serializer called directly: without the two wrappers' keyword handling, which costs as much as
    the validation itself for a small model, once per resource of a plan."""
    validated = model.__pydantic_validator__.validate_python(props)
    dumped: dict[str, Any] = model.__pydantic_serializer__.to_python(validated, mode="json")
    return dumped


def _property_error(
    model: type[BaseModel],
    exc: ValidationError,
    locate: Callable[[str], Location | None],
    errors: list[Any] | None = None,
) -> ConfigError:
    err = (errors or exc.errors())[0]
    path = ".".join(str(p) for p in err["loc"])
    top = str(err["loc"][0]) if err["loc"] else ""
    hint = None
    if err["type"] == "extra_forbidden":
        hint = did_you_mean(top, list(model.model_fields)) or "known properties: " + ", ".join(model.model_fields)
        msg = f"unknown property `{path}`"
    else:
        msg = f"property `{path}`: {err['msg']}"
    return ConfigError(msg, hint=hint, location=locate(top))


# --------------------------------------------------------------------------- refresh


def refresh(
    records: Sequence[ResourceRecord],
    providers: ProviderSet,
    *,
    parallelism: int,
) -> RefreshResult:
    """Read every record from its cloud, in parallel; None means the object is gone."""
    started = time.monotonic()
    out = RefreshResult()
    groups: dict[tuple[str, str], list[ResourceRecord]] = {}
    for rec in records:
        groups.setdefault((rec.provider, rec.type), []).append(rec)
    jobs: list[Callable[[], list[tuple[str, Observed | None]]]] = []
    with paused_gc():  # one request per record, all kept: see `Planner.run`
        for (pkey, tname), recs in groups.items():
            provider = providers.get(pkey)
            rt = provider.resource_type(tname)
            if rt.state_only:
                # nothing to read: the object is its record (shared, as nothing changes a
                # record's properties in place)
                for r in recs:
                    out.observed[r.address] = Observed(r.id, r.properties, r.attributes)
                continue
            model = rt.Properties
            reqs = [ReadRequest(r.address, r.id, model.model_construct(**r.properties)) for r in recs]
            if type(rt).read_many is not ResourceType.read_many:
                jobs.append(_read_many_job(rt, reqs))
            else:
                jobs.extend(_read_one_job(rt, req) for req in reqs)
    out.calls = len(jobs)
    if len(jobs) == 1:
        results = [jobs[0]()]
    else:
        with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(jobs)))) as pool:
            results = list(pool.map(lambda j: j(), jobs))
    for batch in results:
        for address, obs in batch:
            out.observed[address] = obs
    out.seconds = time.monotonic() - started
    return out


def _read_many_job(
    rt: ResourceType[Any], reqs: list[ReadRequest]
) -> Callable[[], list[tuple[str, Observed | None]]]:
    def job() -> list[tuple[str, Observed | None]]:
        seen = call_with_retries(
            rt.provider, reqs[0].address if len(reqs) == 1 else rt.type_name, lambda: rt.read_many(reqs)
        )
        return [(r.address, o) for r, o in zip(reqs, seen, strict=True)]

    return job


def _read_one_job(rt: ResourceType[Any], req: ReadRequest) -> Callable[[], list[tuple[str, Observed | None]]]:
    def job() -> list[tuple[str, Observed | None]]:
        return [
            (
                req.address,
                call_with_retries(
                    rt.provider, req.address, lambda: rt.read(req.address, req.id, req.properties)
                ),
            )
        ]

    return job


# --------------------------------------------------------------------------- diff


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True  # equal values are the same whether or not they are markers: the common case, fast
    if type(a) is not dict and type(b) is not dict:
        return False  # only a dict can be a sensitive marker
    if is_sensitive_marker(a) or is_sensitive_marker(b):
        ma = a if is_sensitive_marker(a) else sensitive_marker(a)
        mb = b if is_sensitive_marker(b) else sensitive_marker(b)
        return bool(ma == mb)
    return bool(a == b)


def _mask(value: Any, sensitive: bool) -> Any:
    return "(sensitive)" if sensitive and value is not None else value


def to_template(value: Any) -> Any:
    """A resolved value holding Unknown leaves as a template that apply resolves again.

    Unknown leaves become their template text (which keeps its own `$${` escapes); a known
    string is escaped (`${` -> `$${`), since resolving unescaped it once already: the second
    resolution gives back exactly the text the first one made, never an evaluation of it."""
    if isinstance(value, Unknown):
        return value.expr
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {k: to_template(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_template(v) for v in value]
    return value


def _unsettled(value: Any) -> bool:
    """Whether a planned value still holds something only apply will know."""
    if value is RECOMPUTED or isinstance(value, Unknown):
        return True
    if isinstance(value, dict):
        return any(_unsettled(v) for v in value.values())
    if isinstance(value, list):
        return any(_unsettled(v) for v in value)
    return False


@dataclass(frozen=True)
class _TypeFacts:
    """What the diff needs of a resource type, worked out once per type rather than per resource."""

    rt: ResourceType[Any]
    force_new: frozenset[str]
    sensitive: frozenset[str]
    computed: frozenset[str]  # attribute names the type computes


@dataclass
class _Planned:
    action: Action
    properties: dict[str, Any]  # may hold Unknown leaves
    attributes: Mapping[str, Any]
    computed: frozenset[str] = frozenset()  # attribute names the type computes


class Planner:
    def __init__(
        self,
        plan: PlanSpec,
        instances: Sequence[Instance],
        order: Sequence[str],
        state: State,
        providers: ProviderSet,
        request: PlanRequest,
    ) -> None:
        self.plan = plan
        self.instances = {i.address: i for i in instances}
        self.order = order
        self.state = state
        self.providers = providers
        self.request = request
        # resource name -> its instance addresses (one, or one per for_each key)
        self.addresses_of: dict[str, list[str]] = {}
        for i in instances:
            self.addresses_of.setdefault(i.name, []).append(i.address)
        self.planned: dict[str, _Planned] = {}
        # address -> names of its properties holding sensitive values, as planned
        self.sensitive_of: dict[str, frozenset[str]] = {}
        # whether any property can be read as sensitive yet: most plans have none, and then
        # looking for references into one is skipped
        self._any_sensitive = any(r.sensitive for r in state.resources.values())
        self._types: dict[tuple[str, str], _TypeFacts] = {}

    # -- references -------------------------------------------------------------------

    def lookup(self, ref: Reference) -> Any:
        name, key, rest = ref.resource_target()
        address = instance_address(name, key)
        got = self.planned.get(address)
        if got is None:
            # the target is outside --target scope or excluded: fall back to state
            rec = self.state.resources.get(address)
            if rec is None:
                return Unknown(ref.text)
            got = _Planned(Action.NOOP, rec.properties, rec.attributes)
        if not rest:
            if got.action in (Action.CREATE, Action.REPLACE):
                return Unknown(ref.text)
            whole = {**got.properties, **got.attributes}
            return Unknown(ref.text) if got.action is Action.UPDATE and _unsettled(whole) else whole
        attr = str(rest[0])
        if got.action in (Action.CREATE, Action.REPLACE):
            # a property the plan sets is known now (as in Terraform), and so is what the type
            # predicts from properties alone (`plan_create`); other computed attributes are not
            if attr in got.attributes:
                value = got.attributes[attr]
            elif attr in got.properties and attr not in got.computed:
                value = got.properties[attr]
            else:
                return Unknown(ref.text)
            if _unsettled(value):
                return Unknown(ref.text)
        elif got.action is Action.UPDATE:
            # `attributes` holds what the type predicts after the update (`plan_update`): an
            # identifier stays known, a recomputed value is unknown until the update has run
            if attr in got.attributes:
                value = got.attributes[attr]
            elif attr in got.properties:
                value = got.properties[attr]
            else:
                return Unknown(ref.text)
            if _unsettled(value):
                return Unknown(ref.text)
        elif attr in got.attributes:
            value = got.attributes[attr]
        elif attr in got.properties:
            value = got.properties[attr]
        else:
            raise ConfigError(
                f"`{ref.text}`: {address} has no attribute `{attr}`",
                hint="attributes: " + ", ".join(sorted(set(got.attributes) | set(got.properties))),
            )
        for step in rest[1:]:
            if isinstance(value, Unknown):
                return Unknown(ref.text)
            if is_sensitive_marker(value):
                break
            try:
                value = value[step]
            except (KeyError, IndexError, TypeError) as exc:
                raise ConfigError(f"`{ref.text}`: no `{step}` in {address}.{attr}") from exc
        if is_sensitive_marker(value):
            # state (and what refresh read from it) keeps a sensitive value as a hash; the plan
            # file gives its value again, as Terraform takes it from configuration
            planned = got.properties.get(attr) if got is self.planned.get(address) else None
            if planned is None or _unsettled(planned) or is_sensitive_marker(planned):
                return Unknown(ref.text)
            value = planned
            try:
                for step in rest[1:]:
                    value = value[step]
            except (KeyError, IndexError, TypeError) as exc:
                raise ConfigError(f"`{ref.text}`: no `{rest[1:]}` in {address}.{attr}") from exc
        return value

    # -- sensitivity --------------------------------------------------------------------

    def _sensitive_at(self, address: str) -> frozenset[str]:
        got = self.sensitive_of.get(address)
        if got is not None:
            return got
        rec = self.state.resources.get(address)
        return frozenset(rec.sensitive) if rec is not None else frozenset()

    def derived_sensitive(self, inst: Instance) -> frozenset[str]:
        """Top-level properties of `inst` that read a sensitive property of another resource."""
        out: set[str] = set()
        if not self._any_sensitive:
            return frozenset()
        for key, value in inst.properties.items():
            for ref in find_refs(value):
                if ref.root != "resources":
                    continue
                name, ikey, rest = ref.resource_target()
                target = self._sensitive_at(instance_address(name, ikey))
                if target and (not rest or str(rest[0]) in target):
                    out.add(str(key))
                    break
        return frozenset(out)

    # -- the diff ---------------------------------------------------------------------

    def run(self, observed: Mapping[str, Observed | None]) -> list[Change]:
        # the diff builds a few objects per resource and keeps them (changes, planned values): the
        # cycle collector would re-walk them many times over for nothing on a large plan
        with paused_gc():
            return self._run(observed)

    def _run(self, observed: Mapping[str, Observed | None]) -> list[Change]:
        changes: list[Change] = []
        req = self.request
        replace = set(req.replace)
        for address in self.order:
            inst = self.instances[address]
            rec = self.state.resources.get(address)
            if req.destroy:
                continue
            try:
                changes.append(self._diff_one(inst, rec, observed, address in replace))
            except ProviderError as exc:  # a type refusing what its prediction was asked (core.file's confinement)
                raise ConfigError(
                    f"{address}: {exc.message}",
                    location=self.plan.location("resources", inst.name, "properties"),
                    hint=exc.hint or "change the resource's properties",
                ) from None
        # resources in state that the plan no longer has (or all of them on --destroy)
        for address, rec in self.state.resources.items():
            if address in self.instances and not req.destroy:
                continue
            spec = self.instances.get(address)
            disabled = not req.destroy and address in self.plan.disabled  # `enabled` is false
            if disabled:
                spec = unexpanded(self.plan, address.partition("[")[0])
            if spec is not None and spec.lifecycle.prevent_destroy:
                raise ConfigError(
                    f"{address} has lifecycle.prevent_destroy set and would be destroyed",
                    hint="remove prevent_destroy from the plan file first, or leave it out of the destroy "
                    "with --exclude " + address,
                    location=spec.location,
                )
            rt = self.providers.resource_type(rec.provider, rec.type)
            sens = sensitive_fields(rt.Properties) | set(rec.sensitive)
            changes.append(
                Change(
                    address=address,
                    type=rec.type,
                    provider=rec.provider,
                    action=Action.DELETE,
                    id=rec.id,
                    before={k: _mask(v, k in sens) for k, v in rec.properties.items()},
                    after=None,
                    reasons=["destroy requested"]
                    if req.destroy
                    else ["disabled (`enabled` is false)" if disabled else "removed from the plan file"],
                    depends_on=list(rec.dependencies),
                    sensitive=sorted(sens),
                )
            )
        return changes

    def _diff_one(
        self,
        inst: Instance,
        rec: ResourceRecord | None,
        observed: Mapping[str, Observed | None],
        force_replace: bool,
    ) -> Change:
        facts = self._types.get((inst.provider, inst.type))
        if facts is None:
            rt = self.providers.resource_type(inst.provider, inst.type)
            facts = self._types[(inst.provider, inst.type)] = _TypeFacts(
                rt, force_new_fields(rt.Properties), sensitive_fields(rt.Properties), frozenset(rt.attributes)
            )
        rt, fnew, computed = facts.rt, facts.force_new, facts.computed
        model = rt.Properties
        sens = facts.sensitive
        if inst.sensitive:
            sens = sens | inst.sensitive
        derived = self.derived_sensitive(inst)
        if derived:
            sens = sens | derived
        self.sensitive_of[inst.address] = sens
        self._any_sensitive = self._any_sensitive or bool(sens)
        resolved = resolve(inst.properties, self.lookup)

        def locate(prop_name: str) -> Location | None:
            if prop_name:
                return self.plan.location("resources", inst.name, "properties", prop_name)
            return inst.location

        desired, unknown = validate_properties(model, resolved, locate=locate)
        templated = bool(unknown)  # whether `desired` holds an Unknown anywhere
        seen = observed.get(inst.address, _NOT_REFRESHED)
        if rec is not None and seen is not None and inst.lifecycle.ignore_changes:
            # an update never writes an ignored value back (Terraform's ignore_changes); a
            # re-create after a delete outside uses the plan's values
            from cloudorch.engine.ignore import keep_ignored

            seen_now = seen.properties if isinstance(seen, Observed) else {}
            desired, kept = keep_ignored(desired, inst.lifecycle.ignore_changes, seen_now, rec.properties)
            unknown -= kept
        deps = sorted(self._dep_addresses(inst))
        after_unknown = sorted(unknown)
        base = {
            "address": inst.address,
            "type": inst.type,
            "provider": inst.provider,
            # only a value holding an Unknown differs from its template
            # apply resolves again only the properties listed in after_unknown
            "after": {k: to_template(v) if k in unknown else v for k, v in desired.items()}
            if templated
            else dict(desired),
            "after_unknown": after_unknown,
            "depends_on": deps,
            "sensitive": sorted(sens),
            "create_before_destroy": inst.lifecycle.create_before_destroy,
        }
        if rec is None:
            self.planned[inst.address] = _Planned(Action.CREATE, desired, rt.plan_create(desired), computed)
            return Change(action=Action.CREATE, reasons=[], **base)
        obs = observed.get(inst.address, _NOT_REFRESHED)
        if sens or rec.sensitive:
            before = {k: _mask(v, k in sens or k in rec.sensitive) for k, v in rec.properties.items()}
        else:
            before = dict(rec.properties)  # nothing to mask: the common case
        if obs is None:
            self.planned[inst.address] = _Planned(Action.CREATE, desired, rt.plan_create(desired), computed)
            return Change(
                action=Action.CREATE,
                id=None,
                before=before,
                reasons=["deleted outside cloudorch"],
                drift=True,
                **base,
            )
        if rec.type != inst.type:
            # another type at the same address is another object: the old one goes, as in
            # Terraform, whatever the properties say
            reason = f"type changed from {rec.type} to {inst.type}"
            if inst.lifecycle.prevent_destroy:
                raise ConfigError(
                    f"{inst.address} has lifecycle.prevent_destroy set and would be replaced ({reason})",
                    hint="keep the type, or remove prevent_destroy",
                    location=inst.location,
                )
            self.planned[inst.address] = _Planned(Action.REPLACE, desired, rt.plan_create(desired), computed)
            old_sens = set(rec.sensitive) | sens
            return Change(
                action=Action.REPLACE,
                id=rec.id,
                before={k: _mask(v, k in old_sens) for k, v in rec.properties.items()},
                reasons=[reason],
                **base,
            )
        seen_props: Mapping[str, Any] = obs.properties if isinstance(obs, Observed) else {}
        attributes = obs.attributes if isinstance(obs, Observed) else rec.attributes
        ignore = set(inst.lifecycle.ignore_changes)
        diffs: list[PropertyDiff] = []
        drift = False
        # a refresh that reads back exactly the plan's values (the usual no-change plan) leaves
        # nothing to compare: every value is equal to what was read, and equal values are the same
        if unknown or ignore or desired != seen_props:
            for key, want in desired.items():
                if key in ignore:
                    continue
                is_unknown = key in unknown
                if key in seen_props:
                    have = seen_props[key]
                elif key in rec.properties:
                    have = rec.properties[key]
                else:
                    continue
                if not is_unknown and _same(want, have):
                    continue
                if not is_unknown and key in rec.properties and _same(want, rec.properties[key]):
                    drift = True  # the plan did not change: the cloud did
                diffs.append(
                    PropertyDiff(
                        path=key,
                        before=_mask(have, key in sens or key in rec.sensitive),
                        after=_mask(to_template(want) if is_unknown else want, key in sens),
                        unknown=is_unknown,
                        sensitive=key in sens,
                        force_new=key in fnew,
                    )
                )
        reasons: list[str] = []
        if rec.tainted:
            # its create made the object but did not finish: it cannot be trusted, as in Terraform
            action = Action.REPLACE
            reasons.append("tainted: its create did not finish")
        elif force_replace:
            action = Action.REPLACE
            reasons.append("--replace requested")
        elif any(d.force_new for d in diffs):
            action = Action.REPLACE
            reasons.extend(f"`{d.path}` forces replacement" for d in diffs if d.force_new)
        elif diffs:
            action = Action.UPDATE
        else:
            action = Action.NOOP
        if action is Action.REPLACE and inst.lifecycle.prevent_destroy:
            raise ConfigError(
                f"{inst.address} has lifecycle.prevent_destroy set and would be replaced ({'; '.join(reasons)})",
                hint="change the plan so it can update in place, or remove prevent_destroy",
                location=inst.location,
            )
        if drift and action is not Action.NOOP:
            reasons.append("changed outside cloudorch")
        if action is Action.UPDATE:
            prior = Observed(rec.id, {**rec.properties, **seen_props}, dict(attributes))
            attributes = rt.plan_update(prior, desired)
        elif action is Action.REPLACE:
            attributes = rt.plan_create(desired)
        self.planned[inst.address] = _Planned(action, desired, attributes, computed)
        return Change(
            action=action,
            id=rec.id,
            before=before,
            diff=diffs,
            reasons=reasons,
            drift=drift,
            tainted=rec.tainted,
            **base,
        )

    def _dep_addresses(self, inst: Instance) -> Iterable[str]:
        for name in inst.depends_on:
            yield from self.addresses_of.get(name, ())


class _NotRefreshed:
    pass


_NOT_REFRESHED: Any = _NotRefreshed()


def deposed_changes(state: State, providers: ProviderSet, scope: set[str] | None = None) -> list[Change]:
    """A delete for every deposed object (an old object a replacement has not deleted yet)."""
    out: list[Change] = []
    for obj in state.deposed_objects():
        if scope is not None and obj.address not in scope:
            continue
        sens = sensitive_fields(providers.resource_type(obj.provider, obj.type).Properties) | set(
            getattr(obj, "sensitive", ())
        )
        out.append(
            Change(
                address=obj.address,
                type=obj.type,
                provider=obj.provider,
                action=Action.DELETE,
                id=obj.id,
                before={k: _mask(v, k in sens) for k, v in obj.properties.items()},
                reasons=[f"deposed object {obj.key}: a replacement superseded it and its delete did not finish"],
                depends_on=list(obj.dependencies),
                sensitive=sorted(sens),
                deposed=obj.key,
            )
        )
    return out


def adopt_refreshed(state: State, observed: Mapping[str, Any], providers: ProviderSet) -> None:
    """Take what refresh read into the in-memory state, as Terraform's refreshed prior state.

    An update is then called with the cloud's values as `old`, so a type that only sends what
    differs (tags, attributes) repairs drift instead of comparing two copies of the plan. Run
    after the diff: the planner tells drift from plan changes by the values state recorded.
    """
    of_type: dict[tuple[str, str], frozenset[str]] = {}  # sensitive property names, per type
    for address, obs in observed.items():
        rec = state.resources.get(address)
        if rec is None or not isinstance(obs, Observed):
            continue
        sens = of_type.get((rec.provider, rec.type))
        if sens is None:
            sens = of_type[(rec.provider, rec.type)] = sensitive_fields(
                providers.resource_type(rec.provider, rec.type).Properties
            )
        if rec.sensitive:
            sens = sens | set(rec.sensitive)
        old = rec.properties
        if obs.properties is old:
            continue  # the record itself (a state-only type): nothing read to take in
        props: dict[str, Any] | None = None  # a copy, made at the first value the cloud changed
        for key, value in obs.properties.items():
            if key in old:
                now = sensitive_marker(value) if key in sens and not is_sensitive_marker(value) else value
                if now is not old[key]:
                    if props is None:
                        props = dict(old)
                    props[key] = now
        if props is not None:
            rec.properties = props


def adopt_seen_in_diffs(state: State, cs: ChangeSet) -> None:
    """A saved plan's diffs hold what refresh saw: take it into state, as `adopt_refreshed` does.

    So applying a saved plan (and `rollback`, which applies one) repairs drift too. Sensitive
    values are shown masked in diffs and stay as state recorded them.
    """
    for c in cs.changes:
        rec = state.resources.get(c.address)
        if rec is None or c.action.value not in ("update", "replace") or not c.diff:
            continue
        props = dict(rec.properties)
        for d in c.diff:
            if d.path in props and not d.sensitive:
                props[d.path] = d.before
        rec.properties = props


def make_changeset(
    plan: PlanSpec, planner_changes: list[Change], state: State, request: PlanRequest, *, state_key: str
) -> ChangeSet:
    outputs: dict[str, Any] = {}
    if plan.outputs:  # what is sensitive where matters only to outputs
        sensitive_of = {c.address: set(c.sensitive) for c in planner_changes if c.deposed is None}
        for address, rec in state.resources.items():
            sensitive_of.setdefault(address, set(rec.sensitive))
        for name, out in plan.outputs.items():
            check_output_reads(plan, name, sensitive_of)
            outputs[name] = SENSITIVE if out.sensitive else out.value
    return ChangeSet(
        plan_name=plan.name or plan.path.stem,
        plan_file=str(plan.path),
        plan_hash=plan.plan_hash(),
        state_key=state_key,
        state_lineage=state.lineage if state.serial > 0 else None,
        state_serial=state.serial,
        destroy=request.destroy,
        variables={
            k: ("(sensitive)" if plan.variables[k].sensitive else v)
            for k, v in plan.variable_values.items()
            if k in plan.variables
        },
        changes=planner_changes,
        outputs=outputs,
        refreshed=request.refresh,
    )


def check_output_reads(plan: PlanSpec, name: str, sensitive_of: Mapping[str, set[str]]) -> None:
    """An output reading a sensitive property must be declared sensitive (a located error)."""
    out = plan.outputs[name]
    if out.sensitive:
        return
    for ref in find_refs(out.value):
        if ref.root != "resources":
            continue
        rname, key, rest = ref.resource_target()
        address = instance_address(rname, key)
        target = sensitive_of.get(address, set())
        if target and (not rest or str(rest[0]) in target):
            what = f"`{rest[0]}` of {address}" if rest else f"{address} (which has sensitive properties)"
            raise ConfigError(
                f"output `{name}` reads sensitive property {what} but is not declared sensitive",
                location=plan.location("outputs", name),
                hint=f"add `sensitive: true` to output `{name}` (write it as `{{value: ..., sensitive: true}}`)",
            )
