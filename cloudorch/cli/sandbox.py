"""The `sandbox` command group: local emulators to try plans with no cloud account.

`up` starts moto, fake-gcs-server, the Google REST test server, Azurite and a small ARM server
as detached processes and records them under `.cloudorch/sandbox/`; `status` checks them; `env`
prints the variables that point the SDKs at them; `down` stops exactly the recorded processes.
The work is `cloudorch.sandbox`'s.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.markup import escape

from cloudorch.cli.common import sandbox_app
from cloudorch.cli.options import JsonOpt, simple_command
from cloudorch.cli.output import Output
from cloudorch.errors import ExitCode

if TYPE_CHECKING:
    from cloudorch.api import Sandbox


def _out(json_: bool) -> Output:
    return Output.configure(json_mode=json_)


def _notify(out: Output) -> Callable[[str], None]:
    return lambda text: out.err.print(f"[yellow]{escape(text)}[/]")


def _show(out: Output, box: Sandbox) -> None:
    from cloudorch import api

    doc = api.sandbox_json(box)
    servers = cast("list[dict[str, Any]]", doc["servers"])
    skipped = cast("dict[str, str]", doc["skipped"])
    for s in servers:
        health = "[green]healthy[/]" if s["healthy"] else ("[yellow]not answering[/]" if s["alive"] else "[red]gone[/]")
        out.print(f"  {s['name']:<16} {s['cloud']:<6} pid {s['pid']:<8} {escape(s['url']):<40} {health}")
    for name, why in sorted(skipped.items()):
        out.print(f"  {name:<16} [yellow]not started[/]: {escape(why)}")


@simple_command(
    sandbox_app,
    "up",
    summary="Start the emulators on free local ports.",
    example="cloudorch sandbox up && cloudorch apply plans/multi-cloud.yaml --sandbox --auto-approve",
    exits="0 running, 1 an emulator could not start",
)
def sandbox_up(json_: JsonOpt = False) -> int:
    """Start the emulators (if they are not running) on free 127.0.0.1 ports."""
    from cloudorch import api

    out = _out(json_)
    box, started = api.sandbox_up(notify=_notify(out))
    if json_:
        out.document({**api.sandbox_json(box), "started": started})
        return 0
    out.print(("Started" if started else "Already running:") + f" the sandbox in {escape(str(box.directory))}")
    _show(out, box)
    out.print(
        "\nTry: cloudorch apply plans/multi-cloud.yaml --sandbox --auto-approve"
        '\nSDK variables: eval "$(cloudorch sandbox env)"; stop with: cloudorch sandbox down'
    )
    return 0


@simple_command(
    sandbox_app,
    "status",
    summary="List the emulators and their health.",
    example="cloudorch sandbox status --json",
    exits="0 every emulator is healthy, 1 one is not, or the sandbox is not running",
)
def sandbox_status(json_: JsonOpt = False) -> int:
    """List the recorded emulators with pid, port and health. Exit 1 when one is not healthy, or when
    the sandbox is not running (so `cloudorch sandbox status && ...` means "the sandbox is usable")."""
    from cloudorch import api

    out = _out(json_)
    box = api.sandbox_status()
    if box is None:
        if json_:
            out.document({"running": False, "servers": [], "skipped": {}})
        else:
            out.print("The sandbox is not running. Start it with: cloudorch sandbox up")
        return int(ExitCode.ERROR)
    if json_:
        out.document(api.sandbox_json(box))
    else:
        out.print(f"Sandbox in {escape(str(box.directory))}:")
        _show(out, box)
    return 0 if box.healthy else int(ExitCode.ERROR)


@simple_command(
    sandbox_app,
    "env",
    summary="Print the variables that point the SDKs at the emulators.",
    example='eval "$(cloudorch sandbox env)"',
    exits="0 printed, 1 the sandbox is not running",
)
def sandbox_env(
    shell: Annotated[str, typer.Option("--shell", metavar="sh|fish", help="sh (export lines) or fish.")] = "sh",
    json_: JsonOpt = False,
) -> int:
    """Print the variables that point the cloud SDKs at the sandbox: eval "$(cloudorch sandbox env)"."""
    from cloudorch import api
    from cloudorch.errors import ConfigError

    out = _out(json_)
    box = api.sandbox_status()
    if box is None:
        raise ConfigError("the sandbox is not running", hint="start it with: cloudorch sandbox up")
    env = api.sandbox_env(box)
    if json_:
        out.document({"env": env})
        return 0
    for k, v in env.items():
        line = f"set -gx {k} {shlex.quote(v)};" if shell == "fish" else f"export {k}={shlex.quote(v)}"
        out.plain(line)
    return 0


@simple_command(
    sandbox_app,
    "down",
    summary="Stop the emulators `up` started.",
    example="cloudorch sandbox down",
    exits="0 stopped (or nothing was running)",
)
def sandbox_down(json_: JsonOpt = False) -> int:
    """Stop the emulators `up` started: a recorded pid is signalled only while it is the same process
    (start time, boot, command line) running the command cloudorch builds for that emulator."""
    from cloudorch import api

    out = _out(json_)
    results = api.sandbox_down()
    stopped = [r.emulator for r in results if r.stopped]
    left = [r for r in results if not r.stopped]
    if json_:
        out.document(
            {
                "stopped": [{"name": e.name, "pid": e.pid} for e in stopped],
                "not_stopped": [{"name": r.emulator.name, "pid": r.emulator.pid, "reason": r.reason} for r in left],
            }
        )
        return 0
    if stopped:
        out.print("Stopped: " + ", ".join(f"{escape(e.name)} (pid {e.pid})" for e in stopped))
    for r in left:
        out.print(f"Not stopped: {escape(r.emulator.name)} (pid {r.emulator.pid}): {escape(r.reason)}")
    if not results:
        out.print("Nothing to stop: the sandbox is not running.")
    return 0
