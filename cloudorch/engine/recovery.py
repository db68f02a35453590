"""Crash recovery: replay the journal of a run that died into state, and find in-flight creates.

A journal file left behind means the last apply never finished cleanly (SIGKILL, power loss,
a second Ctrl-C). Every finished operation in it is folded into state; every operation that
started but never finished is looked up in the cloud with the type's `find` (by tag or client
token) and adopted if it exists, or recorded absent if the type can say so; an in-flight delete
is confirmed by reading the object back. Objects are told apart by id: an in-flight create adopts
only an object whose id neither state nor its journal line knew (after a replace, the old object
carries the same address tag), and the old object of a create-before-destroy replace is recorded
deposed. So the next apply neither loses nor duplicates anything.
A journal whose undo was cut short is folded only by a caller that finishes the undo
(`resume_undo=True`, `cloudorch recover`): the journal is then kept, with how each in-flight
operation was settled, and the undo goes on in it (`RecoveryReport.pending`), so killing the
finishing undo, however often, leaves a journal the next `recover` resumes. Any other caller is
refused before anything is written: folding would drop the undo. Folding the journal's finished operations into state is
`cloudorch.state.recovery.apply_replay`; this module adds what needs the cloud.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloudorch.engine.providerset import ProviderSet
from cloudorch.errors import CloudorchError, StateError
from cloudorch.provider.contract import sensitive_fields
from cloudorch.state.backends.base import StateBackend
from cloudorch.state.journal import JournalReplay, PendingRun, pending
from cloudorch.state.model import DeposedObject, ResourceRecord, State, StateEvent, sensitive_marker
from cloudorch.state.recovery import apply_replay


@dataclass
class RecoveryReport:
    """What crash recovery did to state: folded from the journal, adopted, confirmed, or lost."""

    recovered: list[str] = field(default_factory=list)  # finished ops folded into state
    adopted: list[str] = field(default_factory=list)  # in-flight creates found in the cloud
    absent: list[str] = field(default_factory=list)  # in-flight creates the cloud says do not exist
    deleted: list[str] = field(default_factory=list)  # in-flight deletes confirmed gone
    lost: list[str] = field(default_factory=list)  # in-flight ops whose outcome is unknown
    journal: str = ""
    #: the journal as read, so an unfinished undo can be completed from its inverse records
    replay: JournalReplay | None = None
    #: with an unfinished undo and `resume_undo`: the journal, kept, for the undo to go on in
    pending: PendingRun | None = field(default=None, repr=False)

    @property
    def undo_unfinished(self) -> bool:
        """The killed run had begun undoing a failed apply (`--on-failure=rollback`) and did not finish."""
        return self.replay is not None and self.replay.rollback is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "recovered": self.recovered,
            "adopted": self.adopted,
            "absent": self.absent,
            "deleted": self.deleted,
            "lost": self.lost,
            "journal": self.journal,
            # the key predates the name "undo"; `recover --json` readers depend on it
            "rollback_unfinished": self.undo_unfinished,
        }

    def summary(self) -> str:
        parts = [f"recovered {len(self.recovered)} finished operation(s) from the journal of an interrupted run"]
        if self.adopted:
            parts.append(f"adopted {len(self.adopted)} object(s) a crashed create made: " + ", ".join(self.adopted))
        if self.absent:
            parts.append(
                f"{len(self.absent)} in-flight create(s) made nothing and were recorded absent: "
                + ", ".join(self.absent)
            )
        if self.deleted:
            parts.append(f"{len(self.deleted)} in-flight delete(s) confirmed gone: " + ", ".join(self.deleted))
        if self.lost:
            parts.append(
                f"{len(self.lost)} operation(s) were in flight and could not be confirmed ("
                + ", ".join(self.lost)
                + "); the next plan shows what is still to do"
            )
        return "; ".join(parts)


def recover(backend: StateBackend, providers: ProviderSet, *, resume_undo: bool = False) -> RecoveryReport | None:
    """Fold a leftover journal into state; call with the state lock held. A journal that is not
    bound to the stored state is refused (StateError) before anything is written, and so is one
    whose undo was cut short unless the caller finishes it (`resume_undo`)."""
    run = pending(backend)
    if run is None:
        return None
    replay = run.replay
    if replay.ended_cleanly:
        # state was written before the end line: nothing to fold
        run.discard()
        return None
    if replay.rollback is not None and not resume_undo:
        raise StateError(
            f"the undo of a failed apply was cut short: {run.describe()}; folding it here would drop the undo",
            hint="run `cloudorch recover PLAN` to finish the undo first; nothing was written",
        )
    state = backend.read()
    if state is None:
        header = replay.header or {}
        state = State(
            lineage=str(header.get("lineage") or State().lineage),
            plan_name=str(header.get("plan_name", "")),
            state_key=str(header.get("state_key", "default")),
        )
    expected = state.serial
    folded = apply_replay(state, replay)
    report = RecoveryReport(recovered=list(folded.recovered), journal=run.where, replay=replay)
    for op in folded.in_flight:
        address = str(op.get("address"))
        action = op.get("action")
        if action == "delete" and op.get("deposed_key") is not None:
            _confirm_deposed_delete(state, providers, address, str(op["deposed_key"]), report)
            continue
        if action == "delete":
            _confirm_delete(state, providers, address, report)
            continue
        if action not in ("create", "replace") or "properties" not in op:
            report.lost.append(address)
            continue
        # objects of this address that existed before the create: the one it made is another
        current = state.resources.get(address)
        known = {str(i) for i in op.get("known_ids", [])} | {d.id for d in state.deposed.get(address, [])}
        if current is not None:
            known.add(current.id)
        try:
            rt = providers.resource_type(str(op["provider"]), str(op["type"]))
            props = rt.Properties.model_construct(**op["properties"])
            made = [o for o in rt.find_all(address, props) if o.id not in known]
        except CloudorchError:
            report.lost.append(address)
            continue
        found = made[0] if made else None
        if found is None:
            # the type can look (it journaled properties for `find`) and found nothing new
            if action == "create":
                state.resources.pop(address, None)
            report.absent.append(address)
            continue
        if current is not None and op.get("deposed_key") is not None:
            # a create-before-destroy replace made the new object: the old one is deposed, and
            # the next apply deletes it (never the new one)
            state.add_deposed(DeposedObject.of(current, str(op["deposed_key"])))
        sens = sensitive_fields(rt.Properties)
        stored: dict[str, Any] = {
            k: (sensitive_marker(v) if k in sens and v is not None else v) for k, v in op["properties"].items()
        }
        state.resources[address] = ResourceRecord(
            address=address,
            type=str(op["type"]),
            provider=str(op["provider"]),
            id=found.id,
            properties=stored,
            attributes=found.attributes,
            dependencies=list(op.get("depends_on", [])),
            sensitive=sorted(sens),
        )
        report.adopted.append(address)
    state.events.append(
        StateEvent(
            kind="recovery",
            detail={
                "recovered": len(report.recovered),
                "adopted": report.adopted,
                "absent": report.absent,
                "deleted": report.deleted,
                "lost": report.lost,
                "rollback_unfinished": report.undo_unfinished,  # as in `to_json`
            },
        )
    )
    state.serial = expected + 1
    keep = replay.rollback is not None
    if keep:
        # the undo goes on in this journal, which will be folded again: settle its in-flight ops
        run.settle(_settlements(folded.in_flight, state, report))
    detach = run.attach(backend)  # bound first, so a crash after this write never refuses the journal
    try:
        backend.write(state, expected_serial=expected or None)
    finally:
        detach()
    if keep:
        report.pending = run
    else:
        run.discard()
    return report


def _settlements(
    in_flight: list[dict[str, Any]], state: State, report: RecoveryReport
) -> list[tuple[str, dict[str, Any]]]:
    """Journal lines that close each in-flight operation the way recovery settled it: an adopted
    object as finished with its record (the undo still removes it), a create that made nothing or
    a delete that happened as failed / finished. Lost ones stay in flight."""
    adopted, absent = set(report.adopted), set(report.absent)
    deleted = set(report.deleted)
    out: list[tuple[str, dict[str, Any]]] = []
    for op in in_flight:
        address = str(op.get("address"))
        line = {"op": op.get("op"), "address": address, "action": op.get("action"), "settled": True}
        if op.get("deposed_key") is not None:
            line["deposed_key"] = op["deposed_key"]
            if f"{address} (deposed {op['deposed_key']})" in deleted:
                out.append(("finished", line))
            continue
        rec = state.resources.get(address)
        if address in adopted and rec is not None:
            out.append(("finished", {**line, "record": rec.model_dump(mode="json")}))
        elif address in absent:
            out.append(("failed", {**line, "action": "settled", "error": "made nothing (settled by recovery)"}))
        elif address in deleted and op.get("action") == "delete":
            out.append(("finished", line))
    return out


def _confirm_delete(state: State, providers: ProviderSet, address: str, report: RecoveryReport) -> None:
    """An in-flight delete: read the object back; gone means the delete happened."""
    rec = state.resources.get(address)
    if rec is None:
        report.deleted.append(address)
        return
    try:
        rt = providers.resource_type(rec.provider, rec.type)
        seen = rt.read(address, rec.id, rt.Properties.model_construct(**rec.properties))
    except CloudorchError:
        report.lost.append(address)
        return
    if seen is None:
        state.resources.pop(address, None)
        report.deleted.append(address)
    else:
        report.lost.append(address)  # still there: the next plan deletes it again


def _confirm_deposed_delete(
    state: State, providers: ProviderSet, address: str, key: str, report: RecoveryReport
) -> None:
    """An in-flight delete of a replaced (deposed) object: gone means it happened; otherwise it
    stays deposed and the next apply deletes it."""
    obj = next((d for d in state.deposed.get(address, []) if d.key == key), None)
    if obj is None:
        report.deleted.append(f"{address} (deposed {key})")
        return
    try:
        rt = providers.resource_type(obj.provider, obj.type)
        seen = rt.read(address, obj.id, rt.Properties.model_construct(**obj.properties))
    except CloudorchError:
        report.lost.append(f"{address} (deposed {key})")
        return
    if seen is None or seen.id != obj.id:
        state.drop_deposed(address, key)
        report.deleted.append(f"{address} (deposed {key})")
    else:
        report.lost.append(f"{address} (deposed {key})")
