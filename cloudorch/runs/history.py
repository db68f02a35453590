"""A plan's run history: records, an index of their summaries, and what rides with the index (the
drift fingerprints and the notification outbox), with a documented retention.

Layout in the run storage (`storage.py`): `index.json` (format 1: `runs` oldest first, `drift`
per stage, `outbox`, `delivered`) and `run-<id>.json` per run. A record is written before the
index names it, so the index never points at nothing; a kill in between leaves an orphan record
that the next pruning removes. `runs list` reads the index alone, whatever the number of runs.

Retention: the newest `CLOUDORCH_RUNS_KEEP` runs (default 10,000) that are at most
`CLOUDORCH_RUNS_DAYS` days old (default 400); older records are deleted when a run is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudorch.errors import ConfigError, StateError
from cloudorch.runs.record import RunRecord
from cloudorch.runs.storage import RunStorage

INDEX = "index.json"
FORMAT = 1
DEFAULT_KEEP = 10_000
DEFAULT_DAYS = 400
KEEP_ENV, DAYS_ENV = "CLOUDORCH_RUNS_KEEP", "CLOUDORCH_RUNS_DAYS"
#: delivered notifications the index remembers (for `notifications status`)
DELIVERED_KEPT = 200
#: undelivered notifications kept at most; beyond it the oldest are dropped (and said so)
OUTBOX_LIMIT = 1_000


def record_name(run_id: str) -> str:
    return f"run-{run_id}.json"


@dataclass(frozen=True)
class Retention:
    keep: int = DEFAULT_KEEP
    days: int = DEFAULT_DAYS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Retention:
        def number(name: str, default: int) -> int:
            text = env.get(name)
            if not text:
                return default
            try:
                value = int(text)
            except ValueError:
                value = 0
            if value < 1:
                raise ConfigError(f"{name}={text}: expected a whole number of 1 or more")
            return value

        return cls(number(KEEP_ENV, DEFAULT_KEEP), number(DAYS_ENV, DEFAULT_DAYS))


def empty_index() -> dict[str, Any]:
    return {"format": FORMAT, "runs": [], "drift": {}, "outbox": [], "delivered": []}


def parse_index(data: bytes | None, where: str) -> dict[str, Any]:
    if data is None:
        return empty_index()
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise StateError(f"the run index {where} is not JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateError(f"the run index {where} has an unknown format", hint="is this cloudorch older than it?")
    base = empty_index()
    base.update(doc)
    return base


def dump(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _parse_at(text: str) -> datetime | None:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class RunHistory:
    """One plan's runs in one `RunStorage`."""

    def __init__(self, storage: RunStorage, retention: Retention | None = None) -> None:
        self.storage = storage
        self.retention = retention or Retention()

    def describe(self) -> str:
        return self.storage.describe()

    # -- reading -------------------------------------------------------------------------

    def index(self) -> dict[str, Any]:
        return parse_index(self.storage.read(INDEX), self.describe())

    def runs(
        self,
        *,
        stage: str | None = None,
        since: datetime | None = None,
        failed: bool = False,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Run summaries, newest first."""
        out: list[dict[str, Any]] = []
        for run in reversed(self.index()["runs"]):
            if stage is not None and run.get("stage") != stage:
                continue
            if failed and run.get("exit_code", 0) == 0:
                continue
            if since is not None:
                at = _parse_at(str(run.get("started", "")))
                if at is None or at < since:
                    continue
            out.append(run)
            if limit is not None and len(out) >= limit:
                break
        return out

    def show(self, run_id: str) -> RunRecord | None:
        """The record of `run_id` (or of the one run whose id starts with it)."""
        data = self.storage.read(record_name(run_id))
        if data is None:
            ids = [r["id"] for r in self.index()["runs"] if str(r["id"]).startswith(run_id)]
            if len(ids) != 1:
                if len(ids) > 1:
                    raise ConfigError(
                        f"run id {run_id!r} is ambiguous: {len(ids)} runs start with it",
                        hint="give more of the id (`cloudorch runs list` shows them)",
                    )
                return None
            data = self.storage.read(record_name(ids[0]))
            if data is None:
                return None
        return RunRecord.from_json(json.loads(data))

    # -- writing -------------------------------------------------------------------------

    def record(
        self,
        run: RunRecord,
        *,
        outbox: list[dict[str, Any]] = (),  # type: ignore[assignment]
        drift: tuple[str, dict[str, Any] | None] | None = None,
        dropped: Callable[[int], None] | None = None,
    ) -> None:
        """Store `run`, add its summary to the index with its outbox entries (and the stage's new
        drift fingerprint), and apply the retention. One conditional write of the index."""
        self.storage.create(record_name(run.id), dump(run.to_json()))
        expired: list[str] = []

        def change(data: bytes | None) -> bytes:
            doc = parse_index(data, self.describe())
            runs = [r for r in doc["runs"] if r.get("id") != run.id]
            runs.append(run.summary())
            cutoff = datetime.now(UTC) - timedelta(days=self.retention.days)
            kept = [r for r in runs[-self.retention.keep :] if (_parse_at(str(r.get("started"))) or cutoff) >= cutoff]
            kept_ids = {r["id"] for r in kept}
            expired[:] = [r["id"] for r in runs if r["id"] not in kept_ids]
            doc["runs"] = kept
            if drift is not None:
                stage_key, seen = drift
                if seen is None:
                    doc["drift"].pop(stage_key, None)
                else:
                    doc["drift"][stage_key] = seen
            pending = [*doc["outbox"], *outbox]
            if len(pending) > OUTBOX_LIMIT:
                if dropped is not None:
                    dropped(len(pending) - OUTBOX_LIMIT)
                pending = pending[-OUTBOX_LIMIT:]
            doc["outbox"] = pending
            return dump(doc)

        self.storage.update(INDEX, change)
        if expired:
            self.storage.delete([record_name(i) for i in expired])

    def settle(self, attempts: Mapping[str, dict[str, Any]]) -> None:
        """Write back what delivery attempts came to: delivery id -> {delivered_at} or {error}."""
        if not attempts:
            return

        def change(data: bytes | None) -> bytes:
            doc = parse_index(data, self.describe())
            pending = []
            delivered = list(doc["delivered"])
            for entry in doc["outbox"]:
                got = attempts.get(entry["delivery_id"])
                if got is None:
                    pending.append(entry)
                    continue
                entry = {**entry, "attempts": int(entry.get("attempts", 0)) + int(got.get("tries", 1))}
                if got.get("delivered_at"):
                    entry["delivered_at"] = got["delivered_at"]
                    entry.pop("last_error", None)
                    delivered.append({k: v for k, v in entry.items() if k != "payload"})
                else:
                    entry["last_error"] = got.get("error")
                    entry["last_attempt"] = got.get("at")
                    pending.append(entry)
            doc["outbox"] = pending
            doc["delivered"] = delivered[-DELIVERED_KEPT:]
            return dump(doc)

        self.storage.update(INDEX, change)
