"""The `fleet` command group: `plan`, `apply`, `drift`, `status` and `graph` over many stacks.

PATHs are plan files, folders (searched for plan files) or `fleet.yaml` files. The work is
`cloudorch.fleet`'s; this module picks the stacks, asks before an apply, shows progress on
stderr, and renders the summary (text, JSON, Markdown for a PR comment, JUnit for dashboards).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.markup import escape

from cloudorch.cli.common import fleet_app
from cloudorch.cli.options import EXITS, AutoApproveOpt, JsonOpt, simple_command
from cloudorch.cli.output import Output, in_ci
from cloudorch.errors import ConfigError

if TYPE_CHECKING:
    from cloudorch.api import Fleet, FleetResult, StackTask

Command = Literal["plan", "apply", "drift"]

PathsArg = Annotated[
    list[Path],
    typer.Argument(help="Plan files, folders searched for plan files, or fleet.yaml files.", show_default=False),
]
StageOpt = Annotated[
    str | None, typer.Option("--stage", metavar="NAME", help="Only the stacks of this release stage.")
]
TagOpt = Annotated[
    list[str] | None, typer.Option("--tag", metavar="TAG", help="Only stacks with this tag (repeatable).")
]
TargetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--target-stack", metavar="NAME", help="Only this stack (glob) and the stacks that read it (repeatable)."
    ),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude-stack", metavar="NAME", help="Leave out this stack (glob) and the stacks that read it (repeatable)."
    ),
]
ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        "--executor",
        metavar="local|dask://HOST:PORT",
        envvar="CLOUDORCH_EXECUTOR",
        help="Where stacks run: a local process pool (default) or a Dask scheduler (needs cloudorch[cluster]).",
        show_default=False,
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", metavar="N", min=1, help="Processes of the local pool (default: one per CPU)."),
]
FormatOpt = Annotated[
    str,
    typer.Option("--format", metavar="text|json|markdown|junit", help="The summary's format on stdout."),
]
OutFileOpt = Annotated[
    Path | None,
    typer.Option("--report", metavar="FILE", help="Also write the summary (in --format) to FILE.", show_default=False),
]
SandboxOpt = Annotated[
    bool, typer.Option("--sandbox", envvar="CLOUDORCH_SANDBOX", help="Run every stack against the local emulators.")
]
FORMATS = ("text", "json", "markdown", "junit")
FLEET_EXITS = f"0 nothing to do, 2 a stack has changes or drift, 3 a policy denied, {EXITS}"


def _select(paths: list[Path], stage: str | None, tag: list[str] | None, target: list[str] | None,
            exclude: list[str] | None) -> Fleet:
    from cloudorch import api

    fleet = api.fleet_discover(paths)
    return api.fleet_select(fleet, stage=stage, tags=tag or (), targets=target or (), excludes=exclude or ())


def _progress(out: Output, total: int) -> Any:
    done = [0]
    icons = {"ok": "[green]ok[/]", "changes": "[yellow]changes[/]", "drifted": "[yellow]drifted[/]",
             "denied": "[red]denied[/]", "failed": "[red]failed[/]", "skipped": "[dim]skipped[/]",
             "interrupted": "[red]interrupted[/]"}

    def on_event(event: str, name: str, result: Any) -> None:
        if event == "started":
            return
        done[0] += 1
        status = icons.get(result.status, result.status)
        extra = f" {escape(result.message)}" if result.message and result.status != "ok" else ""
        out.err.print(f"[{done[0]}/{total}] {escape(name)}: {status} ({result.seconds:.1f}s){extra}")

    return on_event


def _render(out: Output, result: FleetResult, fmt: str, report: Path | None) -> None:
    from cloudorch import api

    if fmt == "json":
        text = None
        out.document(result.to_json())
    elif fmt == "markdown":
        text = api.fleet_markdown(result)
    elif fmt == "junit":
        text = api.fleet_junit(result)
    else:
        text = None
        counts = ", ".join(f"{v} {k}" for k, v in sorted(result.counts().items()))
        for r in result.results:
            changes = ", ".join(f"{v} {k}" for k, v in sorted(r.counts.items()) if v) or "-"
            out.print(f"  {escape(r.name):<32} {r.status:<12} {escape(changes)}")
        out.print(f"\n{len(result.results)} stacks in {result.seconds:.1f}s on {escape(result.executor)}: {counts}")
    if text is not None:
        out.plain(text.rstrip("\n"))
    if report is not None:
        doc = text if text is not None else api.fleet_markdown(result) if fmt == "text" else None
        if fmt == "json":
            import json

            doc = json.dumps(result.to_json(), indent=1)
        report.write_text(doc or "", encoding="utf-8")


def _run(command: Command, paths: list[Path], *, stage: str | None, tag: list[str] | None, target: list[str] | None,
         exclude: list[str] | None, executor: str | None, workers: int | None, fmt: str, report: Path | None,
         sandbox: bool, refresh: bool = True, auto_approve: bool = False) -> int:
    from cloudorch import api
    from cloudorch.cli.signals import SignalInterrupt

    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt}: unknown format", hint="use " + ", ".join(FORMATS))
    out = Output.configure(json_mode=fmt == "json")
    fleet = _select(paths, stage, tag, target, exclude)
    if not fleet.stacks:
        raise ConfigError("no stack matches", hint="check the paths, --stage, --tag and --target-stack")
    if command == "apply" and not auto_approve:
        if in_ci() or not sys.stdin.isatty():
            raise ConfigError(
                "fleet apply asks before it starts, and nobody can answer here",
                hint="review `cloudorch fleet plan` first, then pass --auto-approve",
            )
        out.err.print(f"fleet apply will run {len(fleet.stacks)} stacks, each after the stacks it reads:")
        for s in fleet.stacks:
            out.err.print(f"  {escape(s.name)}")
        if not typer.confirm("Apply them?", default=False, err=True):
            out.err.print("Nothing applied.")
            return 0
    pool = api.fleet_executor(executor, workers=workers)
    template: StackTask = api.StackTask(
        command=command, name="", plan_file=Path("."), sandbox=sandbox, refresh=refresh
    )
    out.err.print(f"cloudorch fleet {command}: {len(fleet.stacks)} stacks on {escape(pool.describe())}")
    intr = SignalInterrupt()
    with intr.armed():
        result = api.fleet_run(
            fleet, command, pool, template=template, on_event=_progress(out, len(fleet.stacks)), interrupt=intr
        )
    _render(out, result, fmt, report)
    return result.exit_code


@simple_command(
    fleet_app,
    "plan",
    summary="Plan every stack.",
    example="cloudorch fleet plan stacks/ --stage prod\ncloudorch fleet plan fleet.yaml --format markdown > comment.md",
    exits=FLEET_EXITS,
)
def fleet_plan(
    paths: PathsArg,
    stage: StageOpt = None,
    tag: TagOpt = None,
    target_stack: TargetOpt = None,
    exclude_stack: ExcludeOpt = None,
    executor: ExecutorOpt = None,
    workers: WorkersOpt = None,
    format_: FormatOpt = "text",
    report: OutFileOpt = None,
    sandbox: SandboxOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Plan every stack of the fleet (each reads the others' outputs from their state): exit 2 on changes."""
    return _run("plan", paths, stage=stage, tag=tag, target=target_stack, exclude=exclude_stack, executor=executor,
                workers=workers, fmt="json" if json_ else format_, report=report, sandbox=sandbox)


@simple_command(
    fleet_app,
    "apply",
    summary="Apply every stack, each after the stacks it reads.",
    example="cloudorch fleet apply stacks/ --stage dev --auto-approve",
    exits=f"0 every stack applied, {FLEET_EXITS}",
)
def fleet_apply(
    paths: PathsArg,
    stage: StageOpt = None,
    tag: TagOpt = None,
    target_stack: TargetOpt = None,
    exclude_stack: ExcludeOpt = None,
    executor: ExecutorOpt = None,
    workers: WorkersOpt = None,
    format_: FormatOpt = "text",
    report: OutFileOpt = None,
    sandbox: SandboxOpt = False,
    auto_approve: AutoApproveOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Apply every stack after the stacks it reads succeeded; a failed stack skips only the stacks that read it."""
    return _run("apply", paths, stage=stage, tag=tag, target=target_stack, exclude=exclude_stack, executor=executor,
                workers=workers, fmt="json" if json_ else format_, report=report, sandbox=sandbox,
                auto_approve=auto_approve)


@simple_command(
    fleet_app,
    "drift",
    summary="Check every stack for drift.",
    example="cloudorch fleet drift fleet.yaml --format junit --report drift.xml",
    exits=f"0 no drift, 2 a stack drifted, 3 a policy blocks a live state, {EXITS}",
)
def fleet_drift(
    paths: PathsArg,
    stage: StageOpt = None,
    tag: TagOpt = None,
    target_stack: TargetOpt = None,
    exclude_stack: ExcludeOpt = None,
    executor: ExecutorOpt = None,
    workers: WorkersOpt = None,
    format_: FormatOpt = "text",
    report: OutFileOpt = None,
    sandbox: SandboxOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Compare the cloud with state and plan for every stack: exit 2 when any drifted."""
    return _run("drift", paths, stage=stage, tag=tag, target=target_stack, exclude=exclude_stack, executor=executor,
                workers=workers, fmt="json" if json_ else format_, report=report, sandbox=sandbox)


@simple_command(
    fleet_app,
    "status",
    summary="Per stack: serial, resources, last write, a waiting run, the version of its stage.",
    example="cloudorch fleet status stacks/",
    exits=f"0 shown, {EXITS}",
)
def fleet_status(
    paths: PathsArg,
    stage: StageOpt = None,
    tag: TagOpt = None,
    json_: JsonOpt = False,
) -> int:
    """What each stack's state holds now; reads only, takes no lock."""
    from cloudorch import api

    out = Output.configure(json_mode=json_)
    fleet = _select(paths, stage, tag, None, None)
    rows = api.fleet_status(fleet)
    if json_:
        out.document({"stacks": [r.to_json() for r in rows]})
        return 0
    for r in rows:
        extra = f" [red]{escape(r.error)}[/]" if r.error else ""
        extra += f" [yellow]waiting: {escape(r.waiting)}[/]" if r.waiting else ""
        version = f" version {escape(str(r.version))}" if r.version else ""
        if r.last_run:
            version += f"  last: {escape(str(r.last_run['command']))} {escape(str(r.last_run['result']))}"
        if r.drift:
            version += f"  drift: {r.drift}"
        out.print(
            f"  {escape(r.name):<32} serial {r.serial if r.serial is not None else '-':<5} "
            f"{r.resources if r.resources is not None else '-':>5} resources  {r.written_at or '-'}{version}{extra}"
        )
    return 0


@simple_command(
    fleet_app,
    "graph",
    summary="The stacks and who reads whom, as DOT, Mermaid or JSON.",
    example="cloudorch fleet graph stacks/ --format mermaid",
    exits=f"0 shown, {EXITS}",
)
def fleet_graph(
    paths: PathsArg,
    format_: Annotated[str, typer.Option("--format", metavar="dot|mermaid|json")] = "dot",
    stage: StageOpt = None,
    tag: TagOpt = None,
) -> int:
    """Print the fleet's graph: an edge from a stack to each stack that reads its outputs."""
    from cloudorch import api

    fleet = _select(paths, stage, tag, None, None)
    if format_ == "json":
        out = Output.configure(json_mode=True)
        ups = {s.name: sorted(api.fleet_edges(fleet).get(s.name, ())) for s in fleet.stacks}
        out.document({"stacks": [{"name": s.name, "plan_file": str(s.plan_file), "stage": s.stage,
                                  "reads": ups[s.name]} for s in fleet.stacks]})
        return 0
    if format_ not in ("dot", "mermaid"):
        raise ConfigError(f"--format {format_}: unknown format", hint="use dot, mermaid or json")
    Output.configure().plain(api.fleet_graph(fleet, format_).rstrip("\n"))
    return 0
