"""The work one stack does on a worker: the same library code the single-stack command runs
(`run.plan`, `run.apply`, `run.drift`), under that stack's own lock, returning a `StackResult`.

Everything here is picklable and imports lazily: a task travels to a process pool or a Dask
worker, which may be another machine with cloudorch and the providers installed.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cloudorch.errors import CloudorchError, ExitCode

Command = Literal["plan", "apply", "drift"]
#: what became of a stack; `skipped` stacks did not run (a stack they read failed)
Status = Literal["ok", "changes", "drifted", "denied", "failed", "skipped", "interrupted"]


@dataclass(frozen=True)
class StackTask:
    command: Command
    name: str
    plan_file: Path
    stage: str | None = None
    vars: tuple[tuple[str, str], ...] = ()
    sandbox: bool = False
    refresh: bool = True
    parallelism: int = 32
    lock_timeout: float = 0.0
    #: Dask: name of the cluster-wide semaphore bounding this stack's account, and its size
    account: str | None = None
    account_limit: int | None = None


@dataclass
class StackResult:
    name: str
    command: str
    status: Status
    exit_code: int
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    #: "+ address", "~ address", ... of what the plan or apply changes, and drifted addresses
    changes: list[str] = field(default_factory=list)
    message: str = ""
    hint: str | None = None
    serial: int | None = None
    #: host:pid of the process that ran it
    worker: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "command": self.command,
            "status": self.status,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            "counts": self.counts,
            "changes": self.changes,
            "message": self.message,
            "hint": self.hint,
            "serial": self.serial,
            "worker": self.worker,
        }


def _options(task: StackTask) -> Any:
    from cloudorch.run.options import RunOptions

    return RunOptions(
        plan_file=task.plan_file,
        vars=dict(task.vars),
        stage=task.stage,
        sandbox=task.sandbox,
        refresh=task.refresh,
        parallelism=task.parallelism,
        lock_timeout=task.lock_timeout,
        command=f"cloudorch fleet {task.command}",
    )


def _labels(changes: Any) -> list[str]:
    return [f"{c.action.symbol} {c.address}" for c in changes if c.is_change]


def run_stack(task: StackTask) -> StackResult:
    """Run one stack's command; every failure becomes a `failed` or `denied` result, never a raise."""
    start = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        result = _run(task)
    except CloudorchError as exc:
        denied = int(getattr(exc, "exit_code", ExitCode.ERROR)) == ExitCode.DENIED
        where = f"{exc.location}: " if getattr(exc, "location", None) else ""
        result = StackResult(
            task.name,
            task.command,
            "denied" if denied else "failed",
            int(ExitCode.DENIED if denied else ExitCode.ERROR),
            message=where + exc.message,
            hint=exc.hint,
        )
    except Exception as exc:  # a bug in one stack must not take the fleet down: report it there
        why = f"internal error: {type(exc).__name__}: {exc}"
        result = StackResult(task.name, task.command, "failed", int(ExitCode.ERROR), message=why)
    result.seconds = time.perf_counter() - start
    result.worker = worker
    return result


def _run(task: StackTask) -> StackResult:
    opts = _options(task)
    if task.command == "plan":
        from cloudorch.run.plan import plan
        from cloudorch.run.stacks import new_stacks_unknown

        with new_stacks_unknown():  # a stack this fleet has not applied yet: its outputs come later
            planned = plan(opts)
        cs = planned.changeset
        counts = {k: v for k, v in cs.counts().items() if v and k != "no-op"}
        if planned.verdict is not None:
            denial = planned.verdict.denial({})
            if denial is not None:
                return StackResult(
                    task.name, "plan", "denied", int(ExitCode.DENIED), counts=counts, changes=_labels(cs.changes),
                    message=denial.message, serial=cs.state_serial,
                )
        status: Status = "changes" if cs.has_changes else "ok"
        return StackResult(
            task.name, "plan", status, int(ExitCode.CHANGES if cs.has_changes else ExitCode.OK),
            counts=counts, changes=_labels(cs.changes), serial=cs.state_serial,
            message="an unfinished run waits: `cloudorch recover` it" if planned.waiting else "",
        )
    if task.command == "apply":
        from cloudorch.run.apply import apply

        result = apply(opts)  # no confirm: the fleet command asked once, for every stack
        assert result is not None
        cs = result.changeset
        counts = {k: v for k, v in cs.counts().items() if v and k != "no-op"}
        serial = result.state.serial
        if result.denied is not None:
            return StackResult(
                task.name, "apply", "denied", int(ExitCode.DENIED), counts=counts,
                message=result.denied.message, serial=serial,
            )
        if result.interrupted:
            code = int(ExitCode.INTERRUPTED)
            return StackResult(task.name, "apply", "interrupted", code, counts=counts, serial=serial)
        if not result.ok:
            first = next(iter(result.failed.items()), None)
            text = "the apply did not finish"
            if first is not None:
                text = f"{first[0]}: {first[1].splitlines()[0] if first[1] else 'failed'}"
            return StackResult(
                task.name, "apply", "failed", int(ExitCode.ERROR), counts=counts,
                changes=[f"! {a}" for a in result.failed], message=text, serial=serial,
            )
        return StackResult(task.name, "apply", "ok", 0, counts=counts, changes=_labels(cs.changes), serial=serial)
    from cloudorch.run.drift import drift

    report = drift(opts)
    drifted = [f"{r.status} {r.address}" for r in report.resources]
    if report.policy_blocking:
        return StackResult(
            task.name, "drift", "denied", int(ExitCode.DENIED), counts=report.counts(), changes=drifted,
            serial=report.state_serial,
        )
    status = "drifted" if report.has_drift else "ok"
    return StackResult(
        task.name, "drift", status, int(ExitCode.CHANGES if report.has_drift else ExitCode.OK),
        counts=report.counts(), changes=drifted, serial=report.state_serial,
    )


def run_stack_bounded(task: StackTask) -> StackResult:
    """`run_stack` on a Dask worker: an account's stacks at most `account_limit` at once, cluster-wide."""
    if task.account is None or task.account_limit is None:
        return run_stack(task)
    from distributed import Semaphore

    with Semaphore(max_leases=task.account_limit, name=f"cloudorch-account-{task.account}"):  # type: ignore[no-untyped-call]
        return run_stack(task)
