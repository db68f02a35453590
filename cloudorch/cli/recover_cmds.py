"""The `recover` command: fold an unfinished apply's journal into state, explicitly.

Registered on the shared app by import from `app.py`. Any command that takes the state lock
recovers too; this one does only that, and says in full what it adopted.
"""

from __future__ import annotations

from cloudorch.cli.common import (
    BackendOpt,
    JsonOpt,
    LockTimeoutOpt,
    PlanArg,
    SandboxOpt,
    StageOpt,
    StateDirOpt,
    VarFileOpt,
    VarOpt,
    _options,
    _out,
    app,
)


@app.command()
def recover(
    plan_file: PlanArg,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    stage: StageOpt = None,
    sandbox: SandboxOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
    json_: JsonOpt = False,
) -> int:
    """Recover from a killed apply: take over its stale lock, replay finished operations into state,
    adopt what in-flight creates made (found by name or `cloudorch:address` tag) or record them absent,
    and finish a rollback the crash cut short. Exit 0; nothing to do is not an error."""
    from cloudorch import api
    from cloudorch.cli.render import ProgressObserver, render_recovery

    out = _out(json_)
    opts = _options(
        plan_file,
        var=var,
        var_file=var_file,
        state_dir=state_dir,
        backend=backend,
        stage=stage,
        sandbox=sandbox,
        command="recover",
        lock_timeout=lock_timeout,
    )
    with ProgressObserver(out, 0) as progress:
        outcome = api.recover(opts, observer=progress)
    if json_:
        out.document(
            {
                "recovered": outcome.report is not None,
                "took_over_lock": outcome.took_over.describe() if outcome.took_over is not None else None,
                "report": outcome.report.to_json() if outcome.report is not None else None,
                "rolled_back": outcome.undo.to_json() if outcome.undo is not None else None,
                "state_serial": outcome.state_serial,
            }
        )
    else:
        render_recovery(out, outcome)
    return 0
