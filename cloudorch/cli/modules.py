"""Module commands: `modules update` re-resolves git module refs and rewrites `cloudorch.lock`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from cloudorch.cli.common import app
from cloudorch.cli.options import plan_command
from cloudorch.cli.output import Output

if TYPE_CHECKING:
    from cloudorch.api import RunOptions

modules_app = typer.Typer(
    help="Modules used by a plan: update re-resolves git sources and rewrites the lock file.", no_args_is_help=True
)
app.add_typer(modules_app, name="modules", short_help="Update the git modules a plan pins in cloudorch.lock.")


@plan_command(
    modules_app,
    "update",
    uses="vars json",
    summary="Re-resolve the refs of the plan's git modules and rewrite cloudorch.lock.",
    example="cloudorch modules update plans/estate.yaml\ncloudorch modules update plans/estate.yaml --json",
    exits="0 updated, 1 invalid plan file or a source git cannot fetch",
    command="modules update",
)
def update(opts: RunOptions, out: Output) -> int:
    """Fetch every `git+...` module source of the plan (nested ones too), resolve its `?ref=` to a
    commit now, and write those commits to `cloudorch.lock` beside the plan. Until this runs, a
    plan keeps using the commits the lock pins, even when a branch has moved; a source whose ref
    changed in the plan file is an error that names this command."""
    from cloudorch import api

    doc = api.modules_update(opts)
    if out.json_mode:
        out.document(doc)
        return 0
    if not doc["modules"]:
        out.print(f"No git modules in {opts.plan_file}; wrote {doc['lock_file']}.")
        return 0
    for key, entry in doc["modules"].items():
        out.plain(f"{key}\t{entry.get('ref', 'HEAD')}\t{entry['commit']}")
    out.print(f"Wrote {doc['lock_file']}.")
    return 0
