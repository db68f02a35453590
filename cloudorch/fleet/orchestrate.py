"""Running a fleet: stacks start as soon as the stacks they read are done (for `apply`, done and
succeeded), at most `limits[account]` of an account at once; a failed stack skips the stacks
that read it, and nothing else. The first interrupt starts nothing new and lets running stacks
finish; the second stops the workers (their journals let `cloudorch recover` finish the job).
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudorch.errors import ConfigError, ExitCode
from cloudorch.fleet.discover import Fleet
from cloudorch.fleet.executor import Executor
from cloudorch.fleet.graph import edges, order
from cloudorch.fleet.task import Command, StackResult, StackTask
from cloudorch.run.options import Interrupt

#: (event, stack name, result): `started`, `finished` (with its result) or `skipped` (with one)
OnEvent = Callable[[str, str, StackResult | None], None]


@dataclass
class FleetResult:
    command: str
    executor: str
    #: in the fleet's order
    results: list[StackResult] = field(default_factory=list)
    seconds: float = 0.0

    def by_status(self, *status: str) -> list[StackResult]:
        return [r for r in self.results if r.status in status]

    @property
    def exit_code(self) -> int:
        """As for one stack: 1 when a stack failed, 3 when a policy denied, 2 on changes or drift."""
        if self.by_status("interrupted"):
            return int(ExitCode.INTERRUPTED)
        if self.by_status("failed") or any(r.status == "skipped" for r in self.results):
            return int(ExitCode.ERROR)
        if self.by_status("denied"):
            return int(ExitCode.DENIED)
        if self.by_status("changes", "drifted"):
            return int(ExitCode.CHANGES)
        return int(ExitCode.OK)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "executor": self.executor,
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
            "counts": self.counts(),
            "stacks": [r.to_json() for r in self.results],
        }


def run_fleet(
    fleet: Fleet,
    command: Command,
    executor: Executor,
    *,
    template: StackTask | None = None,
    on_event: OnEvent | None = None,
    interrupt: Interrupt | None = None,
) -> FleetResult:
    """Run `command` on every stack of `fleet` with `executor`; `template` gives the per-task options."""
    start = time.perf_counter()
    layers = order(fleet)
    if executor.remote:
        local = [s.name for s in fleet.stacks if not s.remote_state]
        if local:
            raise ConfigError(
                f"{len(local)} stack(s) keep state on this disk and cannot run on a remote cluster: "
                + ", ".join(local[:5]) + (" ..." if len(local) > 5 else ""),
                hint="give them a remote backend (s3://, gs://, azblob://), or use --executor local",
            )
    ups = edges(fleet)
    stacks = fleet.by_name()
    queue = [n for layer in layers for n in layer]
    results: dict[str, StackResult] = {}
    running: dict[cf.Future[StackResult], str] = {}
    per_account: dict[str, int] = {}
    intr = interrupt or Interrupt()
    gate = command == "apply"
    base = template or StackTask(command=command, name="", plan_file=Path("."))
    killed = False

    def emit(event: str, name: str, result: StackResult | None = None) -> None:
        if on_event is not None:
            on_event(event, name, result)

    def skip(name: str, why: str, status: str = "skipped") -> None:
        results[name] = StackResult(name, command, status, int(ExitCode.ERROR), message=why)  # type: ignore[arg-type]
        emit("skipped", name, results[name])

    while queue or running:
        if intr.count >= 2 and not killed:
            executor.shutdown(kill=True)
            killed = True
            for name in list(running.values()):
                results[name] = StackResult(
                    name, command, "interrupted", int(ExitCode.INTERRUPTED),
                    message="stopped by a second interrupt; run `cloudorch recover` on it",
                )
                emit("finished", name, results[name])
            running.clear()
        if intr.count >= 1:
            for name in queue:
                skip(name, "not started: interrupted", "interrupted")
            queue.clear()
        free = executor.slots - len(running)
        for name in list(queue):
            if free <= 0:
                break
            stack = stacks[name]
            if gate:
                bad = [u for u in ups[name] if u in results and results[u].status not in ("ok", "changes")]
                if bad:
                    queue.remove(name)
                    skip(name, f"skipped: stack {bad[0]}, which it reads, {results[bad[0]].status}")
                    continue
                if any(u not in results for u in ups[name]):
                    continue
            account = stack.account
            limit = fleet.limits.get(account) if account is not None else None
            if limit is not None and per_account.get(account or "", 0) >= limit:
                continue
            task = StackTask(
                command=command,
                name=name,
                plan_file=stack.plan_file,
                stage=stack.stage,
                vars=stack.vars,
                sandbox=base.sandbox,
                refresh=base.refresh,
                parallelism=base.parallelism,
                lock_timeout=base.lock_timeout,
                account=account if limit is not None else None,
                account_limit=limit,
            )
            queue.remove(name)
            if account is not None:
                per_account[account] = per_account.get(account, 0) + 1
            running[executor.submit(task)] = name
            free -= 1
            emit("started", name)
        if not running:
            if queue:  # only possible if every waiting stack waits on an account limit: cannot be
                raise AssertionError(f"fleet scheduler stuck with {queue}")  # pragma: no cover
            break
        done, _ = cf.wait(list(running), timeout=0.2, return_when=cf.FIRST_COMPLETED)
        for fut in done:
            name = running.pop(fut)
            account = stacks[name].account
            if account is not None:
                per_account[account] -= 1
            try:
                result = fut.result()
            except BaseException as exc:  # the worker process died (twice, on Dask)
                why = f"the worker running it died: {exc}"
                result = StackResult(name, command, "failed", int(ExitCode.ERROR), message=why)
            results[name] = result
            emit("finished", name, result)
    described = executor.describe() if not killed else "stopped"
    if not killed:
        executor.shutdown()
    ordered = [results[n] for layer in layers for n in layer if n in results]
    return FleetResult(command, described, ordered, time.perf_counter() - start)
