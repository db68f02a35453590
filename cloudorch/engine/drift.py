"""Drift: what the cloud has now against what state recorded and what the plan wants.

Owns the three-way drift report (`detect`) and the desired world of a revert to a state version
in history (`version_instances`); `lifecycle.ignore_changes` paths live in `engine/ignore.py`.
It reads the cloud through the planner's `refresh` and never writes state or changes the cloud:
reconciling and reverting go through the normal plan/apply path.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from cloudorch.changes import KNOWN_AFTER_APPLY, Change
from cloudorch.engine.ignore import path_steps, without_paths
from cloudorch.engine.planner import Planner, PlanRequest, refresh
from cloudorch.engine.providerset import ProviderSet
from cloudorch.engine.retry import call_with_retries
from cloudorch.errors import ConfigError, Location
from cloudorch.planfile import Instance, PlanSpec
from cloudorch.planfile.expressions import escape
from cloudorch.provider.contract import Observed, sensitive_fields
from cloudorch.state.model import ResourceRecord, State, is_sensitive_marker, sensitive_marker

#: how a sensitive value appears in a drift report
MASK = "(sensitive)"

DELETED = "deleted"
CHANGED = "changed"
CREATED_OUTSIDE = "created_outside"

# --------------------------------------------------------------------------- the report


@dataclass
class PropertyDrift:
    """One property, three ways: what the plan wants, what state recorded, what the cloud has."""

    path: str
    plan: Any
    state: Any
    cloud: Any
    sensitive: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "plan": self.plan, "state": self.state, "cloud": self.cloud}


@dataclass
class ResourceDrift:
    address: str
    type: str
    provider: str
    #: deleted (outside cloudorch), changed (outside cloudorch) or created_outside (not in state)
    status: str
    id: str | None = None
    cloud_id: str | None = None
    in_plan: bool = True
    properties: list[PropertyDrift] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "type": self.type,
            "provider": self.provider,
            "status": self.status,
            "id": self.id,
            "cloud_id": self.cloud_id,
            "in_plan": self.in_plan,
            "properties": [p.to_json() for p in self.properties],
        }


@dataclass
class DriftReport:
    plan_name: str
    plan_file: str
    state_serial: int
    #: addresses whose cloud object was read (state records in scope)
    checked: list[str] = field(default_factory=list)
    resources: list[ResourceDrift] = field(default_factory=list)
    #: address -> property paths whose drift lifecycle.ignore_changes hides
    ignored: dict[str, list[str]] = field(default_factory=dict)
    #: addresses the plan declares, state does not hold, and no cloud object was found for
    not_created: list[str] = field(default_factory=list)
    refresh_calls: int = 0
    find_calls: int = 0
    seconds: float = 0.0
    policy_results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def has_drift(self) -> bool:
        return bool(self.resources)

    @property
    def policy_blocking(self) -> list[dict[str, Any]]:
        return [r for r in self.policy_results if r.get("blocking")]

    def counts(self) -> dict[str, int]:
        out = {DELETED: 0, CHANGED: 0, CREATED_OUTSIDE: 0}
        for r in self.resources:
            out[r.status] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan_name,
            "plan_file": self.plan_file,
            "state_serial": self.state_serial,
            "drift": self.has_drift,
            "counts": {**self.counts(), "checked": len(self.checked)},
            "resources": [r.to_json() for r in self.resources],
            "ignored": self.ignored,
            "not_created": self.not_created,
            "policy_results": self.policy_results,
            "policy_blocking": len(self.policy_blocking),
            "calls": {"refresh": self.refresh_calls, "find": self.find_calls},
            "seconds": round(self.seconds, 3),
        }


def _mask(value: Any, sensitive: bool) -> Any:
    return MASK if sensitive and value is not None else value


def _ignore_paths(inst: Instance | None) -> list[str]:
    return list(inst.lifecycle.ignore_changes) if inst is not None else []


def _changed_properties(
    rec: ResourceRecord, obs: Observed, want: Mapping[str, Any], sens: frozenset[str], ignore: Sequence[str]
) -> tuple[list[PropertyDrift], list[str]]:
    drifted: list[PropertyDrift] = []
    hidden: list[str] = []
    top_ignored = {p for p in ignore if len(path_steps(p)) == 1}
    for key in sorted(obs.properties):
        if key not in rec.properties:
            continue  # state never recorded it: nothing to have drifted from
        have, recorded = obs.properties[key], rec.properties[key]
        if _equal(have, recorded):
            continue
        if key in top_ignored:
            hidden.append(key)
            continue
        if _equal(without_paths(key, have, ignore), without_paths(key, recorded, ignore)):
            hidden.extend(p for p in ignore if path_steps(p)[:1] == [key])
            continue
        s = key in sens
        drifted.append(PropertyDrift(key, _mask(want.get(key), s), _mask(recorded, s), _mask(have, s), s))
    return drifted, hidden


def _equal(a: Any, b: Any) -> bool:
    if is_sensitive_marker(a) or is_sensitive_marker(b):
        ma = a if is_sensitive_marker(a) else sensitive_marker(a)
        mb = b if is_sensitive_marker(b) else sensitive_marker(b)
        return bool(ma == mb)
    return bool(a == b)


def _wanted(change: Change | None) -> dict[str, Any]:
    """What the plan wants, with values that depend on resources not applied yet shown as such."""
    if change is None:
        return {}
    want = dict(change.after or {})
    for key in change.after_unknown:
        if key in want:
            want[key] = KNOWN_AFTER_APPLY
    return want


def _without_prevent_destroy(instances: Sequence[Instance]) -> list[Instance]:
    # drift only reads: a replacement the planner would refuse is still drift worth reporting
    out = []
    for inst in instances:
        if inst.lifecycle.prevent_destroy:
            inst = replace(inst, lifecycle=inst.lifecycle.model_copy(update={"prevent_destroy": False}))
        out.append(inst)
    return out


def detect(
    plan: PlanSpec,
    instances: Sequence[Instance],
    order: Sequence[str],
    state: State,
    providers: ProviderSet,
    *,
    scope: set[str] | None,
    parallelism: int,
) -> tuple[DriftReport, State]:
    """Refresh every state record in scope and compare three ways; also look for objects created outside.

    Returns the report and the live state (records as the cloud has them now, deleted ones
    left out) for policies to judge.
    """
    started = time.monotonic()
    report = DriftReport(plan.name or plan.path.stem, str(plan.path), state.serial)
    records = [r for a, r in sorted(state.resources.items()) if scope is None or a in scope]
    refreshed = refresh(records, providers, parallelism=parallelism)
    report.refresh_calls = refreshed.calls
    report.checked = [r.address for r in records]
    by_address = {i.address: i for i in instances}
    in_order = [a for a in order if scope is None or a in scope]
    planner = Planner(plan, _without_prevent_destroy(instances), in_order, state, providers, PlanRequest())
    wanted: dict[str, Change] = {c.address: c for c in planner.run(refreshed.observed)}
    live = state.model_copy(update={"resources": {}})
    for rec in records:
        rt = providers.resource_type(rec.provider, rec.type)
        sens = sensitive_fields(rt.Properties)
        inst = by_address.get(rec.address)
        change = wanted.get(rec.address) if inst is not None else None
        want = _wanted(change)
        obs = refreshed.observed.get(rec.address)
        if obs is None:
            props = [
                PropertyDrift(k, _mask(want.get(k), k in sens), _mask(v, k in sens), None, k in sens)
                for k, v in sorted(rec.properties.items())
            ]
            report.resources.append(
                ResourceDrift(rec.address, rec.type, rec.provider, DELETED, rec.id, None, inst is not None, props)
            )
            continue
        drifted, hidden = _changed_properties(rec, obs, want, sens, _ignore_paths(inst))
        if hidden:
            report.ignored[rec.address] = sorted(set(hidden))
        if drifted or obs.id != rec.id:
            report.resources.append(
                ResourceDrift(rec.address, rec.type, rec.provider, CHANGED, rec.id, obs.id, inst is not None, drifted)
            )
        live_props = dict(rec.properties)
        for k, v in obs.properties.items():
            live_props[k] = sensitive_marker(v) if k in sens and not is_sensitive_marker(v) else v
        live.resources[rec.address] = rec.model_copy(
            update={"id": obs.id, "properties": live_props, "attributes": dict(obs.attributes)}
        )
    _find_created_outside(report, instances, wanted, state, providers, scope, parallelism)
    report.resources.sort(key=lambda r: r.address)
    report.seconds = time.monotonic() - started
    return report, live


def _find_created_outside(
    report: DriftReport,
    instances: Sequence[Instance],
    wanted: Mapping[str, Change],
    state: State,
    providers: ProviderSet,
    scope: set[str] | None,
    parallelism: int,
) -> None:
    """Ask `find` (tag `cloudorch:address` or the deterministic name) for declared objects state lacks."""
    todo: list[tuple[Instance, Change]] = []
    for inst in instances:
        if inst.address in state.resources or (scope is not None and inst.address not in scope):
            continue
        change = wanted.get(inst.address)
        if change is None or change.after is None:
            continue
        if change.after_unknown:
            report.not_created.append(inst.address)  # its name depends on what is not created yet
            continue
        todo.append((inst, change))

    def one(item: tuple[Instance, Change]) -> tuple[Instance, Change, Observed | None]:
        inst, change = item
        rt = providers.resource_type(inst.provider, inst.type)
        props = rt.Properties.model_validate(change.after)
        return inst, change, call_with_retries(rt.provider, inst.address, lambda: rt.find(inst.address, props))

    report.find_calls = len(todo)
    if len(todo) > 1:
        with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(todo)))) as pool:
            found = list(pool.map(one, todo))
    else:
        found = [one(t) for t in todo]
    for inst, change, obs in found:
        if obs is None:
            report.not_created.append(inst.address)
            continue
        rt = providers.resource_type(inst.provider, inst.type)
        sens = sensitive_fields(rt.Properties)
        want = _wanted(change)
        props = [
            PropertyDrift(k, _mask(want.get(k), k in sens), None, _mask(v, k in sens), k in sens)
            for k, v in sorted(obs.properties.items())
        ]
        report.resources.append(
            ResourceDrift(inst.address, inst.type, inst.provider, CREATED_OUTSIDE, None, obs.id, True, props)
        )
    report.not_created.sort()


# --------------------------------------------------------------------------- revert to a state version


@dataclass
class Unrestorable:
    address: str
    property: str


def version_instances(
    version: State,
    instances: Sequence[Instance],
    plan_values: Mapping[str, Mapping[str, Any]],
    providers: ProviderSet,
    locate: Location,
) -> tuple[list[Instance], list[tuple[str, str]], list[Unrestorable]]:
    """The resources of a state version as plan instances, plus their dependency edges.

    Properties are the ones applied then (escaped, so a literal `${` stays literal). Sensitive
    properties are stored only as hashes: one is restored when the plan's current value
    (`plan_values`, address -> property -> value) has the same hash; the others are returned as
    unrestorable and the caller refuses. Lifecycle rules come from the plan where it still
    declares the address.
    """
    from cloudorch.planfile.model import Lifecycle

    current = {i.address: i for i in instances}
    out: list[Instance] = []
    edges: list[tuple[str, str]] = []
    missing: list[Unrestorable] = []
    for address, rec in sorted(version.resources.items()):
        rt = providers.resource_type(rec.provider, rec.type)
        props = dict(rec.properties)
        sens = sensitive_fields(rt.Properties) | set(rec.sensitive)  # and values from sensitive variables
        for key in sorted(sens):
            stored = props.get(key)
            if not is_sensitive_marker(stored):
                continue
            have = plan_values.get(address, {})
            if key in have and sensitive_marker(have[key]) == stored:
                props[key] = have[key]
            else:
                missing.append(Unrestorable(address, key))
                props.pop(key, None)
        spec = current.get(address)
        deps = [d for d in rec.dependencies if d in version.resources]
        edges.extend((d, address) for d in deps)
        out.append(
            Instance(
                address=address,
                name=address,  # depends_on below holds addresses: name == address keeps them apart
                key=None,
                type=rec.type,
                provider=rec.provider,
                properties=escape(props),
                depends_on=deps,
                lifecycle=spec.lifecycle if spec is not None else Lifecycle(),
                location=spec.location if spec is not None else locate,
                sensitive=frozenset(sens),
            )
        )
    return out, edges, missing


def pick_serial(history: Sequence[Any], current: int, to: int | None, steps: int | None) -> int:
    """The serial `--to SERIAL` or `--steps N` names, checked against the versions history holds."""
    if (to is None) == (steps is None):
        raise ConfigError("give exactly one of --to SERIAL or --steps N", hint="see `cloudorch state history PLAN`")
    older: list[int] = sorted((int(h.serial) for h in history if h.serial < current), reverse=True)
    if steps is not None:
        if steps < 1 or steps > len(older):
            raise ConfigError(
                f"--steps {steps}: history holds {len(older)} earlier version(s)",
                hint="see `cloudorch state history PLAN`",
            )
        return older[steps - 1]
    assert to is not None
    if to == current:
        raise ConfigError(f"--to {to} is the current serial", hint="nothing to revert to")
    if to not in older:
        shown = ", ".join(str(s) for s in older[:20]) or "none"
        raise ConfigError(
            f"--to {to}: no such earlier version in history (current serial {current})",
            hint=f"earlier serials kept: {shown}",
        )
    return to
