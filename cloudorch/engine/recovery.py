"""Crash recovery: replay the journal of a run that died into state, and find in-flight creates.

A journal file left behind means the last apply never finished cleanly (SIGKILL, power loss,
a second Ctrl-C). Every finished operation in it is folded into state; every operation that
started but never finished is looked up in the cloud with the type's `find` (by tag or client
token) and adopted if it exists, so the next apply neither loses nor duplicates anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloudorch.engine.providerset import ProviderSet
from cloudorch.errors import CloudorchError
from cloudorch.providers import sensitive_fields
from cloudorch.state.backends.base import StateBackend
from cloudorch.state.journal import read_journal
from cloudorch.state.model import ResourceRecord, State, StateEvent, sensitive_marker
from cloudorch.state.recovery import apply_replay


@dataclass
class RecoveryReport:
    recovered: list[str] = field(default_factory=list)  # finished ops folded into state
    adopted: list[str] = field(default_factory=list)  # in-flight creates found in the cloud
    lost: list[str] = field(default_factory=list)  # in-flight ops whose outcome is unknown
    journal: str = ""

    def summary(self) -> str:
        parts = [
            f"recovered {len(self.recovered)} finished operation(s) from the journal of an interrupted run"
        ]
        if self.adopted:
            parts.append(
                f"adopted {len(self.adopted)} object(s) a crashed create made: " + ", ".join(self.adopted)
            )
        if self.lost:
            parts.append(
                f"{len(self.lost)} operation(s) were in flight and could not be confirmed ("
                + ", ".join(self.lost)
                + "); the next plan shows what is still to do"
            )
        return "; ".join(parts)


def recover(backend: StateBackend, providers: ProviderSet) -> RecoveryReport | None:
    """Fold a leftover journal into state; call with the state lock held."""
    path = backend.journal_path()
    if not path.exists():
        return None
    replay = read_journal(path)
    if replay.ended_cleanly:
        # state was written before the end line: nothing to fold
        path.unlink()
        return None
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
    report = RecoveryReport(recovered=list(folded.recovered), journal=str(path))
    for op in folded.in_flight:
        address = str(op.get("address"))
        action = op.get("action")
        if action not in ("create", "replace") or "properties" not in op:
            report.lost.append(address)
            continue
        try:
            rt = providers.resource_type(str(op["provider"]), str(op["type"]))
            props = rt.Properties.model_construct(**op["properties"])
            found = rt.find(address, props)
        except CloudorchError:
            found = None
        if found is None:
            report.lost.append(address)
            continue
        sens = sensitive_fields(rt.Properties)
        stored: dict[str, Any] = {
            k: (sensitive_marker(v) if k in sens and v is not None else v)
            for k, v in op["properties"].items()
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
            detail={"recovered": len(report.recovered), "adopted": report.adopted, "lost": report.lost},
        )
    )
    state.serial = expected + 1
    backend.write(state, expected_serial=expected or None)
    path.unlink()
    return report
