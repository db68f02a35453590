"""`rollback --to SERIAL | --steps N`: revert the cloud to the resources of an earlier state serial.

The command keeps its name `rollback` for scripts that use it; what it does is a revert (not the
undo of a failed apply, which is `apply --on-failure=rollback`, nor a `release rollback`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cloudorch.cli.common import app, confirmed_apply, deny
from cloudorch.cli.options import EXITS, AutoApproveOpt, plan_command
from cloudorch.cli.output import Output

if TYPE_CHECKING:
    from cloudorch.api import RunOptions


@plan_command(
    app,
    "rollback",
    uses="vars parallelism state stage sandbox lock policy notify json",
    summary="Revert the cloud to an earlier state serial (asks first).",
    example="cloudorch state history plans/quickstart.yaml   # pick a serial\n"
    "cloudorch rollback plans/quickstart.yaml --to 3",
    exits=f"0 reverted (or nothing to do), 1 an operation failed or declined, 3 denied by policy, {EXITS}",
)
def rollback(
    opts: RunOptions,
    out: Output,
    to: Annotated[
        int | None,
        typer.Option("--to", metavar="SERIAL", help="The state serial to revert to (see `state history`)."),
    ] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", metavar="N", help="Revert this many state versions back.")
    ] = None,
    auto_approve: AutoApproveOpt = False,
) -> int:
    """Revert state to a serial: plan what brings the cloud back to the resources of an earlier state
    version, ask, and apply it (a new serial records the revert)."""
    from cloudorch import api
    from cloudorch.cli.signals import SignalInterrupt

    outcome, denied = confirmed_apply(
        out,
        auto_approve,
        "roll back to this state",
        lambda confirm, observer, on_plan: api.revert(
            opts, to=to, steps=steps, confirm=confirm, observer=observer, on_plan=on_plan, interrupt=SignalInterrupt()
        ),
    )
    if out.json_mode:
        out.document(outcome)
    deny(denied)
    return int(outcome["exit"])
