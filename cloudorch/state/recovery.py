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
    """Fold the finished operations of `replay` into `state` (in place) and report.

    Linear in the journal: addresses are kept in insertion-ordered dicts (list membership made a
    40,000-line fold quadratic) and the records are validated in one call at the end. Deposed
    objects, rare, are folded in journal order as they come.
    """
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
    # address -> (the last record the journal sets, its op): validated together at the end
    latest: dict[str, tuple[Any, Any]] = {}
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
            latest[address] = (None, entry.op.get("op"))
            removed.setdefault(address)
            recovered.pop(address, None)
            continue
        raw = entry.op.get("record")
        if raw is None:
            continue  # e.g. a no-op or read: nothing to fold
        latest[address] = (raw, entry.op.get("op"))
        recovered.setdefault(address)
        removed.pop(address, None)
        if entry.op.get("undeposed_key") is not None:
            # an undo made a deposed old object current again (the record above)
            state.drop_deposed(address, str(entry.op["undeposed_key"]))
        if entry.op.get("deposed") is not None:
            # a create-before-destroy replace made the new object: the old one is deposed
            try:
                old = DeposedObject.model_validate(entry.op["deposed"])
            except ValidationError as exc:
                raise StateError(
                    f"journal {replay.path}: operation {entry.op.get('op')} on {address} carries an invalid "
                    "deposed object",
                    hint="Recover this resource by hand (import it) and remove the journal.",
                ) from exc
            if old.key not in {d.key for d in state.deposed.get(address, [])}:
                state.add_deposed(old)
    records = _validated(replay, {a: raw for a, (raw, _) in latest.items() if raw is not None}, latest)
    for address, (raw, _) in latest.items():
        if raw is None:
            state.resources.pop(address, None)
        else:
            state.resources[address] = records[address]
    report.recovered = list(recovered)
    report.removed = list(removed)
    return report


_RECORDS: TypeAdapter[dict[str, ResourceRecord]] = TypeAdapter(dict[str, ResourceRecord])


def _validated(
    replay: JournalReplay, raws: dict[str, Any], latest: dict[str, tuple[Any, Any]]
) -> dict[str, ResourceRecord]:
    """Every record in one validator call; on failure, name the operation whose record is invalid."""
    try:
        return _RECORDS.validate_python(raws)
    except ValidationError as exc:
        address = str(exc.errors()[0]["loc"][0]) if exc.errors() and exc.errors()[0]["loc"] else "?"
        raise StateError(
            f"journal {replay.path}: operation {latest.get(address, (None, '?'))[1]} on {address} "
            "carries an invalid record",
            hint="Recover this resource by hand (import it) and remove the journal.",
        ) from exc
