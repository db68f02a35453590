"""What every command module shares: the typer apps, the common options, and the apply flow.

Command modules (`app.py`, `drift_cmds.py`, `release_cmds.py`, ...) import from here and
register their commands on these apps. Keep it light: `--help` imports it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from cloudorch.cli.output import Output
from cloudorch.errors import CloudorchError, ConfigError, ExitCode

if TYPE_CHECKING:
    from cloudorch.api import RunOptions

HELP = """\
cloudorch provisions AWS, Azure and Google Cloud resources and promotes releases through
stages, from one YAML plan file.

\b
  cloudorch validate plans/quickstart.yaml     check a plan file
  cloudorch plan plans/quickstart.yaml         show what would change
  cloudorch apply plans/quickstart.yaml        make it so (asks first; --auto-approve in CI)
  cloudorch destroy plans/quickstart.yaml      remove everything the plan made

\b
Exit codes: 0 ok / no changes, 1 error, 2 changes or drift present (plan --detailed-exitcode, drift),
3 denied by policy or a release gate, 4 state locked, 130 interrupted. Every command takes --json.

\b
Environment (a flag on the command line wins):
  CLOUDORCH_PARALLELISM=N      --parallelism        CLOUDORCH_LOCK_TIMEOUT=S   --lock-timeout
  CLOUDORCH_STATE_DIR=DIR      --state-dir          CLOUDORCH_BACKEND=URL      --backend
  CLOUDORCH_STAGE=NAME         --stage              CLOUDORCH_SANDBOX=1        --sandbox
  CLOUDORCH_ON_FAILURE=MODE    --on-failure         CLOUDORCH_NO_COLOR=1       --no-color
  CLOUDORCH_REFRESH=false      --refresh=false      CLOUDORCH_DEBUG=1          tracebacks for bugs
  CLOUDORCH_PLAN_FORMAT=FMT    plan --format        CLOUDORCH_SANDBOX_DIR=DIR  where the sandbox lives
  CLOUDORCH_ACTOR=NAME         who approves/overrides (else the CI user, else the OS user)
  CI=true: never prompt (apply needs --auto-approve), no live progress, no colour unless
  FORCE_COLOR is set. NO_COLOR is honoured too.

\b
Try it with no cloud account: cloudorch sandbox up, then --sandbox on plan/apply/destroy.
"""

app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    add_completion=True,  # measured: +3 ms on `cloudorch --help` (bench/ci_bench.py)
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
state_app = typer.Typer(help="Inspect and edit state: list, show, rm, mv, import, history.", no_args_is_help=True)
app.add_typer(state_app, name="state")
policy_app = typer.Typer(help="Check a plan against its policies, or run Rego unit tests.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")


@app.callback()
def _global(
    no_color: Annotated[
        bool, typer.Option("--no-color", envvar="CLOUDORCH_NO_COLOR", help="Plain text without colors.")
    ] = False,
) -> None:
    Output.configure(color=not no_color, sandbox=False)


# --------------------------------------------------------------------------- shared options

PlanArg = Annotated[Path, typer.Argument(help="The plan file (YAML).", show_default=False)]
VarOpt = Annotated[
    list[str] | None,
    typer.Option("--var", help="Set a variable: --var name=value (repeatable).", show_default=False),
]
VarFileOpt = Annotated[
    list[Path] | None, typer.Option("--var-file", help="YAML or JSON file of variable values (repeatable).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (for pipelines).")]
StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="CLOUDORCH_STATE_DIR",
        help="Where local state lives (default: .cloudorch/ next to the plan).",
    ),
]
LockTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--lock-timeout",
        envvar="CLOUDORCH_LOCK_TIMEOUT",
        help="Seconds to wait for the state lock before failing with exit 4.",
    ),
]
ParallelismOpt = Annotated[
    int,
    typer.Option(
        "--parallelism",
        min=1,
        envvar="CLOUDORCH_PARALLELISM",
        help="Most operations at once (providers have their own limits too).",
    ),
]
RefreshOpt = Annotated[
    str,
    typer.Option(
        "--refresh", envvar="CLOUDORCH_REFRESH", help="--refresh=false plans from state without reading the cloud."
    ),
]
TargetOpt = Annotated[
    list[str] | None, typer.Option("--target", help="Only this address and what it depends on (repeatable).")
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option("--exclude", help="Leave out this address and what depends on it (repeatable)."),
]
ReplaceOpt = Annotated[list[str] | None, typer.Option("--replace", help="Force replacement of this address.")]
AutoApproveOpt = Annotated[bool, typer.Option("--auto-approve", help="Apply without asking (for CI).")]
PolicyOpt = Annotated[
    list[Path] | None, typer.Option("--policy", help="More policies: a .rego or YAML rule file or folder (repeatable).")
]
OverrideOpt = Annotated[
    list[str] | None,
    typer.Option("--override", help="Override a mandatory policy by id (needs --reason; recorded in state)."),
]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why the --override is justified.")]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        envvar="CLOUDORCH_BACKEND",
        help="Where state lives: s3://bucket/prefix, gs://bucket/prefix, azblob://account/container/prefix "
        "or file://path (default: the plan's backend block, else local .cloudorch/).",
        show_default=False,
    ),
]
StageOpt = Annotated[
    str | None,
    typer.Option(
        "--stage",
        envvar="CLOUDORCH_STAGE",
        help="The release stage to work on (plans with stages).",
        show_default=False,
    ),
]
SandboxOpt = Annotated[
    bool,
    typer.Option(
        "--sandbox",
        envvar="CLOUDORCH_SANDBOX",
        help="Run against local cloud emulators (started if needed), with state kept apart from real state.",
    ),
]
OnFailureOpt = Annotated[
    str,
    typer.Option(
        "--on-failure",
        envvar="CLOUDORCH_ON_FAILURE",
        help="When an operation fails: stop (default; start nothing new, let running operations finish, skip "
        "dependents), continue (keep starting independent work; only dependents are skipped) or rollback "
        "(like stop, then undo every operation this apply finished, in reverse dependency order; exit 1).",
    ),
]
PolicyReportOpt = Annotated[
    list[str] | None,
    typer.Option("--policy-report", help="Write policy results to FORMAT=FILE (json, sarif, junit, markdown)."),
]


def _policy_kw(
    policy: list[Path] | None, override: list[str] | None, reason: str | None, report: list[str] | None
) -> dict[str, Any]:
    if override and not (reason and reason.strip()):
        raise ConfigError("--override needs --reason", hint='e.g. --override no-public --reason "INC-123: hotfix"')
    reports: list[tuple[str, str]] = []
    if report:
        from cloudorch.policy import parse_report_target

        reports = [parse_report_target(r) for r in report]
    return {
        "policy_paths": list(policy or []),
        "overrides": {o: str(reason) for o in override or []},
        "policy_reports": reports,
    }


def _vars(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--var {item!r}: expected NAME=VALUE", hint="e.g. --var version=1.4.2")
        out[name.strip()] = value
    return out


def _bool(flag: str, text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{flag}={text}: expected true or false")


def _options(
    plan_file: Path,
    *,
    var: list[str] | None = None,
    var_file: list[Path] | None = None,
    state_dir: Path | None = None,
    backend: str | None = None,
    stage: str | None = None,
    sandbox: bool = False,
    command: str,
    **kw: Any,
) -> RunOptions:
    from cloudorch.api import RunOptions

    out = Output.current()
    if sandbox:
        out.mark_sandbox()
    return RunOptions(
        plan_file=plan_file,
        notify=lambda text: out.err.print(f"[yellow]{escape(text)}[/]"),
        vars=_vars(var),
        var_files=list(var_file or []),
        state_dir=state_dir,
        backend_url=backend,
        stage=stage,
        sandbox=sandbox,
        command="cloudorch " + command,
        **kw,
    )


def _out(json_mode: bool) -> Output:
    return Output.configure(json_mode=json_mode)


def _plan_opts(
    plan_file: Path,
    *,
    command: str,
    var: list[str] | None,
    var_file: list[Path] | None,
    state_dir: Path | None,
    backend: str | None = None,
    stage: str | None = None,
    sandbox: bool = False,
    lock_timeout: float,
    parallelism: int,
    refresh: str,
    target: list[str] | None,
    exclude: list[str] | None,
    replace: list[str] | None,
    destroy: bool,
    policy: dict[str, Any] | None = None,
    on_failure: str = "stop",
) -> RunOptions:
    return _options(
        plan_file,
        var=var,
        var_file=var_file,
        state_dir=state_dir,
        backend=backend,
        stage=stage,
        sandbox=sandbox,
        command=command,
        lock_timeout=lock_timeout,
        parallelism=parallelism,
        refresh=_bool("--refresh", refresh),
        targets=list(target or []),
        excludes=list(exclude or []),
        replace=list(replace or []),
        destroy=destroy,
        on_failure=on_failure,
        **(policy or {}),
    )


def _render_policy(out: Output, cs: Any) -> None:
    if not cs.policy_results:
        return
    from cloudorch.policy import PolicyReport

    out.print()
    out.plain(PolicyReport.from_results(cs.policy_results).to_text())


def _ask(out: Output, verb: str) -> bool:
    """Ask on the terminal; with no terminal refuse rather than hang (CI passes --auto-approve)."""
    from cloudorch.cli.output import in_ci

    if not sys.stdin.isatty() or in_ci():
        raise CloudorchError(
            f"{verb} needs confirmation, but there is no terminal to ask on"
            + (" (CI=true never prompts)" if in_ci() else ""),
            hint="review the plan, then run again with --auto-approve (or apply a saved plan file)",
        )
    out.err.print(f"\nDo you want to {verb}? Only 'yes' will be accepted.")
    return out.err.input("  Enter a value: ").strip() == "yes"


class ApplyUi:
    """The terminal half of every command that applies: show the changes, ask, show progress, show
    the result. Commands hand `on_plan`, `confirm` and `progress` to the API and build their own JSON."""

    def __init__(
        self,
        out: Output,
        json_: bool,
        auto_approve: bool,
        verb: str,
        *,
        show_policy: bool = True,
        gap_before_plan: bool = False,
    ) -> None:
        from cloudorch.cli.render import ProgressObserver

        self.out, self.json_, self.auto_approve, self.verb = out, json_, auto_approve, verb
        self.show_policy, self.gap_before_plan = show_policy, gap_before_plan
        self.progress = ProgressObserver(out, 0)

    def on_plan(self, cs: Any) -> None:
        from cloudorch.cli.render import render_changeset

        self.progress.total = sum(1 for c in cs.changes if c.is_change)
        if self.json_:
            return
        if self.gap_before_plan:
            self.out.print()
        render_changeset(self.out, cs)
        if self.show_policy:
            _render_policy(self.out, cs)

    def confirm(self, cs: Any) -> bool:
        if not cs.has_changes or self.auto_approve or _ask(self.out, self.verb):
            return True
        self.out.print("Cancelled: nothing was changed.")
        return False

    def show_result(self, result: Any, *, outputs: bool = True) -> None:
        """What the apply did (human output only), then the outputs state now records."""
        from cloudorch.cli.render import render_outputs, render_result

        if self.json_:
            return
        if result.changeset.has_changes:
            self.out.print()
            render_result(self.out, result)
        if outputs:
            render_outputs(self.out, result.state.outputs)


def _run_apply(
    opts: RunOptions, out: Output, json_: bool, auto_approve: bool, saved_path: Path | None, verb: str
) -> int:
    from cloudorch import api
    from cloudorch.changes import ChangeSet
    from cloudorch.cli.render import changeset_json, result_json
    from cloudorch.cli.signals import SignalInterrupt

    saved = ChangeSet.load(saved_path) if saved_path is not None else None
    # a saved plan was reviewed when it was saved; applying it is the confirmation
    ui = ApplyUi(out, json_, auto_approve or saved is not None, verb)
    with ui.progress:
        result = api.apply(
            opts,
            saved=saved,
            confirm=ui.confirm,
            observer=ui.progress,
            on_plan=ui.on_plan,
            interrupt=SignalInterrupt(),
            warn_gates=not opts.destroy,
        )
    if result is None:
        if json_:
            out.document({"applied": False, "reason": "declined"})
        return 1
    if json_:
        out.document(
            {
                "applied": True,
                "changeset": changeset_json(result.changeset),
                "result": result_json(result),
                "outputs": {
                    k: (None if v.get("sensitive") else v.get("value")) for k, v in result.state.outputs.items()
                },
            }
        )
    elif result.repair is not None:
        out.print(f"\n{escape(result.repair['message'])}")
    ui.show_result(result)
    if result.denied is not None:
        raise result.denied
    return 0 if result.ok else int(ExitCode.ERROR)
