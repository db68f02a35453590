"""Flags declared once: the options every command that reads a plan file shares, and `plan_command`,
the decorator that adds them to a command and hands it a built `RunOptions` and its `Output`.

A command asks for groups of flags by name (`uses="vars state lock scope policy json"`); its own
flags stay in its signature. Help text teaches: metavars name what to type (`NAME=VALUE`, `FILE`),
repeatable options say so, and every command ends its help with an example and its exit codes.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.markup import escape

from cloudorch.cli.output import Output
from cloudorch.errors import ConfigError

if TYPE_CHECKING:
    from cloudorch.api import RunOptions

F = TypeVar("F", bound=Callable[..., int])

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (for pipelines).")]
AutoApproveOpt = Annotated[bool, typer.Option("--auto-approve", help="Apply without asking (for CI).")]

#: the exit codes every command shares; a command's epilog adds its own before these
EXITS = "1 error, 4 state locked, 130 interrupted"


def epilog(example: str, exits: str) -> str:
    """The end of a command's help: an example to copy and what its exit codes mean, one per line."""
    lines = "\n".join(f"  {line}" for line in example.strip().splitlines())
    seen: dict[str, str] = {}
    for code in re.split(r",\s+(?=\d)", exits):
        seen.setdefault(code.split(" ", 1)[0], code)  # a command's own meaning of a code wins over EXITS
    codes = "\n".join(f"  {code}" for code in seen.values())
    return f"\b\nExample:\n{lines}\n\n\b\nExit codes:\n{codes}"


StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        metavar="DIR",
        envvar="CLOUDORCH_STATE_DIR",
        help="Where local state lives (default: .cloudorch/ next to the plan).",
        show_default=False,
    ),
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        metavar="URL",
        envvar="CLOUDORCH_BACKEND",
        help="Where state lives: s3://bucket/prefix, gs://bucket/prefix, azblob://account/container/prefix"
        " or file://path (default: the plan's backend block, else local .cloudorch/).",
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
StageOpt = Annotated[
    str | None,
    typer.Option(
        "--stage",
        metavar="NAME",
        envvar="CLOUDORCH_STAGE",
        help="The release stage to work on (plans with stages).",
        show_default=False,
    ),
]


@dataclass(frozen=True)
class Flag:
    name: str
    annotation: Any
    default: Any


def _flag(name: str, annotation: Any, default: Any = None) -> Flag:
    return Flag(name, annotation, default)


GROUPS: dict[str, list[Flag]] = {
    "vars": [
        _flag(
            "var",
            Annotated[
                list[str] | None,
                typer.Option("--var", metavar="NAME=VALUE", help="Set a variable. Repeatable.", show_default=False),
            ],
        ),
        _flag(
            "var_file",
            Annotated[
                list[Path] | None,
                typer.Option(
                    "--var-file", metavar="FILE", help="YAML or JSON file of variable values. Repeatable.",
                    show_default=False,
                ),
            ],
        ),
    ],
    "state": [_flag("state_dir", StateDirOpt), _flag("backend", BackendOpt)],
    "sandbox": [_flag("sandbox", SandboxOpt, False)],
    "stage": [_flag("stage", StageOpt)],
    "lock": [
        _flag(
            "lock_timeout",
            Annotated[
                float,
                typer.Option(
                    "--lock-timeout",
                    metavar="SECONDS",
                    envvar="CLOUDORCH_LOCK_TIMEOUT",
                    help="Seconds to wait for the state lock before failing with exit 4.",
                ),
            ],
            0.0,
        ),
    ],
    "parallelism": [
        _flag(
            "parallelism",
            Annotated[
                int,
                typer.Option(
                    "--parallelism",
                    metavar="N",
                    min=1,
                    envvar="CLOUDORCH_PARALLELISM",
                    help="Most operations at once (providers have their own limits too).",
                ),
            ],
            256,
        ),
    ],
    "refresh": [
        _flag(
            "refresh",
            Annotated[
                str,
                typer.Option(
                    "--refresh",
                    metavar="true|false",
                    envvar="CLOUDORCH_REFRESH",
                    help="--refresh=false plans from state without reading the cloud.",
                ),
            ],
            "true",
        ),
    ],
    "target": [
        _flag(
            "target",
            Annotated[
                list[str] | None,
                typer.Option(
                    "--target",
                    metavar="ADDRESS",
                    help="Only this address and what it depends on. Repeatable.",
                    show_default=False,
                ),
            ],
        ),
    ],
    "exclude": [
        _flag(
            "exclude",
            Annotated[
                list[str] | None,
                typer.Option(
                    "--exclude",
                    metavar="ADDRESS",
                    help="Leave out this address and what depends on it; `*` matches any characters "
                    "(`web_*`, `logs[*]`). Repeatable.",
                    show_default=False,
                ),
            ],
        ),
    ],
    "replace": [
        _flag(
            "replace",
            Annotated[
                list[str] | None,
                typer.Option(
                    "--replace", metavar="ADDRESS", help="Force replacement of this address. Repeatable.",
                    show_default=False,
                ),
            ],
        ),
    ],
    "policy": [
        _flag(
            "policy",
            Annotated[
                list[Path] | None,
                typer.Option(
                    "--policy",
                    metavar="PATH",
                    help="More policies: a .rego or YAML rule file or folder. Repeatable.",
                    show_default=False,
                ),
            ],
        ),
        _flag(
            "override",
            Annotated[
                list[str] | None,
                typer.Option(
                    "--override",
                    metavar="POLICY_ID",
                    help="Override a mandatory policy by id (needs --reason; recorded in state). Repeatable.",
                    show_default=False,
                ),
            ],
        ),
        _flag(
            "reason",
            Annotated[
                str | None,
                typer.Option("--reason", metavar="TEXT", help="Why the --override is justified.", show_default=False),
            ],
        ),
        _flag(
            "policy_report",
            Annotated[
                list[str] | None,
                typer.Option(
                    "--policy-report",
                    metavar="FORMAT=FILE",
                    help="Write policy results to FILE as json, sarif, junit or markdown. Repeatable.",
                    show_default=False,
                ),
            ],
        ),
    ],
    "on_failure": [
        _flag(
            "on_failure",
            Annotated[
                str,
                typer.Option(
                    "--on-failure",
                    metavar="stop|continue|rollback",
                    envvar="CLOUDORCH_ON_FAILURE",
                    help="When an operation fails: stop (default; start nothing new, let running operations finish, "
                    "skip dependents), continue (keep starting independent work; only dependents are skipped) or "
                    "rollback (like stop, then undo every operation this apply finished, in reverse dependency "
                    "order; exit 1).",
                ),
            ],
            "stop",
        ),
    ],
    "json": [_flag("json_", JsonOpt, False)],
    "notify": [
        _flag(
            "notify",
            Annotated[
                list[str] | None,
                typer.Option(
                    "--notify",
                    metavar="URL",
                    help="Also send every event of this run to URL (https webhook or apprise URL; "
                    "CLOUDORCH_NOTIFY adds more, space-separated). Repeatable.",
                    show_default=False,
                ),
            ],
        ),
    ],
    "ci": [
        _flag(
            "ci_host",
            Annotated[
                str | None,
                typer.Option(
                    "--ci-host",
                    metavar="github|gitlab|azure|none|auto",
                    envvar="CLOUDORCH_CI_HOST",
                    help="Annotate errors and policy findings for this CI host (default auto: detected from "
                    "GITHUB_ACTIONS, GITLAB_CI, TF_BUILD; none: never).",
                    show_default=False,
                ),
            ],
        ),
    ],
}


def plan_argument(help_text: str = "The plan file (YAML).") -> Flag:
    return _flag(
        "plan_file",
        Annotated[Path, typer.Argument(metavar="PLAN_FILE", help=help_text, show_default=False)],
        inspect.Parameter.empty,
    )


def parse_vars(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--var {item!r}: expected NAME=VALUE", hint="e.g. --var version=1.4.2")
        out[name.strip()] = value
    return out


def parse_bool(flag: str, text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{flag}={text}: expected true or false")


def policy_options(
    policy: list[Path] | None, override: list[str] | None, reason: str | None, report: list[str] | None
) -> dict[str, Any]:
    if override and not (reason and reason.strip()):
        raise ConfigError("--override needs --reason", hint='e.g. --override no-public --reason "INC-123: hotfix"')
    reports: list[tuple[str, str]] = []
    if report:
        from cloudorch.api import parse_report_target

        reports = [parse_report_target(r) for r in report]
    return {
        "policy_paths": list(policy or []),
        "overrides": {o: str(reason) for o in override or []},
        "policy_reports": reports,
    }


def build_options(values: dict[str, Any], *, command: str, out: Output) -> RunOptions:
    """The `RunOptions` of a command from the shared flags it declared (missing groups keep defaults)."""
    from cloudorch.api import RunOptions

    if values.get("sandbox"):
        out.mark_sandbox()
    kw: dict[str, Any] = {}
    for name, key in (("state_dir", "state_dir"), ("backend", "backend_url"), ("stage", "stage"),
                      ("sandbox", "sandbox"), ("lock_timeout", "lock_timeout"), ("parallelism", "parallelism"),
                      ("on_failure", "on_failure")):
        if name in values:
            kw[key] = values[name]
    if "refresh" in values:
        kw["refresh"] = parse_bool("--refresh", values["refresh"])
    for name, key in (("target", "targets"), ("exclude", "excludes"), ("replace", "replace")):
        if name in values:
            kw[key] = list(values[name] or [])
    if "notify" in values:
        kw["notify_urls"] = list(values["notify"] or [])
    if "policy" in values:
        kw.update(policy_options(values["policy"], values["override"], values["reason"], values["policy_report"]))
    return RunOptions(
        plan_file=values["plan_file"],
        notify=lambda text: out.err.print(f"[yellow]{escape(text)}[/]"),
        vars=parse_vars(values.get("var")),
        var_files=list(values.get("var_file") or []),
        command="cloudorch " + command,
        **kw,
    )


def plan_command(
    parent: typer.Typer,
    name: str,
    *,
    uses: str,
    summary: str,
    example: str,
    exits: str,
    command: str | None = None,
    plan_help: str = "The plan file (YAML).",
) -> Callable[[F], F]:
    """Register `fn(opts, out, **own_flags) -> int` as command `name` with the flag groups in `uses`.

    `command` is how the lock and the journal name it (default: `name`); `summary` is the
    one line `--help` of the parent lists, written to fit whole.
    """
    flags = [plan_argument(plan_help)] + [f for group in uses.split() for f in GROUPS[group]] + GROUPS["ci"]
    shared = {f.name for f in flags}

    def register(fn: F) -> F:
        # `opts` and `out` are the decorator's; their names need not resolve (RunOptions is imported lazily)
        hints = typing.get_type_hints(fn, localns={"RunOptions": object, "Output": Output}, include_extras=True)
        own = [
            p.replace(annotation=hints[p.name], kind=inspect.Parameter.KEYWORD_ONLY)
            for p in inspect.signature(fn).parameters.values()
            if p.name not in ("opts", "out")
        ]
        params = [inspect.Parameter("plan_file", inspect.Parameter.KEYWORD_ONLY, annotation=flags[0].annotation)]
        params += own
        params += [
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=f.annotation, default=f.default)
            for f in flags[1:]
        ]

        def run(**values: Any) -> int:
            from cloudorch.cli import cihost

            common = {k: values.pop(k) for k in list(values) if k in shared}
            cihost.configure(common.pop("ci_host", None))
            out = Output.configure(json_mode=bool(common.get("json_", False)))
            with cihost.policy_annotations(common):
                opts = build_options(common, command=command or name, out=out)
                return fn(opts, out, **values)

        run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        run.__name__ = fn.__name__
        run.__doc__ = fn.__doc__
        parent.command(name, short_help=summary, epilog=epilog(example, exits))(run)
        return fn

    return register


def simple_command(
    parent: typer.Typer, name: str, *, summary: str, example: str, exits: str
) -> Callable[[F], F]:
    """Register a command that reads no plan file, with the same summary, example and exit codes."""

    def register(fn: F) -> F:
        parent.command(name, short_help=summary, epilog=epilog(example, exits))(fn)
        return fn

    return register
