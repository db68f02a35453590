"""Undo: reverse what a failed apply finished, built from the journal's inverse records.

The undo of each operation the apply finished is read from the journal (never from memory):
a create is deleted, an update is updated back to the previous properties, a replace deletes
the new object and re-creates one from the previous properties, a delete re-creates the object
from its previous properties (what was inside it cannot come back). The undo runs through the
scheduler in reverse dependency order, journaled like any apply (op ids `undo:ADDRESS`), so a
crash during the undo loses nothing either. It does not decide *whether* to undo (the caller
does: `apply --on-failure=rollback`, or `recover` finishing an undo a crash cut short) and never
prints. "Undo" is this and only this: going back to a state serial is a revert, and re-deploying
an earlier version of a release is a release rollback (`cloudorch.release`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any

from cloudorch.changes import Action, Change, ChangeSet
from cloudorch.engine.applier import Applier, ApplyObserver, Op
from cloudorch.engine.providerset import ProviderSet
from cloudorch.engine.scheduler import Interrupt, Task
from cloudorch.errors import CloudorchError
from cloudorch.planfile import Instance
from cloudorch.state.backends.base import StateBackend
from cloudorch.state.journal import Journal, JournalReplay
from cloudorch.state.model import DeposedObject, ResourceRecord, State, is_sensitive_marker

UNDO_PREFIX = "undo:"

_DONE = {
    Action.DELETE: "deleted (this apply created it)",
    Action.UPDATE: "updated back to its previous properties",
    Action.REPLACE: "replaced back: re-created from its previous properties",
    Action.CREATE: "re-created from its previous properties",
}


@dataclass
class UndoReport:
    """What the undo undid, what it could not, and what the user should know."""

    undone: dict[str, str] = field(default_factory=dict)  # address -> what was done
    not_undone: dict[str, str] = field(default_factory=dict)  # address -> why not
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: undo operations still running when a second Ctrl-C stopped the wait: the journal must stay
    abandoned: list[str] = field(default_factory=list)

    #: address -> how it differs from the state before the apply (id, properties, presence)
    differences: dict[str, str] = field(default_factory=dict)
    #: journal payloads of old objects made current again (a replacement still deposed them)
    swaps: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def complete(self) -> bool:
        return not self.not_undone

    @property
    def as_before(self) -> bool:
        """Every address has the id and properties it had before the apply."""
        return self.complete and not self.differences

    def to_json(self) -> dict[str, Any]:
        return {
            "undone": self.undone,
            "not_undone": self.not_undone,
            "warnings": self.warnings,
            "complete": self.complete,
            "as_before": self.as_before,
            "differences": self.differences,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class UndoPlan:
    """The undo operations (as changes the applier can carry out) and their order."""

    changes: dict[str, Change] = field(default_factory=dict)
    after: dict[str, set[str]] = field(default_factory=dict)  # undo of key waits for these undos
    report: UndoReport = field(default_factory=UndoReport)
    #: address -> its record before the apply (None: the apply created it), from the inverse records
    previous: dict[str, ResourceRecord | None] = field(default_factory=dict)


def completed_forward(replay: JournalReplay) -> list[str]:
    """Addresses whose forward operation finished (or, after a crash, may have) and is not undone yet.

    An operation still in flight in the journal counts: after a crash, recovery has already
    adopted what it made (or recorded it absent), and the undo below compares with state.
    """
    done: dict[str, None] = {}
    for pending in replay.in_flight:
        if _forward_op(pending) == str(pending.get("address")):
            done[str(pending.get("address"))] = None
    for entry in replay.completed:
        op = str(entry.op.get("op", ""))
        address = str(entry.op.get("address"))
        if entry.event != "finished":
            continue
        if op.startswith(UNDO_PREFIX):
            done.pop(address, None)
        elif _forward_op(entry.op) == address and "#deposed:" not in op:
            done[address] = None  # either half of a replace counts
    return list(done)


def _forward_op(payload: dict[str, Any]) -> str:
    """The address a forward op id names: `ADDR`, `ADDR#destroy` (a replace's old object)."""
    return str(payload.get("op", "")).split("#", 1)[0]


def build_undo(replay: JournalReplay, state: State) -> UndoPlan:
    """Turn the journal's inverse records of finished operations into undo changes."""
    plan = UndoPlan()
    report = plan.report
    for address, line in replay.inverses.items():
        raw = line.get("previous")
        plan.previous[address] = ResourceRecord.model_validate(raw) if raw is not None else None
    for address in completed_forward(replay):
        inv = replay.inverses.get(address)
        if inv is None:
            report.not_undone[address] = "the journal holds no inverse record for it"
            continue
        change = _undo_change(address, inv, state, report)
        if change is not None:
            plan.changes[address] = change
    for address in plan.changes:
        plan.after.setdefault(address, set())
    return plan


def _undo_change(address: str, inv: dict[str, Any], state: State, report: UndoReport) -> Change | None:
    undo = inv.get("undo")
    current = state.resources.get(address)
    common: dict[str, Any] = {"address": address, "type": str(inv["type"]), "provider": str(inv["provider"])}
    if undo == "delete":
        if current is None:
            return None  # already gone
        return Change(action=Action.DELETE, id=current.id, before=current.properties, **common)
    raw = inv.get("previous")
    if raw is None:
        report.not_undone[address] = "the journal holds no previous record for it"
        return None
    previous = ResourceRecord.model_validate(raw)
    if undo == "replace":
        back = _undepose(address, previous, state, report)
        if back is not None:
            return back
    masked = sorted(k for k, v in previous.properties.items() if is_sensitive_marker(v))
    if masked:
        report.not_undone[address] = (
            f"its previous value of sensitive propert{'y' if len(masked) == 1 else 'ies'} "
            f"{', '.join(masked)} is kept only as a hash; set it again with `cloudorch apply`"
        )
        return None
    after = dict(previous.properties)
    fields = {"after": after, "depends_on": list(previous.dependencies)}
    if current is not None and current.properties == previous.properties and (
        undo != "replace" or current.id == previous.id
    ):
        return None  # already as it was (e.g. the undo finished before a crash)
    if undo == "update":
        if current is None:
            report.not_undone[address] = "it is no longer in state"
            return None
        return Change(action=Action.UPDATE, id=current.id, before=current.properties, **fields, **common)
    if undo == "replace":
        report.warnings.append(
            f"{address}: the replaced object cannot be brought back; a new one is made with its previous "
            f"properties (it was {previous.id})"
        )
        if current is None:
            return Change(action=Action.CREATE, **fields, **common)
        return Change(action=Action.REPLACE, id=current.id, before=current.properties, **fields, **common)
    if undo == "create":
        report.warnings.append(
            f"{address}: re-created from its previous properties; data that was inside it cannot come back"
        )
        return Change(action=Action.CREATE, **fields, **common)
    report.not_undone[address] = f"unknown undo {undo!r} in the journal"
    return None


def _undepose(address: str, previous: ResourceRecord, state: State, report: UndoReport) -> Change | None:
    """A create-before-destroy replace whose old object still exists (deposed): make the old
    object current again and depose the new one, which the undo then deletes once what uses
    it was put back. The old object comes back itself, not a copy."""
    old = next((d for d in state.deposed.get(address, []) if d.id == previous.id), None)
    current = state.resources.get(address)
    if old is None or current is None or current.id == previous.id:
        return None
    new = DeposedObject.of(current)
    state.drop_deposed(address, old.key)
    state.resources[address] = previous
    state.add_deposed(new)
    report.swaps.append(
        {
            "op": f"{UNDO_PREFIX}{address}#swap",
            "address": address,
            "action": "restore",
            "record": previous.model_dump(mode="json"),
            "deposed": new.model_dump(mode="json"),
            "undeposed_key": old.key,
        }
    )
    return Change(
        action=Action.DELETE,
        address=address,
        type=new.type,
        provider=new.provider,
        id=new.id,
        before=dict(new.properties),
        depends_on=list(new.dependencies),
        deposed=new.key,
        reasons=[f"its old object {previous.id} is current again; the new one, {new.id}, is deleted"],
    )


def _undo_failed(replay: JournalReplay, state: State, providers: ProviderSet, plan: UndoPlan) -> None:
    """Failed operations may have done half their work; ask the cloud what they left."""
    for entry in replay.completed:
        op = entry.op
        address = str(op.get("address"))
        if entry.event != "failed" or op.get("op") != address:
            continue
        made = op.get("record")
        if made is not None and address not in plan.changes:
            # its create made an object and a later step failed: state holds it tainted
            _undo_tainted(replay.inverses.get(address, {}), address, str(made.get("id")), state, plan)
        elif op.get("action") == "create":
            _remove_failed_create(entry.started, address, state, providers, plan)
        elif op.get("action") == "update":
            _revert_failed_update(replay.inverses.get(address, {}), entry.started, address, state, plan)
        elif op.get("action") in ("replace", "delete"):
            _restore_half_done(replay, address, str(op.get("action")), state, providers, plan)


def _undo_tainted(inv: dict[str, Any], address: str, made_id: str, state: State, plan: UndoPlan) -> None:
    current = state.resources.get(address)
    if current is None or current.id != made_id:
        return
    if inv.get("previous") is not None:
        change = _undo_change(address, {**inv, "undo": "replace"}, state, plan.report)
    else:
        change = Change(
            action=Action.DELETE,
            address=address,
            type=current.type,
            provider=current.provider,
            id=current.id,
            before=current.properties,
            reasons=["its failed create had left it behind"],
        )
    if change is not None:
        plan.changes[address] = change
        plan.after.setdefault(address, set())


def _revert_failed_update(
    inv: dict[str, Any], started: dict[str, Any] | None, address: str, state: State, plan: UndoPlan
) -> None:
    """An update can fail half-way (tags changed, then a setting refused): apply the previous
    properties again, diffed against what the update attempted so every touched setting is reset."""
    current = state.resources.get(address)
    if current is None or "previous" not in inv:
        return
    if started is None or "properties" not in started:
        plan.report.warnings.append(
            f"{address}: its update failed; the type journals no properties, so a partial update is not reverted"
        )
        return
    state.resources[address] = current.model_copy(update={"properties": dict(started["properties"])})
    change = _undo_change(address, inv, state, plan.report)
    if change is None:
        state.resources[address] = current
        return
    plan.changes[address] = change.model_copy(update={"reasons": ["its failed update was reverted"]})
    plan.after.setdefault(address, set())


def _remove_failed_create(
    started: dict[str, Any] | None, address: str, state: State, providers: ProviderSet, plan: UndoPlan
) -> None:
    """A create that failed after the cloud made the object (e.g. a later configuration call was
    refused) leaves it behind, unknown to state: find it by name or tag and delete it."""
    nothing = f"{address}: its create failed and left nothing behind"
    if started is None or "properties" not in started or address in state.resources:
        plan.report.warnings.append(f"{address}: its create failed (the type cannot look for what it left)")
        return
    try:
        rt = providers.resource_type(str(started["provider"]), str(started["type"]))
        found = rt.find(address, rt.Properties.model_construct(**started["properties"]))
    except CloudorchError as exc:
        plan.report.not_undone[address] = f"could not look for what its failed create left: {exc}"
        return
    if found is None:
        plan.report.warnings.append(nothing)
        return
    state.resources[address] = ResourceRecord(
        address=address,
        type=str(started["type"]),
        provider=str(started["provider"]),
        id=found.id,
        properties=dict(started["properties"]),
        attributes=found.attributes,
    )
    plan.changes[address] = Change(
        action=Action.DELETE,
        address=address,
        type=str(started["type"]),
        provider=str(started["provider"]),
        id=found.id,
        before=dict(started["properties"]),
        reasons=["its failed create had left it behind"],
    )
    plan.after.setdefault(address, set())


def _restore_half_done(
    replay: JournalReplay, address: str, action: str, state: State, providers: ProviderSet, plan: UndoPlan
) -> None:
    """A replace that failed after deleting the old object (or a delete that failed half-way) left
    state pointing at nothing: ask the cloud, and re-create the object from its previous properties."""
    inv = replay.inverses.get(address, {})
    current = state.resources.get(address)
    if current is None or "previous" not in inv or address in plan.changes:
        return
    try:
        rt = providers.resource_type(current.provider, current.type)
        seen = rt.read(address, current.id, rt.Properties.model_construct(**current.properties))
    except CloudorchError as exc:
        plan.report.not_undone[address] = f"could not tell whether its failed {action} deleted it: {exc}"
        return
    if seen is not None:
        plan.report.warnings.append(f"{address}: its {action} failed and left the object in place")
        return
    state.resources.pop(address, None)
    change = _undo_change(address, {**inv, "undo": "create"}, state, plan.report)
    if change is not None:
        plan.changes[address] = change
        plan.after.setdefault(address, set())


class _UndoApplier(Applier):
    """Runs the undo as an apply: in dependency order (what is restored waits for what it
    refers to; a delete waits for what used the object), each restored resource's references
    re-resolved against the objects that exist at that moment."""

    def __init__(self, plan: UndoPlan, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan = plan

    def tasks(self) -> list[Task[Op]]:
        out = super().tasks()
        by_address = {t.payload.change.address: t for t in out if t.payload.part in ("apply", "delete")}
        for t in out:
            for extra in self.plan.after.get(t.payload.change.address, ()):
                if extra in by_address and by_address[extra] is not t:
                    t.after.add(by_address[extra].key)
        return out

    def _resolve_after(self, c: Change) -> dict[str, Any]:
        after = super()._resolve_after(c)
        with self._state_lock:
            return rereference(after, c.depends_on, self.plan.previous, self.state)


def rereference(
    after: dict[str, Any],
    depends_on: list[str],
    previous: dict[str, ResourceRecord | None],
    state: State,
) -> dict[str, Any]:
    """Restored properties hold the values their dependencies had before the apply (ids, ARNs).

    A dependency that was replaced (and maybe re-created by the undo) has other values now:
    each old value is swapped for the value the same attribute has now, so nothing restored
    points at an object that no longer exists.
    """
    swaps: dict[str, str] = {}
    for dep in depends_on:
        before = previous.get(dep)
        now = state.resources.get(dep)
        if before is None or now is None:
            continue
        pairs = [(before.id, now.id)] + [
            (v, now.attributes.get(k)) for k, v in before.attributes.items() if k in now.attributes
        ]
        for old, new in pairs:
            if isinstance(old, str) and isinstance(new, str) and old != new and len(old) >= 4:
                swaps[old] = new
    if not swaps:
        return after
    return {k: _swap_values(v, swaps) for k, v in after.items()}


def differences(previous: dict[str, ResourceRecord | None], state: State) -> dict[str, str]:
    """How each address of the apply differs from its record before it (empty: as before)."""
    out: dict[str, str] = {}
    for address, before in sorted(previous.items()):
        now = state.resources.get(address)
        if before is None:
            if now is not None:
                out[address] = f"exists ({now.id}); it did not before the apply"
            continue
        if now is None:
            out[address] = f"is gone; it was {before.id}"
            continue
        parts: list[str] = []
        if now.id != before.id:
            parts.append(f"id {before.id} is now {now.id}")
        changed = sorted(k for k in set(before.properties) | set(now.properties)
                         if before.properties.get(k) != now.properties.get(k))
        if changed:
            parts.append("properties differ: " + ", ".join(changed))
        if parts:
            out[address] = "; ".join(parts)
    for obj in state.deposed_objects():
        if obj.address in previous:
            out.setdefault(obj.address, f"an old object {obj.id} is kept deposed; the next apply deletes it")
    return out


def undo_apply(
    replay: JournalReplay,
    state: State,
    providers: ProviderSet,
    backend: StateBackend,
    journal: Journal,
    *,
    parallelism: int,
    observer: ApplyObserver | None = None,
    interrupt: Interrupt | None = None,
    reason: str = "",
) -> UndoReport:
    """Undo every operation `replay` says finished, journaling into `journal`; state is updated in place."""
    t0 = time.monotonic()
    plan = build_undo(replay, state)
    _undo_failed(replay, state, providers, plan)
    report = plan.report
    # the journal's marker line keeps its on-disk name (`rollback`): journals written by earlier
    # versions must still be read by `recover` (see `cloudorch/state/journal.py`)
    # the undo's intents, durable before its first operation: a kill at any point of the undo
    # leaves a journal whose next fold (`recover`) finds what is left to undo (`completed_forward`)
    journal.rollback(
        {
            "op": "rollback",
            "address": "*",
            "action": "rollback",
            "reason": reason,
            "undo": sorted(plan.changes),
            "intents": [
                {"address": a, "action": c.action.value, "id": c.id, "deposed": c.deposed}
                for a, c in sorted(plan.changes.items())
            ],
        }
    )
    for swap in report.swaps:
        journal.finished(swap)  # durable before the new objects are deleted
    if plan.changes:
        if observer is not None:
            observer.undo_started(len(plan.changes))
        cs = ChangeSet(
            plan_name=state.plan_name,
            plan_file="",
            plan_hash="",
            state_key=state.state_key,
            changes=list(plan.changes.values()),
        )
        applier = _UndoApplier(
            plan,
            cs,
            state,
            providers,
            backend,
            journal,
            parallelism=parallelism,
            observer=observer,
            interrupt=interrupt,
            on_failure="continue",  # undo as much as can be undone
            op_prefix=UNDO_PREFIX,
        )
        result = applier.run(record_inverses=False)
        for address in result.succeeded:
            c = plan.changes[address]
            report.undone[address] = c.reasons[0] if c.reasons else _DONE[c.action]
        for address, why in result.failed.items():
            report.not_undone[address] = f"its undo failed: {why}"
        for address, why in result.skipped.items():
            report.not_undone[address] = f"its undo was skipped: it {why}"
        for address in result.not_started:
            report.not_undone[address] = "its undo did not run (interrupted)"
        for address in result.abandoned:
            report.not_undone[address] = "its undo was still running when the wait was stopped; run `cloudorch recover`"
        report.abandoned = list(result.abandoned)
    report.differences = differences(plan.previous, state)
    report.seconds = time.monotonic() - t0
    return report


def reference_dependencies(instances: list[Instance], version: State) -> list[Instance]:
    """For `rollback --to`: a restored property that holds a value of one of its dependencies
    (an id, an ARN) as it was then becomes a reference to that dependency again, so it resolves
    to the object that exists when the rollback applies, not to one since replaced."""
    out: list[Instance] = []
    for inst in instances:
        refs: dict[str, str] = {}
        for dep in inst.depends_on:
            rec = version.resources.get(dep)
            if rec is None:
                continue
            for attr, value in rec.attributes.items():
                if isinstance(value, str) and len(value) >= 8 and "${" not in value:
                    refs.setdefault(value, _reference(dep, attr))
        if not refs:
            out.append(inst)
            continue
        # references again: no longer the properties as written (`literal`)
        out.append(dataclasses.replace(inst, properties=_swap_values(inst.properties, refs), literal=False))
    return out


def _swap_values(value: Any, swaps: dict[str, str]) -> Any:
    """`value` with each string equal to a key of `swaps`, or containing one, rewritten."""
    if isinstance(value, str):
        if value in swaps:
            return swaps[value]
        for old in sorted(swaps, key=len, reverse=True):
            if len(old) >= 8 and old in value:
                value = value.replace(old, swaps[old])
        return value
    if isinstance(value, dict):
        return {k: _swap_values(v, swaps) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap_values(v, swaps) for v in value]
    return value


def _reference(address: str, attr: str) -> str:
    name, bracket, key = address.partition("[")
    if bracket:
        return "${resources." + name + "[" + json.dumps(key.rstrip("]")) + "]." + attr + "}"
    return "${resources." + address + "." + attr + "}"
