"""`runs list|show` and `notifications status|retry`: read a plan's run history and its outbox,
and retry what waits there. Reads only, except `notifications_retry`, which delivers.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudorch.errors import ConfigError

if TYPE_CHECKING:
    from cloudorch.run.options import RunOptions
    from cloudorch.runs.history import RunHistory

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`--since`: an ISO date or time (`2026-12-01`, `2026-12-01T08:00Z`) or an age (`30m`, `24h`, `7d`)."""
    now = now or datetime.now(UTC)
    text = text.strip()
    m = _RELATIVE.match(text.lower())
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {text}: expected a date, a time or an age",
            hint="e.g. --since 2026-12-01, --since 2026-12-01T08:00Z, --since 24h or --since 7d",
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@dataclass
class RunList:
    """Run summaries, newest first, and where they were read."""

    runs: list[dict[str, Any]]
    where: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"runs": self.runs, "storage": self.where}


def runs_list(
    opts: RunOptions,
    *,
    since: datetime | None = None,
    failed: bool = False,
    limit: int | None = None,
) -> RunList:
    """The plan's runs (of `opts.stage` only, when given), newest first."""
    history = _quick_history(opts) or _history(opts)
    return RunList(history.runs(stage=opts.stage, since=since, failed=failed, limit=limit), [history.describe()])


def runs_list_local(
    state_dir: Path,
    *,
    stage: str | None = None,
    since: datetime | None = None,
    failed: bool = False,
    limit: int | None = None,
) -> RunList:
    """Without a plan file: the runs of every plan whose state is local under `state_dir`."""
    from cloudorch.runs.history import RunHistory
    from cloudorch.runs.storage import LocalRunStorage

    found: list[dict[str, Any]] = []
    where: list[str] = []
    root = state_dir / "runs"
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if (folder / "index.json").is_file():
            history = RunHistory(LocalRunStorage(folder))
            found += history.runs(stage=stage, since=since, failed=failed, limit=limit)
            where.append(history.describe())
    found.sort(key=lambda r: str(r.get("started", "")), reverse=True)
    return RunList(found[:limit] if limit is not None else found, where)


def runs_show(opts: RunOptions, run_id: str) -> dict[str, Any]:
    """The whole record of one run (an id, or a prefix of one)."""
    history = _quick_history(opts) or _history(opts)
    record = history.show(run_id)
    if record is None:
        raise ConfigError(
            f"no run {run_id!r} in the history of {opts.plan_file} ({history.describe()})",
            hint=f"`cloudorch runs list {opts.plan_file}` shows the runs kept",
        )
    return record.to_json()


def _history(opts: RunOptions) -> RunHistory:
    from cloudorch.run.recording import history_of
    from cloudorch.run.session import read_plan

    return history_of(read_plan(opts), opts)


#: plan files larger than this are read the full way (bounded by planfile/limits.py)
_QUICK_BYTES = 1 << 20


def _quick_history(opts: RunOptions) -> RunHistory | None:
    """The history of a plan whose state is local, found from its `name` alone, without loading the
    plan file's models (what `runs list` costs is mostly that load). None: read the plan fully (a
    `backend:` block, a `${...}` in the name, anything unusual)."""
    if opts.backend_url or opts.sandbox:
        return None
    path = Path(opts.plan_file)
    try:
        if path.stat().st_size > _QUICK_BYTES:
            return None
        import yaml

        doc = yaml.load(path.read_bytes(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if not isinstance(doc, dict) or doc.get("backend") is not None:
        return None
    name = doc.get("name")
    if name is not None and (not isinstance(name, str) or not name or "$" in name):
        return None
    from cloudorch.run.recording import RUNS_KEY_SUFFIX
    from cloudorch.runs.history import Retention, RunHistory
    from cloudorch.runs.storage import LocalRunStorage

    root = Path(opts.state_dir or (path.parent / ".cloudorch"))
    env = os.environ if opts.env is None else opts.env
    return RunHistory(LocalRunStorage(root / "runs" / f"{name or path.stem}{RUNS_KEY_SUFFIX}"), Retention.from_env(env))


def _visible(entry: dict[str, Any], configured: set[str]) -> dict[str, Any]:
    shown = {k: v for k, v in entry.items() if k not in ("payload", "target")}
    shown["target"] = entry.get("target_display")
    shown["target_configured"] = entry.get("target") in configured
    return shown


def notifications_status(opts: RunOptions) -> dict[str, Any]:
    """What waits in the outbox (and what was delivered lately), per delivery; URLs masked."""
    from cloudorch.run.recording import history_of, targets_of
    from cloudorch.run.session import read_plan

    plan = read_plan(opts)
    history = history_of(plan, opts)
    index = history.header()
    configured = {t.id for t in targets_of(plan, opts, check=False)}

    def mine(e: dict[str, Any]) -> bool:
        return opts.stage is None or e.get("stage") == opts.stage

    return {
        "storage": history.describe(),
        "pending": [_visible(e, configured) for e in index["outbox"] if mine(e)],
        "delivered": [_visible(e, configured) for e in reversed(index["delivered"]) if mine(e)],
        "targets": [
            {"target": t.display, "origin": t.origin, "on": sorted(t.on) if t.on is not None else "all"}
            for t in targets_of(plan, opts, check=False)
        ],
    }


@dataclass
class RetryResult:
    delivered: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    unknown_target: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unknown_target

    def to_json(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "failed": self.failed,
            "unknown_target": self.unknown_target,
            "ok": self.ok,
        }


def notifications_retry(opts: RunOptions, delivery_ids: list[str] | None = None) -> RetryResult:
    """Deliver what waits in the outbox now (all of it, or these delivery ids), with the same
    delivery ids, retrying within the time budget."""
    from cloudorch.notify.outbox import flush
    from cloudorch.run.recording import history_of, targets_of
    from cloudorch.run.session import read_plan

    plan = read_plan(opts)
    history = history_of(plan, opts)
    targets = targets_of(plan, opts)
    wanted = set(delivery_ids or [])
    if wanted:
        known = {e["delivery_id"] for e in history.header()["outbox"]}
        missing = sorted(wanted - known)
        if missing:
            raise ConfigError(
                f"no undelivered notification {missing[0]!r} in {history.describe()}",
                hint=f"`cloudorch notifications status {plan.path}` lists what waits",
            )

    def only(entry: dict[str, Any]) -> bool:
        if wanted and entry["delivery_id"] not in wanted:
            return False
        return opts.stage is None or entry.get("stage") == opts.stage

    env = os.environ if opts.env is None else opts.env
    report = flush(history, targets, env, only=only)
    configured = {t.id for t in targets}
    return RetryResult(
        [_visible(e, configured) for e in report.delivered],
        [_visible(e, configured) for e in report.failed],
        [_visible(e, configured) for e in report.unknown_target],
    )
