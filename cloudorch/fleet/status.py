"""`fleet status`: per stack what its state says now (serial, resources, when written), whether a
killed run waits to be recovered, and the version each stage runs (from the release ledger).
Reads only, without locks, as `cloudorch state list` does."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cloudorch.errors import CloudorchError
from cloudorch.fleet.discover import Fleet, Stack

#: state reads at once (they wait on disk or network, not on the CPU)
_READERS = 8


@dataclass
class StackStatus:
    name: str
    plan_file: str
    stage: str | None
    serial: int | None = None
    resources: int | None = None
    written_at: str | None = None
    waiting: str | None = None
    version: str | None = None
    #: the newest run recorded for the stack: id, command, result, exit code, started
    last_run: dict[str, Any] | None = None
    #: what the newest `drift` run found: `drifted`, `clean`, or None when none ran
    drift: str | None = None
    drift_checked: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _status(stack: Stack) -> StackStatus:
    from cloudorch.planfile.variables import missing_variables_unknown
    from cloudorch.run.options import RunOptions
    from cloudorch.run.state_ops import read_state, waiting_run

    out = StackStatus(stack.name, str(stack.plan_file), stack.stage)
    opts = RunOptions(plan_file=stack.plan_file, stage=stack.stage, vars=dict(stack.vars))
    try:
        with missing_variables_unknown():  # what state holds needs no variable's value
            _, state, backend = read_state(opts)
            out.serial = state.serial if state is not None else 0
            out.resources = len(state.resources) if state is not None else 0
            history = backend.history() if state is not None else []
            out.written_at = history[-1].written_at if history else None
            run = waiting_run(opts)
            if run is not None:
                out.waiting = f"{run.command} by {run.actor}: {run.done} done, {run.in_flight} in flight"
                out.waiting += f"; run `{run.recover}`"
            _last_runs(opts, out)
            if stack.stage is not None:
                from cloudorch.release.promotion import open_release

                current = open_release(opts).ledger.current(stack.stage)
                out.version = current.version if current is not None else None
    except CloudorchError as exc:
        out.error = exc.message
    return out


#: runs looked at for the newest drift check
_RUNS_LOOKED_AT = 50


def _last_runs(opts: Any, out: StackStatus) -> None:
    """The newest run and the newest drift check, from the run history beside state."""
    from cloudorch.run.run_history import runs_list

    runs = runs_list(opts, limit=_RUNS_LOOKED_AT).runs
    if runs:
        newest = runs[0]
        out.last_run = {k: newest.get(k) for k in ("id", "command", "result", "exit_code", "started")}
    for run in runs:
        if run.get("command") == "drift" and run.get("exit_code") in (0, 2):
            out.drift = "drifted" if run.get("exit_code") == 2 else "clean"
            out.drift_checked = str(run.get("started"))
            break


def fleet_status(fleet: Fleet) -> list[StackStatus]:
    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        return list(pool.map(_status, fleet.stacks))
