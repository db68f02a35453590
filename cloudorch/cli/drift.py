"""`drift`: what changed outside cloudorch (exit 2) or what a policy forbids in the live state (exit 3);
`--reconcile` then applies the plan, asking first."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cloudorch.cli.common import app, confirmed_apply, deny
from cloudorch.cli.options import EXITS, AutoApproveOpt, plan_command
from cloudorch.cli.output import Output
from cloudorch.errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from cloudorch.api import RunOptions


def _drift_exit(report: Any) -> int:
    if report.policy_blocking:
        return int(ExitCode.DENIED)
    return int(ExitCode.CHANGES) if report.has_drift else 0


@plan_command(
    app,
    "drift",
    uses="vars target parallelism state stage sandbox lock policy notify json",
    summary="Compare the cloud with state and the plan file.",
    example="cloudorch drift plans/quickstart.yaml\ncloudorch drift plans/quickstart.yaml --reconcile --auto-approve",
    exits=f"0 no drift, 2 drift found, 3 a policy blocks the live state, {EXITS}",
)
def drift(
    opts: RunOptions,
    out: Output,
    reconcile: Annotated[
        bool, typer.Option("--reconcile", help="Then plan and apply what brings the cloud back to the plan (asks).")
    ] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print a compact Markdown summary (stable, for a CI comment).")
    ] = False,
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="text|json|markdown",
            help="text, json (same as --json) or markdown (same as --markdown), as on plan.",
        ),
    ] = "text",
    auto_approve: AutoApproveOpt = False,
) -> int:
    """Compare the cloud with state and the plan: exit 2 on drift, 3 if a policy blocks the live state."""
    from cloudorch import api
    from cloudorch.cli.render import drift_markdown, render_drift
    from cloudorch.cli.signals import SignalInterrupt

    if format_ not in ("text", "json", "markdown"):
        raise ConfigError(f"--format {format_}: unknown format", hint="use text, json or markdown")
    markdown = markdown or format_ == "markdown"
    if out.json_mode and markdown:
        raise ConfigError("--json and markdown output ask for two documents on stdout", hint="choose one")
    if format_ == "json":
        out = Output.configure(json_mode=True)
    json_ = out.json_mode
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
    apply_opts = replace(opts, command="cloudorch drift --reconcile")
    outcome, denied = confirmed_apply(
        out,
        auto_approve,
        "reconcile the drift",
        lambda confirm, observer, on_plan: api.apply(
            apply_opts, confirm=confirm, observer=observer, on_plan=on_plan, interrupt=SignalInterrupt()
        ),
    )
    if json_:
        out.document({**report.to_json(), "reconcile": outcome})
    deny(denied)
    return int(outcome["exit"])
