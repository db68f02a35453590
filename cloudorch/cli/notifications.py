"""`cloudorch notifications status|retry PLAN`: what waits in the notification outbox, and sending it now."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cloudorch.cli.common import app
from cloudorch.cli.options import EXITS, BackendOpt, JsonOpt, StateDirOpt, epilog
from cloudorch.cli.output import Output
from cloudorch.cli.runs import SandboxOpt, StageOpt, VarFileOpt, VarOpt, options

notifications_app = typer.Typer(
    help="The notification outbox: events recorded with each run wait there until delivered.",
    no_args_is_help=True,
)
app.add_typer(notifications_app, name="notifications", short_help="Show or retry undelivered notifications.")

PlanArg = Annotated[Path, typer.Argument(metavar="PLAN_FILE", help="The plan file (YAML).", show_default=False)]
NotifyOpt = Annotated[
    list[str] | None,
    typer.Option("--notify", metavar="URL", help="A target given by --notify when the run was made. Repeatable.",
                 show_default=False),
]


@notifications_app.command(
    "status",
    short_help="Undelivered notifications (and the last delivered ones), URLs masked.",
    epilog=epilog(
        "cloudorch notifications status plans/quickstart.yaml --json", f"0 nothing waits, 1 some wait, {EXITS}"
    ),
)
def status(
    plan_file: PlanArg,
    stage: StageOpt = None,
    notify: NotifyOpt = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    sandbox: SandboxOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Show what waits in the outbox: event, run, target (masked), attempts and the last error."""
    from dataclasses import replace

    from cloudorch import api

    out = Output.configure(json_mode=json_)
    opts = options(plan_file, out, stage=stage, state_dir=state_dir, backend=backend, var=var,
                   var_file=var_file, sandbox=sandbox, command="notifications status")
    doc = api.notifications_status(replace(opts, notify_urls=list(notify or [])))
    if out.json_mode:
        out.document(doc)
    else:
        if not doc["pending"]:
            out.plain("No notification waits to be delivered.")
        for e in doc["pending"]:
            hint = "" if e["target_configured"] else " (its target is not configured now)"
            out.plain(
                f"waiting: {e['event']} {e['delivery_id']} to {e['target']}{hint}: run {e['run_id']}, "
                f"{e.get('attempts', 0)} attempt(s)" + (f", last: {e['last_error']}" if e.get("last_error") else "")
            )
        for e in doc["delivered"][:10]:
            out.plain(f"delivered: {e['event']} {e['delivery_id']} to {e['target']} at {e.get('delivered_at')}")
    return 1 if doc["pending"] else 0


@notifications_app.command(
    "retry",
    short_help="Deliver what waits in the outbox now, with the same delivery ids.",
    epilog=epilog(
        "cloudorch notifications retry plans/quickstart.yaml\n"
        "cloudorch notifications retry plans/quickstart.yaml --id 3f0c...   # one delivery",
        f"0 everything delivered (or nothing waited), 1 some still wait, {EXITS}",
    ),
)
def retry(
    plan_file: PlanArg,
    ids: Annotated[
        list[str] | None,
        typer.Option("--id", metavar="DELIVERY_ID", help="Only this delivery. Repeatable.", show_default=False),
    ] = None,
    stage: StageOpt = None,
    notify: NotifyOpt = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    sandbox: SandboxOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Deliver every undelivered notification (or those given by --id) to its target now, retrying
    with backoff within CLOUDORCH_NOTIFY_BUDGET seconds; what still fails stays in the outbox."""
    from dataclasses import replace

    from cloudorch import api

    out = Output.configure(json_mode=json_)
    opts = options(plan_file, out, stage=stage, state_dir=state_dir, backend=backend, var=var,
                   var_file=var_file, sandbox=sandbox, command="notifications retry")
    result = api.notifications_retry(replace(opts, notify_urls=list(notify or [])), list(ids or []))
    if out.json_mode:
        out.document(result.to_json())
    else:
        for e in result.delivered:
            out.plain(f"delivered: {e['event']} {e['delivery_id']} to {e['target']}")
        for e in result.failed:
            out.plain(f"not delivered: {e['event']} {e['delivery_id']} to {e['target']}: {e.get('last_error')}")
        for e in result.unknown_target:
            out.plain(
                f"waiting: {e['event']} {e['delivery_id']} to {e['target']}: that target is not configured "
                "(the plan's notifications:, --notify or CLOUDORCH_NOTIFY)"
            )
        if not (result.delivered or result.failed or result.unknown_target):
            out.plain("Nothing waits to be delivered.")
    return 0 if result.ok else 1
