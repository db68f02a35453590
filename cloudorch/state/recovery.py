"""Journal folding: write what a killed apply's journal says finished into a State.

Finished create/update/replace (any action but `delete` that carries `record`) set
`resources[address]`, and a replace's `deposed` old object is added to `deposed`; a finished
`delete` removes the address, or the deposed object its `deposed_key` names. A failed create
that carries a record (its object exists, tainted) is folded too. In-flight operations (started, never
finished) are reported, not guessed at: the engine reads those resources back from the cloud.
This module does not bump serials or write state, and never reads the cloud: crash recovery
(`cloudorch.engine.recovery`) does both, under the lock, and reports with its `RecoveryReport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from cloudorch.errors import StateError
from cloudorch.state.journal import JournalEntry, JournalReplay
from cloudorch.state.journal_lines import paused_gc
from cloudorch.state.model import DeposedObject, ResourceRecord, State


@dataclass
class JournalFold:
    """What `apply_replay` changed in state and what still needs a look in the cloud."""

    recovered: list[str] = field(default_factory=list)
    """Addresses set from a finished create/update/replace, in journal order."""
    removed: list[str] = field(default_factory=list)
    """Addresses removed by a finished delete."""
    failed: list[dict[str, Any]] = field(default_factory=list)
    """Payloads of operations the journal says failed (nothing to fold)."""
    in_flight: list[dict[str, Any]] = field(default_factory=list)
    """Payloads of operations started but never finished: their outcome in the cloud is unknown."""
    ended_cleanly: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.recovered or self.removed)

    def to_json(self) -> dict[str, Any]:
        return {
            "recovered": self.recovered,
            "removed": self.removed,
            "failed": self.failed,
            "in_flight": self.in_flight,
            "ended_cleanly": self.ended_cleanly,
        }


def apply_replay(state: State, replay: JournalReplay) -> JournalFold:
    """Fold the finished operations of `replay` into `state` (in place) and report.

    Linear in the journal: addresses are kept in insertion-ordered dicts (list membership made a
    40,000-line fold quadratic), and only the record each address ends with is taken: validated
    as the journal was read (`journal_lines.py`), or here in one call. Deposed objects, rare, are
    folded in journal order as they come.
    """
    with paused_gc():
        return _fold(state, replay)


def _fold(state: State, replay: JournalReplay) -> JournalFold:
    header = replay.header or {}
    lineage = header.get("lineage")
    if isinstance(lineage, str) and lineage != state.lineage:
        raise StateError(
            f"journal {replay.path} belongs to state lineage {lineage}, not {state.lineage}",
            hint="The journal is from another plan or stage; check the state key before recovering.",
        )
    report = JournalFold(in_flight=list(replay.in_flight), ended_cleanly=replay.ended_cleanly)
    recovered: dict[str, None] = {}
    removed: dict[str, None] = {}
    # address -> the entry whose record state takes (None: deleted), resolved at the end
    latest: dict[str, JournalEntry | None] = {}
    for entry in replay.completed:
        op = entry.op
        if entry.event != "finished":
            report.failed.append(op)
            if op.get("record") is None:
                continue  # a failed create that made an object journals it (tainted): fold it
        address = str(op["address"])
        if op.get("action") == "delete":
            deposed_key = op.get("deposed_key")
            if deposed_key is not None:
                state.drop_deposed(address, str(deposed_key))  # a replaced, deposed object is gone
                continue
            latest[address] = None
            removed[address] = None
            recovered.pop(address, None)
            continue
        if op.get("record") is None:
            continue  # e.g. a no-op or read: nothing to fold
        latest[address] = entry
        recovered[address] = None
        removed.pop(address, None)
        if op.get("undeposed_key") is not None:
            # an undo made a deposed old object current again (the record above)
            state.drop_deposed(address, str(op["undeposed_key"]))
        if op.get("deposed") is not None:
            # a create-before-destroy replace made the new object: the old one is deposed
            try:
                old = DeposedObject.model_validate(op["deposed"])
            except ValidationError as exc:
                raise StateError(
                    f"journal {replay.path}: operation {op.get('op')} on {address} carries an invalid deposed object",
                    hint="Recover this resource by hand (import it) and remove the journal.",
                ) from exc
            if old.key not in {d.key for d in state.deposed.get(address, [])}:
                state.add_deposed(old)
    records = _validated(replay, latest)
    resources = state.resources
    for address, last in latest.items():
        if last is None:
            resources.pop(address, None)
        else:
            resources[address] = records[address]
    report.recovered = list(recovered)
    report.removed = list(removed)
    return report


_RECORDS: TypeAdapter[dict[str, ResourceRecord]] = TypeAdapter(dict[str, ResourceRecord])


def _validated(replay: JournalReplay, latest: dict[str, JournalEntry | None]) -> dict[str, ResourceRecord]:
    """The record of each address state takes: validated as the journal was read, or (sealed lines,
    and records that did not validate then) all the others in one validator call here; on failure,
    name the operation whose record is invalid."""
    records: dict[str, ResourceRecord] = {}
    raws: dict[str, Any] = {}
    for address, entry in latest.items():
        if entry is None:
            continue
        if entry.record is not None:
            records[address] = entry.record
        else:
            raws[address] = entry.op.get("record")
    if not raws:
        return records
    try:
        records.update(_RECORDS.validate_python(raws))
    except ValidationError as exc:
        address = str(exc.errors()[0]["loc"][0]) if exc.errors() and exc.errors()[0]["loc"] else "?"
        bad = latest.get(address)
        raise StateError(
            f"journal {replay.path}: operation {bad.op.get('op') if bad else '?'} on {address} "
            "carries an invalid record",
            hint="Recover this resource by hand (import it) and remove the journal.",
        ) from exc
    return records
