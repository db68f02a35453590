"""A plan's run history: records, an index of their summaries, and what rides with the index (the
drift fingerprints and the notification outbox), with a documented retention.

Layout in the run storage (`storage.py`): `index.json` (format 1: a header line with the `drift`
fingerprints per stage, the `outbox` and the last `delivered`, then one line per run summary,
oldest first) and `run-<id>.json` per run. A record is written before the
index names it, so the index never points at nothing; a kill in between leaves an orphan record
that the next pruning removes. `runs list` reads the index alone, whatever the number of runs.

Retention: the newest `CLOUDORCH_RUNS_KEEP` runs (default 10,000) that are at most
`CLOUDORCH_RUNS_DAYS` days old (default 400); older records are deleted when a run is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudorch.errors import ConfigError, StateError
from cloudorch.runs.record import BLOCKED, FAILED, INTERRUPTED, RunRecord
from cloudorch.runs.storage import RunStorage

INDEX = "index.json"
#: what `runs list --failed` shows (a declined apply or a drift found are not failures)
NOT_SUCCEEDED = frozenset({FAILED, BLOCKED, INTERRUPTED})
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


def empty_header() -> dict[str, Any]:
    return {"format": FORMAT, "drift": {}, "outbox": [], "delivered": []}


@dataclass
class Index:
    """The index object: a header line (JSON: `format`, `drift`, `outbox`, `delivered`), then one
    line per run summary, oldest first. Lines are parsed only when read, so the newest runs of a
    long history are listed without decoding the rest."""

    header: dict[str, Any] = field(default_factory=empty_header)
    lines: list[bytes] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes | None, where: str) -> Index:
        if not data:
            return cls()
        head, _, rest = data.partition(b"\n")
        try:
            header = json.loads(head)
        except ValueError as exc:
            raise StateError(f"the run index {where} is not readable ({exc})") from exc
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise StateError(f"the run index {where} has an unknown format", hint="is this cloudorch older than it?")
        full = empty_header()
        full.update(header)
        return cls(full, [line for line in rest.split(b"\n") if line.strip()])

    def dump(self) -> bytes:
        return b"\n".join([dump(self.header), *self.lines]) + b"\n"

    def newest_first(self) -> Iterator[dict[str, Any]]:
        for line in reversed(self.lines):
            try:
                yield json.loads(line)
            except ValueError:
                continue  # a damaged line hides one run, not the history

    def ids(self) -> list[str]:
        return [str(r.get("id")) for r in reversed(list(self.newest_first()))]


def dump(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _parse_at(text: str) -> datetime | None:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _started(line: bytes) -> datetime | None:
    try:
        return _parse_at(str(json.loads(line).get("started", "")))
    except (ValueError, AttributeError):
        return None


def _id_of(line: bytes) -> str:
    try:
        return str(json.loads(line).get("id"))
    except (ValueError, AttributeError):
        return ""


class RunHistory:
    """One plan's runs in one `RunStorage`."""

    def __init__(self, storage: RunStorage, retention: Retention | None = None) -> None:
        self.storage = storage
        self.retention = retention or Retention()
        #: the index header as `record` last wrote it (what waits in the outbox, without a re-read)
        self.written: dict[str, Any] | None = None

    def describe(self) -> str:
        return self.storage.describe()

    # -- reading -------------------------------------------------------------------------

    def index(self) -> Index:
        return Index.parse(self.storage.read(INDEX), self.describe())

    def header(self) -> dict[str, Any]:
        """The drift fingerprints and the outbox (the index without its runs)."""
        return self.index().header

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
        for run in self.index().newest_first():
            if since is not None:
                at = _parse_at(str(run.get("started", "")))
                if at is None or at < since:
                    continue  # not `break`: a long run that started earlier can end after a short one
            if stage is not None and run.get("stage") != stage:
                continue
            if failed and run.get("result") not in NOT_SUCCEEDED:
                continue
            out.append(run)
            if limit is not None and len(out) >= limit:
                break
        return out

    def show(self, run_id: str) -> RunRecord | None:
        """The record of `run_id` (or of the one run whose id starts with it)."""
        data = self.storage.read(record_name(run_id))
        if data is None:
            ids = [i for i in self.index().ids() if i.startswith(run_id)]
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
            index = Index.parse(data, self.describe())
            lines = [*index.lines, dump(run.summary())]
            cut = max(0, len(lines) - self.retention.keep)
            cutoff = datetime.now(UTC) - timedelta(days=self.retention.days)
            while cut < len(lines) - 1 and (_started(lines[cut]) or cutoff) < cutoff:
                cut += 1  # runs are appended as they end: the old ones are at the front
            expired[:] = [_id_of(line) for line in lines[:cut]]
            index.lines = lines[cut:]
            header = index.header
            if drift is not None:
                stage_key, seen = drift
                if seen is None:
                    header["drift"].pop(stage_key, None)
                else:
                    header["drift"][stage_key] = seen
            pending = [*header["outbox"], *outbox]
            if len(pending) > OUTBOX_LIMIT:
                if dropped is not None:
                    dropped(len(pending) - OUTBOX_LIMIT)
                pending = pending[-OUTBOX_LIMIT:]
            header["outbox"] = pending
            self.written = header
            return index.dump()

        self.storage.update(INDEX, change)
        if expired:
            self.storage.delete([record_name(i) for i in expired if i])

    def settle(self, attempts: Mapping[str, dict[str, Any]]) -> None:
        """Write back what delivery attempts came to: delivery id -> {delivered_at} or {error}."""
        if not attempts:
            return

        def change(data: bytes | None) -> bytes:
            index = Index.parse(data, self.describe())
            doc = index.header
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
            return index.dump()

        self.storage.update(INDEX, change)
