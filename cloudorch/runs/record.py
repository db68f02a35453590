"""A run record: who ran which command on which plan and stage, when, and what came of it.

Records are plain JSON documents; the index keeps a summary of each (`summary`) so that listing
thousands of runs reads one object. A record holds addresses, counts and first error lines, never
resource values.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

#: what a run came to
SUCCEEDED, FAILED, DECLINED, BLOCKED, INTERRUPTED = "succeeded", "failed", "declined", "blocked", "interrupted"

#: the fields of a record the index keeps (what `runs list` shows)
SUMMARY_FIELDS = (
    "id",
    "command",
    "plan",
    "stage",
    "actor",
    "host",
    "started",
    "ended",
    "duration",
    "result",
    "exit_code",
    "counts",
    "version",
)


def new_run_id(at: datetime | None = None) -> str:
    """Sortable by time, unique across hosts: `20261205T120501.123Z-1a2b3c4d`."""
    at = at or datetime.now(UTC)
    return at.strftime("%Y%m%dT%H%M%S.") + f"{at.microsecond // 1000:03d}Z-" + secrets.token_hex(4)


def host_name() -> str:
    return socket.gethostname() or os.environ.get("HOSTNAME", "") or "unknown"


@dataclass
class FailedAddress:
    address: str
    #: the first line of the error, secrets masked
    error: str


@dataclass
class RunRecord:
    """One run of one command (see `docs/notifications.md` for the JSON shape)."""

    id: str
    command: str
    plan: str
    plan_file: str
    stage: str | None
    actor: str
    host: str
    started: str
    ended: str = ""
    duration: float = 0.0
    result: str = SUCCEEDED
    exit_code: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    failed: list[FailedAddress] = field(default_factory=list)
    #: the first line of the error that ended the run, if one did
    error: str | None = None
    #: policy results: id, severity, passed, overridden (with reason), resource
    policy: list[dict[str, Any]] = field(default_factory=list)
    #: the release version a release command worked on
    version: str | None = None
    #: drift found by a `drift` run: addresses and properties
    drift: dict[str, list[str]] = field(default_factory=dict)
    #: events this run raised, each with its delivery ids
    events: list[dict[str, Any]] = field(default_factory=list)
    cloudorch_version: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        doc = {k: getattr(self, k) for k in SUMMARY_FIELDS}
        doc["failed"] = len(self.failed)
        doc["events"] = [e["event"] for e in self.events]
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RunRecord:
        known = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
        known["failed"] = [FailedAddress(**f) for f in doc.get("failed", [])]
        return cls(**known)
