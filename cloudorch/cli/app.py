"""The typer application with every command: importing this module registers them all.

One module per noun registers its commands on the apps of `common.py`: `apply` (plan, apply,
destroy, recover), `state` (state *, output, force-unlock), `policy`, `release`, `revert`
(the `rollback` command), `drift`, `sandbox`, `fleet`, `ui`, `modules` (modules update), `ci`
(helpers for pipeline scripts), and `info` (version, validate, graph, schema, providers). Commands
parse flags, call `cloudorch.api`,
render, and return an exit code.
"""

from __future__ import annotations

from cloudorch.cli import (  # noqa: F401
    apply,
    ci,
    drift,
    fleet,
    info,
    modules,
    notifications,
    policy,
    release,
    revert,
    runs,
    sandbox,
    state,
    ui,
)
from cloudorch.cli.common import app

__all__ = ["app"]
