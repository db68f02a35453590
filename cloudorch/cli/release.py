"""`release deploy|promote|approve|status|history|rollback|reject`: a version through the plan's stages.

Each parses flags, calls one `cloudorch.api.release_*` function and renders what it returns, then
denies (exit 3) when a gate or policy refused; gate logic lives in `cloudorch.release`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cloudorch.cli.common import ApplyUi, deny, release_app
from cloudorch.cli.options import EXITS, AutoApproveOpt, plan_command
from cloudorch.cli.output import Output, escape
from cloudorch.errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from cloudorch.api import Outcome, RunOptions

VersionOpt = Annotated[
    str, typer.Option("--version", metavar="VERSION", help="The version (artifact version, image tag, build id).")
]
MaybeVersionOpt = Annotated[
    str | None,
    typer.Option(
        "--version", metavar="VERSION", help="The version; default: the one running healthy in the previous stage."
    ),
]
RequiredStageOpt = Annotated[
    str, typer.Option("--stage", metavar="NAME", envvar="CLOUDORCH_STAGE", help="The release stage.")
]
GateOverrideOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--override",
        metavar="GATE|POLICY_ID",
        help="Waive a soak, window or health gate, or a mandatory policy, by name (needs --reason; recorded). "
        "Repeatable.",
        show_default=False,
    ),
]
ReasonOpt = Annotated[
    str | None, typer.Option("--reason", metavar="TEXT", help="Why (recorded in the release history).")
]
APPLYING = "vars parallelism state sandbox lock notify json"
RECORDING = "vars state sandbox lock notify json"
READING = "vars state sandbox json"
APPLY_EXITS = f"0 done, 1 an operation failed or declined, 3 refused by a gate, a policy or a rejection, {EXITS}"


def _ui(out: Output, auto_approve: bool, verb: str) -> ApplyUi:
    # gate verdicts, not the policy table, say what policies found; a gap sets the plan off from them
    return ApplyUi(out, out.json_mode, auto_approve, verb, show_policy=False, gap_before_plan=True)


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


def _finish(out: Output, outcome: Outcome) -> int:
    """Render an outcome; raise its refusal (exit 3) after the verdicts are shown."""
    from cloudorch.cli.render import changeset_json, render_result, result_json

    if out.json_mode:
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
    deny(outcome.denied)
    if outcome.declined:
        return int(ExitCode.ERROR)
    return 0 if outcome.ok else int(ExitCode.ERROR)


@plan_command(
    release_app,
    "deploy",
    command="release deploy",
    uses=APPLYING,
    summary="Apply a version to a stage (a first stage takes any).",
    example="cloudorch release deploy plans/release-demo.yaml --stage dev --version 1.4.2",
    exits=APPLY_EXITS,
)
def deploy(
    opts: RunOptions,
    out: Output,
    stage: RequiredStageOpt,
    version: VersionOpt,
    auto_approve: AutoApproveOpt = False,
) -> int:
    """Apply a stage with a version. A first stage takes any version; later ones take theirs by promotion."""
    from cloudorch import api
    from cloudorch.cli.signals import SignalInterrupt

    ui = _ui(out, auto_approve, f"deploy {version} to {stage}")
    if not out.json_mode:
        out.print(f"Deploying {escape(version)} to {escape(stage)}")
    with ui.progress:
        outcome = api.release_deploy(
            replace(opts, stage=stage),
            version,
            confirm=ui.confirm,
            observer=ui.progress,
            on_plan=ui.on_plan,
            interrupt=SignalInterrupt(),
        )
    return _finish(out, outcome)


@plan_command(
    release_app,
    "promote",
    command="release promote",
    uses=APPLYING,
    summary="Promote a version into a stage through its gates.",
    example="cloudorch release promote plans/release-demo.yaml --to prod --version 1.4.2\n"
    "cloudorch release promote plans/release-demo.yaml --to prod --dry-run",
    exits=f"0 promoted (or every gate passes, with --dry-run), {APPLY_EXITS[len('0 done, '):]}",
)
def promote(
    opts: RunOptions,
    out: Output,
    to: Annotated[str, typer.Option("--to", metavar="STAGE", help="The stage to promote into.")],
    version: MaybeVersionOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Evaluate the gates; apply nothing.")] = False,
    override: GateOverrideOpt = None,
    reason: ReasonOpt = None,
    auto_approve: AutoApproveOpt = False,
) -> int:
    """Evaluate every gate of the target stage and apply the version there only if all pass (exit 3 if not).

    Plans, judges the gates and applies in one hold of the stage's state lock."""
    from cloudorch import api
    from cloudorch.cli.signals import SignalInterrupt

    if override and not (reason and reason.strip()):
        raise ConfigError("--override needs --reason", hint='e.g. --override soak --reason "INC-7 hotfix"')
    ui = _ui(out, auto_approve, f"promote into {to}")

    def on_verdicts(version: str, verdicts: list[Any]) -> None:
        if not out.json_mode:
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
            interrupt=SignalInterrupt(),
        )
    return _finish(out, outcome)


@plan_command(
    release_app,
    "approve",
    command="release approve",
    uses=RECORDING,
    summary="Approve a version into a stage as the current actor (signed with --sign-key).",
    example="CLOUDORCH_ACTOR=ann cloudorch release approve plans/release-demo.yaml --stage prod --version 1.4.2",
    exits=f"0 approved (or already), 3 this actor (or key) may not approve there, {EXITS}",
)
def approve(
    opts: RunOptions,
    out: Output,
    stage: RequiredStageOpt,
    version: VersionOpt,
    comment: Annotated[
        str | None, typer.Option("--comment", metavar="TEXT", help="Recorded with the approval.")
    ] = None,
    sign_key: Annotated[
        Path | None,
        typer.Option(
            "--sign-key",
            metavar="KEY",
            help="Sign the approval with this SSH private key (ssh-keygen -Y sign); needed by a gate with "
            "`signed: true`, which counts the principal its allowed_signers file names for the key.",
        ),
    ] = None,
) -> int:
    """Approve a version into a stage as the current actor (CLOUDORCH_ACTOR, the CI's actor, or the OS user).

    With --sign-key the approval is signed, and the approver recorded is the principal the gate's
    allowed_signers file lists for the key, whatever CLOUDORCH_ACTOR says.
    """
    from cloudorch import api

    got = api.release_approve(replace(opts, stage=stage), version, comment, sign_key=sign_key)
    if out.json_mode:
        out.document(got)
        return 0
    verb = "had already approved" if got["already_approved"] else "approved"
    out.print(f"{escape(got['actor'])} {verb} {escape(version)} into {escape(stage)}.")
    out.print(
        f"Approvals: {len(got['approvals'])}/{got['needed']} ({escape(', '.join(got['approvals']))})"
        + (" — enough to promote" if got["satisfied"] else "")
    )
    return 0


@plan_command(
    release_app,
    "status",
    command="release status",
    uses=READING,
    summary="Show what runs in each stage and what the next promotion waits for.",
    example="cloudorch release status plans/release-demo.yaml",
    exits=f"0 shown, {EXITS}",
)
def status(opts: RunOptions, out: Output) -> int:
    """Per stage: the version running, since when, the next promotion's gates and pending approvals."""
    from cloudorch import api

    doc = api.release_status(opts)
    if out.json_mode:
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


@plan_command(
    release_app,
    "history",
    command="release history",
    uses=READING,
    summary="List every release event, with actor, time and reason.",
    example="cloudorch release history plans/release-demo.yaml --stage prod",
    exits=f"0 shown, {EXITS}",
)
def history(
    opts: RunOptions,
    out: Output,
    stage: Annotated[
        str | None, typer.Option("--stage", metavar="NAME", envvar="CLOUDORCH_STAGE", help="Only this stage's events.")
    ] = None,
) -> int:
    """Every deploy, promotion, approval, override, refusal, rejection and release rollback, with actor,
    time and reason."""
    from cloudorch import api

    events = api.release_history(opts, stage)
    if out.json_mode:
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


@plan_command(
    release_app,
    "rollback",
    command="release rollback",
    uses=APPLYING,
    summary="Release rollback: re-deploy a stage's previous good version.",
    example="cloudorch release rollback plans/release-demo.yaml --stage prod --reason \"INC-42\"",
    exits=APPLY_EXITS,
)
def rollback(
    opts: RunOptions,
    out: Output,
    stage: RequiredStageOpt,
    to_version: Annotated[
        str | None,
        typer.Option(
            "--to-version", metavar="VERSION", help="A version that ran in the stage; default: the previous good one."
        ),
    ] = None,
    reason: ReasonOpt = None,
    auto_approve: AutoApproveOpt = False,
) -> int:
    """Release rollback: re-deploy the previous good version of a stage (from the release history),
    through the same engine."""
    from cloudorch import api
    from cloudorch.cli.signals import SignalInterrupt

    ui = _ui(out, auto_approve, f"roll {stage} back")
    with ui.progress:
        outcome = api.release_rollback(
            replace(opts, stage=stage),
            to_version=to_version,
            reason=reason,
            confirm=ui.confirm,
            observer=ui.progress,
            on_plan=ui.on_plan,
            interrupt=SignalInterrupt(),
        )
    return _finish(out, outcome)


@plan_command(
    release_app,
    "reject",
    command="release reject",
    uses=RECORDING,
    summary="Mark a version bad everywhere.",
    example="cloudorch release reject plans/release-demo.yaml --version 1.4.2 --reason \"INC-42: corrupts carts\"",
    exits=f"0 rejected (or already), {EXITS}",
)
def reject(
    opts: RunOptions,
    out: Output,
    version: VersionOpt,
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT", help="Why the version is bad (recorded).")],
) -> int:
    """Mark a version bad: it can no longer be deployed, approved or promoted anywhere."""
    from cloudorch import api

    got = api.release_reject(opts, version, reason)
    if out.json_mode:
        out.document(got)
        return 0
    out.print(f"{escape(version)} is rejected" + (" (it already was)" if got["already_rejected"] else "") + ".")
    if got["running_in"]:
        out.print(
            f"It still runs in {escape(', '.join(got['running_in']))}: "
            "roll back with `cloudorch release rollback PLAN --stage STAGE`."
        )
    return 0
