"""Revert: bring the cloud back to the resources of an earlier state serial, through the normal apply.

(Not the undo of a failed apply, which is `run/apply.py`, nor a release rollback, which is
`release/promotion.py`.) The state event it leaves keeps its historical kind, `rollback`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloudorch.errors import ConfigError
from cloudorch.run.apply import ApplyResult, Confirm, OnPlan, apply_in
from cloudorch.run.options import Interrupt, RunOptions
from cloudorch.run.plan import Planned, judge, run_inputs, withhold_sensitive
from cloudorch.run.recording import records
from cloudorch.run.session import Session, session

if TYPE_CHECKING:
    from cloudorch.engine.applier import ApplyObserver


def _plan_sensitive_values(sess: Session) -> dict[str, dict[str, Any]]:
    """address -> sensitive property -> the plan's value today (references resolved from state)."""
    from cloudorch import graph as graphs
    from cloudorch.planfile import Reference, Unknown, contains_unknown, resolve
    from cloudorch.planfile.expand import instance_address
    from cloudorch.provider.contract import sensitive_fields
    from cloudorch.state.model import is_sensitive_marker

    out: dict[str, dict[str, Any]] = {}

    def lookup(ref: Reference) -> Any:
        if ref.root != "resources":
            return Unknown(ref.text)
        name, key, rest = ref.resource_target()
        address = instance_address(name, key)
        rec = sess.state.resources.get(address)
        if rec is None:
            return Unknown(ref.text)
        try:
            value = rec.value(rest)
            if rest and str(rest[0]) in out.get(address, {}) and is_sensitive_marker(rec.value(rest[:1])):
                # state keeps a sensitive value as a hash: read the plan's value, computed above
                value = out[address][str(rest[0])]
                for step in rest[1:]:
                    value = value[step]
            return value
        except (LookupError, TypeError):
            return Unknown(ref.text)

    by_address = {i.address: i for i in sess.loaded.instances}
    ordered = [by_address[a] for a in graphs.order(sess.loaded.graph) if a in by_address]
    for inst in ordered:
        now = sess.state.resources.get(inst.address)
        sens = sensitive_fields(sess.providers.resource_type(inst.provider, inst.type).Properties) | inst.sensitive
        sens |= set(now.sensitive) if now is not None else set()  # read from another's sensitive property
        wanted = {k: v for k, v in inst.properties.items() if k in sens}
        if wanted:
            values = resolve(wanted, lookup)
            out[inst.address] = {k: v for k, v in values.items() if not contains_unknown(v)}
    return out


def revert_plan_in(sess: Session, opts: RunOptions, *, to: int | None = None, steps: int | None = None) -> Planned:
    """The changeset that brings the cloud back to the resources of an earlier state serial.

    Desired properties come from that version (the last applied ones then), compared with the
    cloud as it is now; what was created since is deleted. Lifecycle rules and policies apply.
    """
    from cloudorch import graph as graphs
    from cloudorch.engine.drift import pick_serial, version_instances
    from cloudorch.engine.planner import Planner, PlanRequest, deposed_changes, make_changeset, refresh
    from cloudorch.engine.undo import reference_dependencies

    loaded, state = sess.loaded, sess.state
    serial = pick_serial(sess.backend.history(), state.serial, to, steps)
    version = sess.backend.read_version(serial)
    instances, edges, missing = version_instances(
        version, loaded.instances, _plan_sensitive_values(sess), sess.providers, loaded.plan.location()
    )
    if missing:
        names = ", ".join(f"{m.address}.{m.property}" for m in missing)
        raise ConfigError(
            f"cannot restore sensitive value(s) of serial {serial}: {names} (state keeps only their hashes)",
            hint="set the plan file (or --var) to the value each had then: cloudorch matches it by hash; "
            "or roll back to another serial",
        )
    instances = reference_dependencies(instances, version)
    g = graphs.build([(i.address, {}) for i in instances], edges)
    request = PlanRequest(parallelism=opts.parallelism)
    observed = refresh(list(state.resources.values()), sess.providers, parallelism=opts.parallelism).observed
    planner = Planner(loaded.plan, instances, graphs.order(g), state, sess.providers, request)
    changes = planner.run(observed) + deposed_changes(state, sess.providers)
    for c in changes:
        if c.action.value == "delete" and c.deposed is None:
            c.reasons = [f"not in serial {serial}"]
        elif c.is_change:
            c.reasons.append(f"rollback to serial {serial}")  # printed; tests and users read it
    built = make_changeset(loaded.plan, changes, state, request, state_key=state.state_key)
    inputs = withhold_sensitive(
        run_inputs(opts, rollback={"from_serial": state.serial, "to_serial": serial}), loaded.plan
    )
    return judge(sess, opts, built.model_copy(update={"inputs": inputs}))


def revert_plan(opts: RunOptions, *, to: int | None = None, steps: int | None = None) -> Planned:
    with session(opts, fold=False) as sess:
        return revert_plan_in(sess, opts, to=to, steps=steps)


@records("rollback")
def revert(
    opts: RunOptions,
    *,
    to: int | None = None,
    steps: int | None = None,
    confirm: Confirm | None = None,
    observer: ApplyObserver | None = None,
    interrupt: Interrupt | None = None,
    on_plan: OnPlan | None = None,
) -> ApplyResult | None:
    """Plan a revert to an earlier serial, confirm, and apply it in the same session.

    The new state gets a new serial and a `rollback` event with both serials. None: declined.
    """
    from cloudorch.engine.applier import check_on_failure
    from cloudorch.engine.planner import adopt_seen_in_diffs

    check_on_failure(opts.on_failure)
    with session(opts, fold=True) as sess:
        planned = revert_plan_in(sess, opts, to=to, steps=steps)
        adopt_seen_in_diffs(sess.state, planned.changeset)  # what the refresh saw, as a saved plan's apply does
        return apply_in(sess, opts, planned, confirm=confirm, observer=observer, interrupt=interrupt, on_plan=on_plan)
