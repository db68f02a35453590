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

from pydantic import ValidationError

from cloudorch.errors import StateError
from cloudorch.state.journal import JournalReplay
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
    """Fold the finished operations of `replay` into `state` (in place) and report."""
    header = replay.header or {}
    lineage = header.get("lineage")
    if isinstance(lineage, str) and lineage != state.lineage:
        raise StateError(
            f"journal {replay.path} belongs to state lineage {lineage}, not {state.lineage}",
            hint="The journal is from another plan or stage; check the state key before recovering.",
        )
    report = JournalFold(in_flight=list(replay.in_flight), ended_cleanly=replay.ended_cleanly)
    for entry in replay.completed:
        if entry.event != "finished":
            report.failed.append(entry.op)
            if entry.op.get("record") is None:
                continue  # a failed create that made an object journals it (tainted): fold it
        address = str(entry.op["address"])
        if entry.op.get("action") == "delete" and entry.op.get("deposed_key") is not None:
            state.drop_deposed(address, str(entry.op["deposed_key"]))  # a replaced, deposed object is gone
            continue
        if entry.op.get("action") == "delete":
            state.resources.pop(address, None)
            _note(report.removed, address)
            _forget(report.recovered, address)
            continue
        raw = entry.op.get("record")
        if raw is None:
            continue  # e.g. a no-op or read: nothing to fold
        try:
            state.resources[address] = ResourceRecord.model_validate(raw)
            if entry.op.get("undeposed_key") is not None:
                # an undo made a deposed old object current again (the record above)
                state.drop_deposed(address, str(entry.op["undeposed_key"]))
            if entry.op.get("deposed") is not None:
                # a create-before-destroy replace made the new object: the old one is deposed
                old = DeposedObject.model_validate(entry.op["deposed"])
                if old.key not in {d.key for d in state.deposed.get(address, [])}:
                    state.add_deposed(old)
        except ValidationError as exc:
            raise StateError(
                f"journal {replay.path}: operation {entry.op.get('op')} on {address} carries an invalid record",
                hint="Recover this resource by hand (import it) and remove the journal.",
            ) from exc
        _note(report.recovered, address)
        _forget(report.removed, address)
    return report


def _note(addresses: list[str], address: str) -> None:
    if address not in addresses:
        addresses.append(address)


def _forget(addresses: list[str], address: str) -> None:
    if address in addresses:
        addresses.remove(address)
