"""`cloudorch runs list [PLAN]` and `cloudorch runs show ID`: the run history, newest first."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cloudorch.cli.common import app
from cloudorch.cli.options import (
    EXITS,
    BackendOpt,
    JsonOpt,
    StateDirOpt,
    build_options,
    epilog,
)
from cloudorch.cli.output import Output

if TYPE_CHECKING:
    from cloudorch.api import RunOptions

runs_app = typer.Typer(
    help="The run history: every plan, apply, destroy, drift, rollback, recover and release command, "
    "kept beside the plan's state.",
    no_args_is_help=True,
)
app.add_typer(runs_app, name="runs", short_help="List and show past runs (who ran what, when, with which result).")

PlanOpt = Annotated[
    Path | None, typer.Argument(metavar="[PLAN_FILE]", help="The plan file (YAML).", show_default=False)
]
StageOpt = Annotated[str | None, typer.Option("--stage", metavar="NAME", help="Only runs on this stage.")]
VarOpt = Annotated[
    list[str] | None,
    typer.Option("--var", metavar="NAME=VALUE", help="Set a variable. Repeatable.", show_default=False),
]
VarFileOpt = Annotated[
    list[Path] | None,
    typer.Option("--var-file", metavar="FILE", help="YAML or JSON file of variable values. Repeatable.",
                 show_default=False),
]
SandboxOpt = Annotated[bool, typer.Option("--sandbox", help="The runs of sandbox state.")]


def options(
    plan_file: Path, out: Output, *, stage: str | None, state_dir: Path | None, backend: str | None,
    var: list[str] | None, var_file: list[Path] | None, sandbox: bool, command: str,
) -> RunOptions:
    values: dict[str, Any] = {
        "plan_file": plan_file, "stage": stage, "state_dir": state_dir, "backend": backend,
        "var": var, "var_file": var_file, "sandbox": sandbox,
    }
    return build_options(values, command=command, out=out)


@runs_app.command(
    "list",
    short_help="Runs, newest first: command, stage, actor, result.",
    epilog=epilog(
        "cloudorch runs list plans/quickstart.yaml\n"
        "cloudorch runs list plans/release-demo.yaml --stage prod --failed --since 7d --json",
        f"0 listed (an empty history too), {EXITS}",
    ),
)
def runs_list(
    plan_file: PlanOpt = None,
    stage: StageOpt = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="WHEN", help="Only runs started since: a date/time or an age (24h, 7d)."),
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only runs that failed, were blocked or were interrupted.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", metavar="N", min=0, help="At most N runs (0: all).")] = 100,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    sandbox: SandboxOpt = False,
    json_: JsonOpt = False,
) -> int:
    """List runs newest first. Without PLAN_FILE: the runs of every plan with local state in
    --state-dir (default .cloudorch/ here)."""
    from cloudorch import api

    out = Output.configure(json_mode=json_)
    when = api.parse_since(since) if since else None
    cap = limit or None
    if plan_file is None:
        root = state_dir or Path(".cloudorch")
        found = api.runs_list_local(root / "sandbox" if sandbox else root, stage=stage, since=when, failed=failed,
                                    limit=cap)
    else:
        opts = options(plan_file, out, stage=stage, state_dir=state_dir, backend=backend, var=var,
                       var_file=var_file, sandbox=sandbox, command="runs list")
        found = api.runs_list(opts, since=when, failed=failed, limit=cap)
    if out.json_mode:
        out.document(found.to_json())
        return 0
    if not found.runs:
        out.plain("No runs recorded" + (" that match" if (stage or since or failed) else "") + ".")
        return 0
    for r in found.runs:
        counts = ", ".join(f"{k} {v}" for k, v in sorted((r.get("counts") or {}).items())) or "-"
        where = r["plan"] + (f"/{r['stage']}" if r.get("stage") else "")
        version = f" {r['version']}" if r.get("version") else ""
        events = (" [" + ", ".join(r["events"]) + "]") if r.get("events") else ""
        out.plain(
            f"{r['id']}  {r['started']}  {r['command']}{version}  {where}  {r['actor']}  "
            f"{r['result']} (exit {r['exit_code']}, {r['duration']:.1f}s)  {counts}{events}"
        )
    return 0


@runs_app.command(
    "show",
    short_help="One run in full: counts, changed and failed addresses, policies, events.",
    epilog=epilog(
        "cloudorch runs show plans/quickstart.yaml 20261205T120501.123Z-1a2b3c4d\n"
        "cloudorch runs show plans/quickstart.yaml 20261205T1205 --json   # a unique prefix is enough",
        f"0 shown, 1 no such run, {EXITS}",
    ),
)
def runs_show(
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN_FILE", help="The plan file (YAML).", show_default=False)],
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="A run id (or a unique prefix of one).")],
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    sandbox: SandboxOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Show one run: who ran which command, when, the result, counts, what changed and what failed
    (with the first line of each error), policy results, and the notifications it raised."""
    from cloudorch import api

    out = Output.configure(json_mode=json_)
    opts = options(plan_file, out, stage=None, state_dir=state_dir, backend=backend, var=var,
                   var_file=var_file, sandbox=sandbox, command="runs show")
    doc = api.runs_show(opts, run_id)
    if out.json_mode:
        out.document(doc)
        return 0
    where = doc["plan"] + (f" (stage {doc['stage']})" if doc.get("stage") else "")
    lines = [
        f"run {doc['id']}: {doc['command']} of {where}" + (f", version {doc['version']}" if doc.get("version") else ""),
        f"  by {doc['actor']} on {doc['host']}, {doc['started']} to {doc['ended']} ({doc['duration']:.1f}s)",
        f"  result: {doc['result']} (exit {doc['exit_code']})",
    ]
    if doc.get("error"):
        lines.append(f"  error: {doc['error']}")
    if doc.get("counts"):
        lines.append("  counts: " + ", ".join(f"{k} {v}" for k, v in sorted(doc["counts"].items())))
    lines += [f"  changed: {a}" for a in doc.get("changed", [])]
    lines += [f"  failed: {f['address']}: {f['error']}" for f in doc.get("failed", [])]
    for a, props in sorted((doc.get("drift") or {}).items()):
        lines.append(f"  drifted: {a} ({', '.join(props)})")
    for p in doc.get("policy", []):
        state = "overridden" if p.get("overridden") else ("blocking" if p.get("blocking") else p.get("level"))
        lines.append(f"  policy {p['policy_id']} [{state}] {p.get('address') or ''}: {p.get('message')}")
    for e in doc.get("events", []):
        sent = ", ".join(f"{d['target']} ({d['delivery_id']})" for d in e.get("deliveries", [])) or "no target"
        lines.append(f"  event {e['event']}: {sent}")
    for line in lines:
        out.plain(line)
    return 0
