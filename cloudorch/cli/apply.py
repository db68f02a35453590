"""`plan`, `apply`, `destroy` and `recover`: compute the changes, make them, or finish a killed apply.

Each parses flags (the shared ones through `plan_command`), calls one `cloudorch.api` function,
renders, then denies (exit 3) when a policy blocked.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cloudorch.cli.common import app, deny, render_policy, run_apply
from cloudorch.cli.options import EXITS, AutoApproveOpt, plan_command
from cloudorch.cli.output import Output
from cloudorch.errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from cloudorch.api import RunOptions


@plan_command(
    app,
    "plan",
    uses="vars target exclude replace refresh parallelism state stage sandbox lock policy notify json",
    summary="Show what apply would change, and what policies say.",
    example="cloudorch plan plans/quickstart.yaml -o quickstart.plan\n"
    "cloudorch plan plans/quickstart.yaml --format markdown",
    exits="0 no changes (or any plan without --detailed-exitcode), 2 changes with --detailed-exitcode, "
    f"3 denied by policy (after the plan is shown), {EXITS}",
)
def plan(
    opts: RunOptions,
    out: Output,
    out_file: Annotated[
        Path | None, typer.Option("-o", "--out", metavar="FILE", help="Save the plan to apply it later.")
    ] = None,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 2 when there are changes, 0 when none.")
    ] = False,
    destroy: Annotated[bool, typer.Option("--destroy", help="Plan to destroy everything in state.")] = False,
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="text|json|markdown",
            envvar="CLOUDORCH_PLAN_FORMAT",
            help="text, json (same as --json) or markdown (a pull-request comment, stable across runs).",
        ),
    ] = "text",
    generate_config_out: Annotated[
        Path | None,
        typer.Option(
            "--generate-config-out",
            metavar="FILE",
            help="Write YAML resource blocks, read from the cloud, for `imports:` targets with no block yet "
            "(never overwrites FILE).",
            show_default=False,
        ),
    ] = None,
) -> int:
    """Refresh state, compare it with the plan file, check policies, and show what apply would do."""
    from cloudorch import api
    from cloudorch.cli.render import changeset_json, render_changeset

    if format_ not in ("text", "json", "markdown"):
        raise ConfigError(f"--format {format_}: unknown format", hint="use text, json or markdown")
    if out.json_mode and format_ == "markdown":
        raise ConfigError("--json and --format markdown ask for two documents on stdout", hint="choose one")
    if format_ == "json":
        out = Output.configure(json_mode=True)
    if generate_config_out is not None:
        from cloudorch.cli.generate import refuse_existing

        refuse_existing(generate_config_out)
    planned = api.judged_plan(replace(opts, destroy=destroy, generate_config_out=generate_config_out))
    cs = planned.changeset
    if out_file is not None:
        cs.save(out_file)
    if generate_config_out is not None:
        from cloudorch.cli.generate import write_generated

        write_generated(out, generate_config_out, planned.generated_config)
    if out.json_mode:
        doc = changeset_json(cs)
        if planned.waiting is not None:
            doc["pending_run"] = planned.waiting.to_json()  # stderr said so too (opts.notify)
        out.document(doc)
    elif format_ == "markdown":
        from cloudorch.cli.markdown import render

        sys.stdout.write(render(cs, stage=opts.stage, sandbox=opts.sandbox))
        sys.stdout.flush()
    else:
        render_changeset(out, cs)
        render_policy(out, cs)
        if out_file is not None:
            out.print(f"\nSaved the plan to {out_file}. Apply exactly this with: cloudorch apply {out_file}")
    if planned.verdict is not None:
        deny(planned.verdict.denial(dict(opts.overrides)))
    return int(ExitCode.CHANGES) if detailed_exitcode and cs.has_changes else 0


@plan_command(
    app,
    "apply",
    uses="vars target exclude replace refresh parallelism state stage sandbox lock policy on_failure notify json",
    summary="Make the changes (asks first), or apply a saved plan.",
    plan_help="A plan file, or a plan saved with `plan -o`.",
    example="cloudorch apply plans/quickstart.yaml\ncloudorch apply quickstart.plan   # a saved plan, exactly as shown",
    exits="0 applied (or nothing to do), 1 an operation failed or the changes were declined, "
    f"3 denied by policy, {EXITS} (state is saved; apply again to finish)",
)
def apply(opts: RunOptions, out: Output, auto_approve: AutoApproveOpt = False) -> int:
    """Plan and apply (asks first), or apply a saved plan exactly as it was shown."""
    from cloudorch.api import ChangeSet

    saved_path = opts.plan_file if ChangeSet.looks_saved(opts.plan_file) else None
    return run_apply(opts, out, auto_approve, saved_path, "perform these actions")


@plan_command(
    app,
    "destroy",
    uses="vars target exclude parallelism state stage sandbox lock notify json",
    summary="Delete everything the plan's state holds (asks first).",
    example="cloudorch destroy plans/quickstart.yaml --auto-approve",
    exits=f"0 destroyed (or nothing to do), 1 an operation failed or declined, 3 denied by policy, {EXITS}",
)
def destroy(opts: RunOptions, out: Output, auto_approve: AutoApproveOpt = False) -> int:
    """Destroy everything the plan's state holds, in reverse dependency order."""
    return run_apply(replace(opts, destroy=True), out, auto_approve, None, "destroy these resources")


@plan_command(
    app,
    "recover",
    uses="vars state stage sandbox lock notify json",
    summary="Finish what a killed apply left: fold its journal into state.",
    example="cloudorch recover plans/quickstart.yaml",
    exits=f"0 recovered, or nothing to recover, {EXITS}",
)
def recover(opts: RunOptions, out: Output) -> int:
    """Recover from a killed apply: take over its stale lock, replay finished operations into state,
    adopt what in-flight creates made (found by name or `cloudorch:address` tag) or record them absent,
    and finish an undo (--on-failure=rollback) the crash cut short. Nothing to do is not an error."""
    from cloudorch import api
    from cloudorch.cli.render import ProgressObserver, render_recovery
    from cloudorch.cli.signals import SignalInterrupt

    with ProgressObserver(out, 0) as progress:
        outcome = api.recover(opts, observer=progress, interrupt=SignalInterrupt())
    if out.json_mode:
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
