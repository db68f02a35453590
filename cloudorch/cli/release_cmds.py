"""release commands (registered on the shared app by import from `app.py`).

`cloudorch release deploy|promote|approve|status|history|rollback|reject`: each parses flags,
calls one `cloudorch.api.release_*` function and renders what it returns; gate logic lives in
`cloudorch.release`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from cloudorch.cli.common import (
    ApplyUi,
    AutoApproveOpt,
    BackendOpt,
    JsonOpt,
    LockTimeoutOpt,
    ParallelismOpt,
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
from cloudorch.errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from pathlib import Path

    from cloudorch.api import RunOptions
    from cloudorch.cli.output import Output
    from cloudorch.release.promotion import Outcome

release_app = typer.Typer(
    help="Release a version through the plan's stages: deploy, promote (through gates), approve, "
    "status, history, rollback, reject.",
    no_args_is_help=True,
)
app.add_typer(release_app, name="release")

VersionOpt = Annotated[str, typer.Option("--version", help="The version (artifact version, image tag, build id).")]
MaybeVersionOpt = Annotated[
    str | None, typer.Option("--version", help="The version; default: the one running healthy in the previous stage.")
]
RequiredStageOpt = Annotated[str, typer.Option("--stage", envvar="CLOUDORCH_STAGE", help="The release stage.")]
GateOverrideOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--override",
        help="Waive a soak, window or health gate, or a mandatory policy, by name (needs --reason; recorded).",
    ),
]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why (recorded in the release history).")]


def _release_opts(
    plan_file: Path,
    command: str,
    *,
    var: list[str] | None,
    var_file: list[Path] | None,
    state_dir: Path | None,
    backend: str | None,
    sandbox: bool = False,
    stage: str | None = None,
    lock_timeout: float = 0.0,
    parallelism: int = 256,
) -> RunOptions:
    return _options(
        plan_file,
        var=var,
        var_file=var_file,
        state_dir=state_dir,
        backend=backend,
        sandbox=sandbox,
        stage=stage,
        command="release " + command,
        lock_timeout=lock_timeout,
        parallelism=parallelism,
    )


def _ui(out: Output, json_: bool, auto_approve: bool, verb: str) -> ApplyUi:
    # gate verdicts, not the policy table, say what policies found; a gap sets the plan off from them
    return ApplyUi(out, json_, auto_approve, verb, show_policy=False, gap_before_plan=True)


def _render_verdicts(out: Output, title: str, verdicts: list[Any]) -> None:
    if not verdicts:
        return
    out.print(f"[bold]{escape(title)}[/]")
    for v in verdicts:
        mark = "[green]PASS[/]" if v.passed else "[red]FAIL[/]"
        if v.overridden:
            mark = "[yellow]OVERRIDDEN[/]"
        extra = f" [yellow](override: {escape(v.overridden)})[/]" if v.overridden else ""
        out.print(f"  {mark}  {escape(v.gate):<20} {escape(v.detail)}{extra}")


def _finish(out: Output, json_: bool, outcome: Outcome) -> int:
    """Render an outcome; raise its refusal (exit 3) after the verdicts are shown."""
    from cloudorch.cli.render import changeset_json, render_result, result_json

    if json_:
        doc = outcome.to_json()
        if outcome.result is not None:
            doc["changeset"] = changeset_json(outcome.result.changeset)
            doc["result"] = result_json(outcome.result)
        out.document(doc)
    else:
        if outcome.result is not None and outcome.result.changeset.has_changes:
            out.print()
            render_result(out, outcome.result)
        _render_verdicts(out, "Verification:", outcome.verification)
        if outcome.applied and outcome.result is not None and outcome.result.ok and outcome.denied is None:
            out.print(f"[green]{outcome.stage} now runs {escape(outcome.version)}[/]")
        if outcome.rolled_back_to:
            out.print(f"[yellow]{outcome.stage} was rolled back to {escape(outcome.rolled_back_to)}[/]")
        if outcome.dry_run and outcome.denied is None:
            out.print(f"Dry run: every gate passes; {outcome.version} can be promoted into {outcome.stage}.")
    if outcome.denied is not None:
        raise outcome.denied
    if outcome.declined:
        return int(ExitCode.ERROR)
    return 0 if outcome.ok else int(ExitCode.ERROR)


@release_app.command("deploy")
def deploy(
    plan_file: PlanArg,
    stage: RequiredStageOpt,
    version: VersionOpt,
    auto_approve: AutoApproveOpt = False,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    parallelism: ParallelismOpt = 256,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    sandbox: SandboxOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
    json_: JsonOpt = False,
) -> int:
    """Apply a stage with a version. A first stage takes any version; later ones take theirs by promotion."""
    from cloudorch import api

    out = _out(json_)
    opts = _release_opts(
        plan_file,
        "deploy",
        var=var,
        var_file=var_file,
        state_dir=state_dir,
        backend=backend,
        sandbox=sandbox,
        stage=stage,
        lock_timeout=lock_timeout,
        parallelism=parallelism,
    )
    ui = _ui(out, json_, auto_approve, f"deploy {version} to {stage}")
    if not json_:
        out.print(f"Deploying {escape(version)} to {escape(stage)}")
    with ui.progress:
        outcome = api.release_deploy(opts, version, confirm=ui.confirm, observer=ui.progress, on_plan=ui.on_plan)
    return _finish(out, json_, outcome)


@release_app.command("promote")
def promote(
    plan_file: PlanArg,
    to: Annotated[str, typer.Option("--to", help="The stage to promote into.")],
    version: MaybeVersionOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Evaluate the gates; apply nothing.")] = False,
    override: GateOverrideOpt = None,
    reason: ReasonOpt = None,
    auto_approve: AutoApproveOpt = False,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    parallelism: ParallelismOpt = 256,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    sandbox: SandboxOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
    json_: JsonOpt = False,
) -> int:
    """Evaluate every gate of the target stage and apply the version there only if all pass (exit 3 if not)."""
    from cloudorch import api

    out = _out(json_)
    if override and not (reason and reason.strip()):
        raise ConfigError("--override needs --reason", hint='e.g. --override soak --reason "INC-7 hotfix"')
    opts = _release_opts(
        plan_file,
        "promote",
        var=var,
        var_file=var_file,
        state_dir=state_dir,
        backend=backend,
        sandbox=sandbox,
        lock_timeout=lock_timeout,
        parallelism=parallelism,
    )
    ui = _ui(out, json_, auto_approve, f"promote into {to}")

    def on_verdicts(version: str, verdicts: list[Any]) -> None:
        if not json_:
            _render_verdicts(out, f"Gates for {version} into {to}:", verdicts)

    with ui.progress:
        outcome = api.release_promote(
            opts,
            to,
            version=version,
            dry_run=dry_run,
            overrides={o: str(reason) for o in override or []},
            confirm=ui.confirm,
            observer=ui.progress,
            on_plan=ui.on_plan,
            on_verdicts=on_verdicts,
        )
    return _finish(out, json_, outcome)


@release_app.command("approve")
def approve(
    plan_file: PlanArg,
    stage: RequiredStageOpt,
    version: VersionOpt,
    comment: Annotated[str | None, typer.Option("--comment", help="Recorded with the approval.")] = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    sandbox: SandboxOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
    json_: JsonOpt = False,
) -> int:
    """Approve a version into a stage as the current actor (CLOUDORCH_ACTOR, the CI's actor, or the OS user)."""
    from cloudorch import api

    out = _out(json_)
    opts = _release_opts(
        plan_file,
        "approve",
        var=var,
        var_file=var_file,
        state_dir=state_dir,
        backend=backend,
        sandbox=sandbox,
        stage=stage,
        lock_timeout=lock_timeout,
    )
    got = api.release_approve(opts, version, comment)
    if json_:
        out.document(got)
        return 0
    verb = "had already approved" if got["already_approved"] else "approved"
    out.print(f"{escape(got['actor'])} {verb} {escape(version)} into {escape(stage)}.")
    out.print(
        f"Approvals: {len(got['approvals'])}/{got['needed']} ({escape(', '.join(got['approvals']))})"
        + (" — enough to promote" if got["satisfied"] else "")
    )
    return 0


@release_app.command("status")
def status(
    plan_file: PlanArg,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    sandbox: SandboxOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Per stage: the version running, since when, the next promotion's gates and pending approvals."""
    from cloudorch import api

    out = _out(json_)
    doc = api.release_status(
        _release_opts(
            plan_file, "status", var=var, var_file=var_file, state_dir=state_dir, backend=backend, sandbox=sandbox
        )
    )
    if json_:
        out.document(doc)
        return 0
    for s in doc["stages"]:
        version = s["version"] or "(nothing deployed)"
        since = f" since {s['since']}" if s["since"] else ""
        bad = " [red](rejected)[/]" if s["rejected"] else ""
        out.print(f"[bold]{escape(s['stage'])}[/]: {escape(version)}{since}{bad}")
        for nxt in s["next"]:
            if nxt["version"] is None:
                out.print(f"  -> {escape(nxt['stage'])}: nothing to promote yet")
                continue
            out.print(f"  -> {escape(nxt['stage'])} with {escape(nxt['version'])}:")
            for g in nxt["gates"]:
                word, style = {True: ("pass", "green"), False: ("fail", "red"), None: ("later", "dim")}[g["passed"]]
                out.print(f"       [{style}]{word:<5}[/] {escape(g['gate'])}: {escape(g['detail'])}")
            pending = nxt["pending_approvals"]
            if pending and pending["waiting_for"]:
                out.print(
                    f"       pending approvals: {len(pending['approved_by'])}/{pending['needed']}, "
                    f"from any of {escape(', '.join(pending['waiting_for']))}"
                )
    return 0


@release_app.command("history")
def history(
    plan_file: PlanArg,
    stage: StageOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    sandbox: SandboxOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Every deploy, promotion, approval, override, refusal, rejection and rollback, with actor, time and reason."""
    from cloudorch import api

    out = _out(json_)
    opts = _release_opts(
        plan_file, "history", var=var, var_file=var_file, state_dir=state_dir, backend=backend, sandbox=sandbox
    )
    events = api.release_history(opts, stage)
    if json_:
        out.document({"events": events})
        return 0
    if not events:
        out.print("No release history yet.")
    for e in events:
        failed = " (failed)" if e["detail"].get("ok") is False else ""
        where = f" {e['stage']}" if e["stage"] else ""
        why = f"  — {e['reason']}" if e["reason"] else ""
        out.plain(f"{e['at']}  {e['kind']:<13}{where} {e['version'] or ''}{failed}  by {e['actor']}{why}")
    return 0


@release_app.command("rollback")
def rollback(
    plan_file: PlanArg,
    stage: RequiredStageOpt,
    to_version: Annotated[
        str | None,
        typer.Option("--to-version", help="A version that ran in the stage; default: the previous good one."),
    ] = None,
    reason: ReasonOpt = None,
    auto_approve: AutoApproveOpt = False,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    parallelism: ParallelismOpt = 256,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    sandbox: SandboxOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
    json_: JsonOpt = False,
) -> int:
    """Re-deploy the previous good version of a stage (from the release history), through the same engine."""
    from cloudorch import api

    out = _out(json_)
    opts = _release_opts(
        plan_file,
        "rollback",
        var=var,
        var_file=var_file,
        state_dir=state_dir,
        backend=backend,
        sandbox=sandbox,
        stage=stage,
        lock_timeout=lock_timeout,
        parallelism=parallelism,
    )
    ui = _ui(out, json_, auto_approve, f"roll {stage} back")
    with ui.progress:
        outcome = api.release_rollback(
            opts, to_version=to_version, reason=reason, confirm=ui.confirm, observer=ui.progress, on_plan=ui.on_plan
        )
    return _finish(out, json_, outcome)


@release_app.command("reject")
def reject(
    plan_file: PlanArg,
    version: VersionOpt,
    reason: Annotated[str, typer.Option("--reason", help="Why the version is bad (recorded).")],
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    sandbox: SandboxOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
    json_: JsonOpt = False,
) -> int:
    """Mark a version bad: it can no longer be deployed, approved or promoted anywhere."""
    from cloudorch import api

    out = _out(json_)
    opts = _release_opts(
        plan_file,
        "reject",
        var=var,
        var_file=var_file,
        state_dir=state_dir,
        backend=backend,
        sandbox=sandbox,
        lock_timeout=lock_timeout,
    )
    got = api.release_reject(opts, version, reason)
    if json_:
        out.document(got)
        return 0
    out.print(f"{escape(version)} is rejected" + (" (it already was)" if got["already_rejected"] else "") + ".")
    if got["running_in"]:
        out.print(
            f"It still runs in {escape(', '.join(got['running_in']))}: "
            "roll back with `cloudorch release rollback PLAN --stage STAGE`."
        )
    return 0
