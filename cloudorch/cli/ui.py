"""`cloudorch ui`: serve the read-only web view of the stacks PATHs name (`cloudorch.ui`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cloudorch.cli.common import app
from cloudorch.cli.options import EXITS, simple_command
from cloudorch.cli.output import Output
from cloudorch.errors import ConfigError


@simple_command(
    app,
    "ui",
    summary="A read-only web view of stacks, releases, state history and graphs.",
    example="cloudorch ui stacks/ --open\n"
    "CLOUDORCH_UI_TOKEN=$(openssl rand -hex 16) cloudorch ui fleet.yaml --host 0.0.0.0",
    exits=f"0 stopped with Ctrl-C, {EXITS}",
)
def ui(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Plan files, folders or fleet.yaml files (default: this folder).", show_default=False),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; anything but loopback needs --token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8787,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="CLOUDORCH_UI_TOKEN", help="Bearer token every request must carry.",
                     show_default=False),
    ] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open the page in a browser.")] = False,
) -> int:
    """Serve a read-only view: overview, release pipelines, stacks with their history, graphs, live applies."""
    from cloudorch import api

    out = Output.configure()
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise ConfigError("cloudorch ui needs its optional extra", hint="pip install 'cloudorch[ui]'") from None

    def ready(url: str) -> None:
        shown = url if not token else f"{url}login?token=..."
        out.err.print(f"cloudorch ui: serving on {escape(shown)} (Ctrl-C stops it)")
        if token:
            out.err.print("  requests need the token: `Authorization: Bearer TOKEN`, or open /login?token=TOKEN once")
        if open_:
            import webbrowser

            webbrowser.open(url)

    api.ui_serve(paths or [Path(".")], host=host, port=port, token=token, on_ready=ready)
    return 0
