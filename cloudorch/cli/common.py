"""What every command module shares: the typer apps, asking, "render, then deny", and the apply flow.

Command modules (one per noun: `apply.py`, `state.py`, `release.py`, ...) register their commands
on these apps; `app.py` imports them all. The shared flags are in `options.py`. Keep it light:
`--help` imports it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cloudorch.cli.output import Output, escape
from cloudorch.errors import CloudorchError, ExitCode

if TYPE_CHECKING:
    from cloudorch.api import ApplyObserver, ApplyResult, ChangeSet, RunOptions

#: how `confirmed_apply` runs the operation: (confirm, observer, on_plan) -> result, None if declined
Runner = Callable[
    [Callable[["ChangeSet"], bool], "ApplyObserver", Callable[["ChangeSet"], None]], "ApplyResult | None"
]

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
  CLOUDORCH_CI_HOST=HOST       --ci-host (github, gitlab, azure, none; default: detected)
  CLOUDORCH_ACTOR=NAME         who approves/overrides (else the CI user, else the OS user)
  CI=true: never prompt (apply needs --auto-approve), no live progress, no colour unless
  FORCE_COLOR is set. NO_COLOR is honoured too.

\b
Try it with no cloud account: cloudorch sandbox up, then --sandbox on plan/apply/destroy.
"""

def _plain_argument_help() -> None:
    """Help that names arguments as a user types them: typer 0.2x writes a required argument
    `{PLAN_FILE}` in the usage line and adds its Python type (`<path>`) beside it in the table."""
    import typer.core

    argument: Any = getattr(typer.core, "TyperArgument", None)
    if argument is None or not hasattr(argument, "_usage_display_name") or not hasattr(argument, "display_type_rich"):
        return  # another typer: its own formatting stands
    typed = argument.display_type_rich

    def usage_name(self: Any) -> str:
        name = str(self.display_name_raw)
        return (name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")

    def type_text(self: Any, ctx: Any) -> str | None:
        return None if self.metavar is not None else typed(self, ctx)

    argument._usage_display_name = usage_name
    argument.display_type_rich = type_text


_plain_argument_help()

app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    add_completion=True,  # measured: +3 ms on `cloudorch --help` (bench/ci_bench.py)
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
state_app = typer.Typer(
    help="Inspect and edit state: list, show, rm, mv, import, history, migrate, rekey.", no_args_is_help=True
)
app.add_typer(state_app, name="state", short_help="Inspect, edit, move or re-encrypt state.")
policy_app = typer.Typer(help="Check a plan against its policies, or run Rego unit tests.", no_args_is_help=True)
app.add_typer(policy_app, name="policy", short_help="Check policies on a plan; test Rego policies.")
release_app = typer.Typer(
    help="Release a version through the plan's stages: deploy, promote (through gates), approve, "
    "status, history, rollback, reject.",
    no_args_is_help=True,
)
app.add_typer(release_app, name="release", short_help="Deploy and promote versions through stages.")
sandbox_app = typer.Typer(
    help="Local cloud emulators (AWS, GCS, Azure) for trying plans with no account: up, status, env, down.",
    no_args_is_help=True,
)
app.add_typer(sandbox_app, name="sandbox", short_help="Local cloud emulators to try plans.")
fleet_app = typer.Typer(
    help="Run many stacks as one: plan, apply, drift, status and graph over plan files, folders or a "
    "fleet.yaml, in the order their cross-stack references give, on a local process pool or a Dask cluster.",
    no_args_is_help=True,
)
app.add_typer(fleet_app, name="fleet", short_help="Plan, apply or check drift of many stacks at once.")


@app.callback()
def _global(
    no_color: Annotated[
        bool, typer.Option("--no-color", envvar="CLOUDORCH_NO_COLOR", help="Plain text without colors.")
    ] = False,
) -> None:
    Output.configure(color=not no_color, sandbox=False)


def deny(error: CloudorchError | None) -> None:
    """The one rule for refusals: a command renders its result first, then calls this (exit 3).

    With --json the result is already the document on stdout; the handler in `cli/__init__.py`
    then writes the error beside it, on stderr.
    """
    if error is not None:
        raise error


def render_policy(out: Output, cs: Any) -> None:
    if not cs.policy_results:
        return
    from cloudorch.api import PolicyReport

    out.print()
    out.plain(PolicyReport.from_results(cs.policy_results).to_text())


def ask(out: Output, verb: str) -> bool:
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
            render_policy(self.out, cs)

    def confirm(self, cs: Any) -> bool:
        if not cs.has_changes or self.auto_approve or ask(self.out, self.verb):
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


def run_apply(opts: RunOptions, out: Output, auto_approve: bool, saved_path: Path | None, verb: str) -> int:
    """`apply` and `destroy`: show the changes, ask, apply with progress, show the result, then deny."""
    from cloudorch import api
    from cloudorch.api import ChangeSet
    from cloudorch.cli.render import changeset_json, result_json
    from cloudorch.cli.signals import SignalInterrupt

    json_ = out.json_mode
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
    deny(result.denied)
    return 0 if result.ok else int(ExitCode.ERROR)


def confirmed_apply(
    out: Output, auto_approve: bool, verb: str, run: Runner
) -> tuple[dict[str, Any], CloudorchError | None]:
    """Show the plan, ask (unless --auto-approve), apply: the outcome as a JSON-able dict, and the
    denial to raise once the caller has rendered it."""
    from cloudorch.cli.render import changeset_json, result_json

    ui = ApplyUi(out, out.json_mode, auto_approve, verb)
    with ui.progress:
        result = run(ui.confirm, ui.progress, ui.on_plan)
    if result is None:
        return {"applied": False, "reason": "declined", "exit": int(ExitCode.ERROR)}, None
    ui.show_result(result)
    doc = {
        "applied": result.changeset.has_changes,
        "changeset": changeset_json(result.changeset),
        "result": result_json(result),
        "exit": 0 if result.ok else int(ExitCode.ERROR),
    }
    return doc, result.denied
