"""The durable outbox: events become deliveries (one per event and target, each with a delivery
id), recorded in the run index before any is tried; delivery then retries with backoff within a
time budget, and what is still undelivered waits for the next command on the same plan's state
(or `cloudorch notifications retry`), which sends it with the same delivery id.

A delivery waits for its target by id (a hash of the URL): a command that is not configured with
that target leaves it waiting. Nothing here raises for a failed delivery; it is reported.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloudorch.notify import payload as payloads
from cloudorch.notify.delivery import ATTEMPT_TIMEOUT, DeliveryFailed, deliver
from cloudorch.notify.targets import Target
from cloudorch.runs.history import RunHistory
from cloudorch.runs.record import RunRecord

BUDGET_ENV = "CLOUDORCH_NOTIFY_BUDGET"
BACKOFF_ENV = "CLOUDORCH_NOTIFY_BACKOFF"
#: seconds all deliveries of one command may take, retries included
DEFAULT_BUDGET = 20.0
#: seconds before the first retry; each further retry waits twice as long, at most `MAX_BACKOFF`
DEFAULT_BACKOFF = 0.5
MAX_BACKOFF = 8.0
#: a test seam: with this set to a directory, a command that recorded deliveries creates
#: `<dir>/<pid>.recorded` and waits for `<dir>/release` before trying them (a kill lands there)
TEST_BARRIER_ENV = "CLOUDORCH_TEST_NOTIFY_BARRIER"
TEST_BARRIER_SECONDS = 30.0


@dataclass(frozen=True)
class Event:
    name: str
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def enqueue(run: RunRecord, events: Sequence[Event], targets: Sequence[Target]) -> list[dict[str, Any]]:
    """Outbox entries for `events` to each target that wants them; the run notes its events and ids."""
    entries: list[dict[str, Any]] = []
    for ev in events:
        ids: list[dict[str, str]] = []
        for t in targets:
            if not t.wants(ev.name, run.stage):
                continue
            delivery_id = str(uuid.uuid4())
            entries.append(
                {
                    "delivery_id": delivery_id,
                    "event": ev.name,
                    "run_id": run.id,
                    "stage": run.stage,
                    "target": t.id,
                    "target_display": t.display,
                    "created": _now(),
                    "attempts": 0,
                    "payload": payloads.build(ev.name, run, delivery_id, ev.summary, ev.detail),
                }
            )
            ids.append({"delivery_id": delivery_id, "target": t.display})
        run.events.append({"event": ev.name, "summary": ev.summary, "deliveries": ids})
    return entries


@dataclass
class FlushReport:
    delivered: list[dict[str, Any]] = field(default_factory=list)
    #: still waiting: each entry with its `last_error`
    failed: list[dict[str, Any]] = field(default_factory=list)
    #: waiting for a target this command is not configured with
    unknown_target: list[dict[str, Any]] = field(default_factory=list)


def budget_from(env: Mapping[str, str]) -> tuple[float, float]:
    def seconds(name: str, default: float) -> float:
        try:
            return max(0.0, float(env.get(name, "") or default))
        except ValueError:
            return default

    return seconds(BUDGET_ENV, DEFAULT_BUDGET), seconds(BACKOFF_ENV, DEFAULT_BACKOFF)


def wait_at_test_barrier(env: Mapping[str, str]) -> None:
    directory = env.get(TEST_BARRIER_ENV) or os.environ.get(TEST_BARRIER_ENV)
    if not directory:
        return
    barrier = Path(directory)
    (barrier / f"{os.getpid()}.recorded").touch()
    deadline = time.monotonic() + TEST_BARRIER_SECONDS
    while not (barrier / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.005)


def flush(
    history: RunHistory,
    targets: Sequence[Target],
    env: Mapping[str, str],
    *,
    only: Callable[[dict[str, Any]], bool] | None = None,
    budget: float | None = None,
    backoff: float | None = None,
) -> FlushReport:
    """Try every waiting delivery whose target is configured, in rounds with backoff, until all
    are delivered or the budget is spent; write the outcome back to the index."""
    default_budget, default_backoff = budget_from(env)
    budget = default_budget if budget is None else budget
    delay = default_backoff if backoff is None else backoff
    report = FlushReport()
    by_id = {t.id: t for t in targets}
    todo: list[dict[str, Any]] = []
    for entry in history.header()["outbox"]:
        if only is not None and not only(entry):
            continue
        (todo if entry.get("target") in by_id else report.unknown_target).append(entry)
    if not todo:
        return report
    deadline = time.monotonic() + budget
    outcome: dict[str, dict[str, Any]] = {}
    first = True
    while todo:
        if not first:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(delay, left))
            delay = min(delay * 2, MAX_BACKOFF)
            if time.monotonic() >= deadline:
                break
        first = False
        still: list[dict[str, Any]] = []
        for entry in todo:
            timeout = max(0.5, min(ATTEMPT_TIMEOUT, deadline - time.monotonic()))
            got = outcome.setdefault(entry["delivery_id"], {"tries": 0})
            got["tries"] += 1
            try:
                deliver(entry["payload"], by_id[entry["target"]], env, timeout)
            except DeliveryFailed as exc:
                got.update(error=str(exc), at=_now())
                still.append(entry)
                continue
            got.update(delivered_at=_now())
            got.pop("error", None)
            report.delivered.append(entry)
        todo = still
    report.failed = [{**e, "last_error": outcome[e["delivery_id"]].get("error")} for e in todo]
    history.settle(outcome)
    return report
