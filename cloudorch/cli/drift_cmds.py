"""The `drift` and `rollback` commands (registered on the shared app by import from `app.py`).

`drift` reports what changed outside cloudorch (exit 2) or what a policy forbids in the live
state (exit 3); `--reconcile` then applies the plan. `rollback --to SERIAL` plans the way back
to an earlier state version and applies it. Both ask before changing anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cloudorch.cli.common import (
    ApplyUi,
    AutoApproveOpt,
    BackendOpt,
    JsonOpt,
    LockTimeoutOpt,
    OverrideOpt,
    ParallelismOpt,
    PlanArg,
    PolicyOpt,
    PolicyReportOpt,
    ReasonOpt,
    SandboxOpt,
    StageOpt,
    StateDirOpt,
    TargetOpt,
    VarFileOpt,
    VarOpt,
    _out,
    _plan_opts,
    _policy_kw,
    app,
)
from cloudorch.cli.output import Output
from cloudorch.errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from cloudorch.api import RunOptions
    from cloudorch.changes import ChangeSet
    from cloudorch.engine.applier import ApplyObserver
    from cloudorch.run.apply import ApplyResult

Runner = Callable[[Callable[["ChangeSet"], bool], "ApplyObserver", Callable[["ChangeSet"], None]], "ApplyResult | None"]


def _confirmed_apply(out: Output, json_: bool, auto_approve: bool, verb: str, run: Runner) -> dict[str, Any]:
    """Show the plan, ask (unless --auto-approve), apply; the outcome as a JSON-able dict."""
    from cloudorch.cli.render import changeset_json, result_json

    ui = ApplyUi(out, json_, auto_approve, verb)
    with ui.progress:
        result = run(ui.confirm, ui.progress, ui.on_plan)
    if result is None:
        return {"applied": False, "reason": "declined", "exit": int(ExitCode.ERROR)}
    ui.show_result(result)
    if result.denied is not None:
        raise result.denied
    return {
        "applied": result.changeset.has_changes,
        "changeset": changeset_json(result.changeset),
        "result": result_json(result),
        "exit": 0 if result.ok else int(ExitCode.ERROR),
    }


def _drift_exit(report: Any) -> int:
    if report.policy_blocking:
        return int(ExitCode.DENIED)
    return int(ExitCode.CHANGES) if report.has_drift else 0


@app.command()
def drift(
    plan_file: PlanArg,
    reconcile: Annotated[
        bool, typer.Option("--reconcile", help="Then plan and apply what brings the cloud back to the plan (asks).")
    ] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print a compact Markdown summary (stable, for a CI comment).")
    ] = False,
    format_: Annotated[
        str,
        typer.Option("--format", help="text, json (same as --json) or markdown (same as --markdown), as on plan."),
    ] = "text",
    auto_approve: AutoApproveOpt = False,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    target: TargetOpt = None,
    parallelism: ParallelismOpt = 256,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    stage: StageOpt = None,
    sandbox: SandboxOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
    policy: PolicyOpt = None,
    override: OverrideOpt = None,
    reason: ReasonOpt = None,
    policy_report: PolicyReportOpt = None,
    json_: JsonOpt = False,
) -> int:
    """Compare the cloud with state and the plan: exit 2 on drift, 3 if a policy blocks the live state."""
    from cloudorch import api
    from cloudorch.cli.render import drift_markdown, render_drift

    if format_ not in ("text", "json", "markdown"):
        raise ConfigError(f"--format {format_}: unknown format", hint="use text, json or markdown")
    markdown = markdown or format_ == "markdown"
    if json_ and markdown:
        raise ConfigError("--json and markdown output ask for two documents on stdout", hint="choose one")
    json_ = json_ or format_ == "json"
    out = _out(json_)
    opts = _plan_opts(
        plan_file,
        command="drift",
        var=var,
        var_file=var_file,
        state_dir=state_dir,
        backend=backend,
        stage=stage,
        sandbox=sandbox,
        lock_timeout=lock_timeout,
        parallelism=parallelism,
        refresh="true",
        target=target,
        exclude=None,
        replace=None,
        destroy=False,
        policy=_policy_kw(policy, override, reason, policy_report),
    )
    report = api.drift(opts)
    code = _drift_exit(report)
    if markdown and not json_:
        out.plain(drift_markdown(report).rstrip("\n"))
    elif not json_:
        render_drift(out, report)
    if not reconcile:
        if json_:
            out.document(report.to_json())
        return code
    if not report.has_drift:
        if json_:
            out.document({**report.to_json(), "reconcile": {"applied": False, "reason": "no drift"}})
        else:
            out.print("Nothing to reconcile.")
        return code
    if not json_:
        out.print("\nReconciling: planning what brings the cloud back to the plan file.\n")
    outcome = _reconcile(opts, out, json_, auto_approve)
    if json_:
        out.document({**report.to_json(), "reconcile": outcome})
    return int(outcome["exit"])


def _reconcile(opts: RunOptions, out: Output, json_: bool, auto_approve: bool) -> dict[str, Any]:
    from dataclasses import replace

    from cloudorch import api
    from cloudorch.cli.signals import SignalInterrupt

    apply_opts = replace(opts, command="cloudorch drift --reconcile")
    return _confirmed_apply(
        out,
        json_,
        auto_approve,
        "reconcile the drift",
        lambda confirm, observer, on_plan: api.apply(
            apply_opts, confirm=confirm, observer=observer, on_plan=on_plan, interrupt=SignalInterrupt()
        ),
    )


@app.command()
def rollback(
    plan_file: PlanArg,
    to: Annotated[
        int | None, typer.Option("--to", help="The state serial to go back to (see `state history`).")
    ] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Go back this many state versions.")] = None,
    auto_approve: AutoApproveOpt = False,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    parallelism: ParallelismOpt = 256,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    stage: StageOpt = None,
    sandbox: SandboxOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
    policy: PolicyOpt = None,
    override: OverrideOpt = None,
    reason: ReasonOpt = None,
    policy_report: PolicyReportOpt = None,
    json_: JsonOpt = False,
) -> int:
    """Bring the cloud back to the resources of an earlier state version (asks first)."""
    from cloudorch import api
    from cloudorch.cli.signals import SignalInterrupt

    out = _out(json_)
    opts = _plan_opts(
        plan_file,
        command="rollback",
        var=var,
        var_file=var_file,
        state_dir=state_dir,
        backend=backend,
        stage=stage,
        sandbox=sandbox,
        lock_timeout=lock_timeout,
        parallelism=parallelism,
        refresh="true",
        target=None,
        exclude=None,
        replace=None,
        destroy=False,
        policy=_policy_kw(policy, override, reason, policy_report),
    )
    outcome = _confirmed_apply(
        out,
        json_,
        auto_approve,
        "roll back to this state",
        lambda confirm, observer, on_plan: api.revert(
            opts, to=to, steps=steps, confirm=confirm, observer=observer, on_plan=on_plan, interrupt=SignalInterrupt()
        ),
    )
    if json_:
        out.document(outcome)
    return int(outcome["exit"])
