"""A real Chromium (Debian's, driven by Playwright) against `cloudorch ui` served by uvicorn in a
thread. The README's test command installs Chromium; a missing browser fails these tests."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic",
]


def chromium_path() -> str:
    found = os.environ.get("CLOUDORCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Chromium is not installed: run the README's test command (scripts/test.sh installs it)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Served:
    def __init__(self, paths: list[Path], token: str | None = None, host: str = "127.0.0.1") -> None:
        import uvicorn

        from cloudorch import api

        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self.app = api.ui_app(paths, token=token, refresh_every=0.5)
        self.app.state.catalog.start()
        self.server = uvicorn.Server(uvicorn.Config(self.app, host=host, port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.app.state.catalog.stop()


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(paths: list[Path], **kw: Any) -> Served:
        s = Served(paths, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    """A fresh page that fails the test on any dialog (an `alert` from injected script)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    p = context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []

    def on_dialog(d: Any) -> None:
        dialogs.append(d.message)
        d.dismiss()

    p.on("dialog", on_dialog)
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.dialogs = dialogs  # type: ignore[attr-defined]
    p.console_errors = errors  # type: ignore[attr-defined]
    p.shots = tmp_path / "screenshots"  # type: ignore[attr-defined]
    p.shots.mkdir()  # type: ignore[attr-defined]
    yield p
    context.close()
    assert dialogs == [], f"a dialog fired: {dialogs}"
