"""The release ledger: every deploy, promotion, approval, override, refusal, rejection and rollback.

It is one state document of its own (key `<plan>..release`, which no stage key can equal),
stored through the same `StateBackend` as the stages' state, so it lives wherever state lives
(local, S3, GCS, Azure) and is written under its lock with compare-and-swap. Its `events` are
the history; the queries below (current version of a stage, approvals, rejections) read them.
It never applies anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cloudorch.clock import iso, parse_iso
from cloudorch.state.backends.base import StateBackend
from cloudorch.state.model import State, StateEvent

#: kinds of ledger events
DEPLOY, PROMOTE, APPROVE, OVERRIDE, REFUSED, REJECT, ROLLBACK, VERIFY_FAILED = (
    "deploy",
    "promote",
    "approve",
    "override",
    "refused",
    "reject",
    "rollback",
    "verify_failed",
)
#: events after which a version is the one running in the stage
BECAME_CURRENT = frozenset({DEPLOY, PROMOTE, ROLLBACK})


def ledger_key(plan_key: str) -> str:
    # a double dot: stage documents are `<plan>.<stage>` and a stage name cannot be empty
    return f"{plan_key}..release"


def event(kind: str, *, actor: str, at: datetime, stage: str | None, version: str | None, **detail: Any) -> StateEvent:
    return StateEvent(
        kind=kind,
        at=iso(at),
        actor=actor,
        detail={"stage": stage, "version": version, **{k: v for k, v in detail.items() if v is not None}},
    )


@dataclass(frozen=True)
class Current:
    """The version running in a stage and since when it has run there without a break."""

    version: str
    since: datetime
    event: StateEvent


class Ledger:
    """Read-only view over the ledger's events (oldest first)."""

    def __init__(self, events: Sequence[StateEvent]) -> None:
        self.events = list(events)

    def of_stage(self, stage: str) -> list[StateEvent]:
        return [e for e in self.events if e.detail.get("stage") == stage]

    def current(self, stage: str) -> Current | None:
        runs = [e for e in self.of_stage(stage) if e.kind in BECAME_CURRENT and e.detail.get("ok", True)]
        if not runs:
            return None
        last = runs[-1]
        version = str(last.detail["version"])
        since = last
        for e in reversed(runs):  # a re-deploy of the same version does not restart its soak
            if e.detail.get("version") != version:
                break
            since = e
        return Current(version, parse_iso(since.at), last)

    def versions(self, stage: str) -> list[str]:
        """Versions in the order they became current in `stage` (consecutive repeats merged)."""
        out: list[str] = []
        for e in self.of_stage(stage):
            if e.kind in BECAME_CURRENT and e.detail.get("ok", True):
                v = str(e.detail["version"])
                if not out or out[-1] != v:
                    out.append(v)
        return out

    def rejected(self, version: str) -> StateEvent | None:
        return next((e for e in self.events if e.kind == REJECT and e.detail.get("version") == version), None)

    def failed_verification(self, stage: str, version: str) -> bool:
        return any(e.kind == VERIFY_FAILED and e.detail.get("version") == version for e in self.of_stage(stage))

    def good(self, stage: str, version: str) -> bool:
        """`version` ran in `stage` and was neither rejected nor failed its verification there."""
        return (
            version in self.versions(stage)
            and self.rejected(version) is None
            and not self.failed_verification(stage, version)
        )

    def previous_good(self, stage: str) -> str | None:
        """The last good version of `stage` before the current one (what a rollback goes to)."""
        cur = self.current(stage)
        for v in reversed(self.versions(stage)):
            if cur is not None and v == cur.version:
                continue
            if self.good(stage, v):
                return v
        return None

    def approval_events(self, stage: str, version: str) -> list[StateEvent]:
        """Every recorded approval of a version into a stage, oldest first (signed gates check each)."""
        return [e for e in self.of_stage(stage) if e.kind == APPROVE and e.detail.get("version") == version]

    def approvals(self, stage: str, version: str) -> dict[str, StateEvent]:
        """Approving actors (each once, first approval kept) for a version and stage."""
        out: dict[str, StateEvent] = {}
        for e in self.of_stage(stage):
            if e.kind == APPROVE and e.detail.get("version") == version and e.actor and e.actor not in out:
                out[e.actor] = e
        return out


class LedgerStore:
    """Where the ledger lives: one backend, one key. Appends are locked compare-and-swap writes."""

    def __init__(self, backend: StateBackend, plan_name: str, key: str) -> None:
        self.backend = backend
        self.plan_name = plan_name
        self.key = key

    def read(self) -> Ledger:
        state = self.backend.read()
        return Ledger(state.events if state else [])

    def append(self, events: Iterable[StateEvent], *, command: str, lock_timeout: float = 0.0) -> None:
        from cloudorch.state.lock import LockInfo

        new = list(events)
        if not new:
            return
        with self.backend.lock(LockInfo.new(command), lock_timeout):
            state = self.backend.read() or State(plan_name=self.plan_name, state_key=self.key)
            state.events.extend(new)
            self.backend.write_next(state)


def describe(e: StateEvent) -> dict[str, Any]:
    """One history entry as `release history --json` shows it."""
    d = dict(e.detail)
    return {
        "kind": e.kind,
        "at": e.at,
        "actor": e.actor,
        "stage": d.pop("stage", None),
        "version": d.pop("version", None),
        "reason": d.pop("reason", None),
        "detail": d,
    }
