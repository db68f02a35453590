"""A real webhook receiver on 127.0.0.1 (http.server in a thread) and the CLI run in process."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cloudorch.notify.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER

FIXTURES = Path(__file__).parent.parent / "fixtures"
SECRET = "test-hook-secret"


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def doc(self) -> Any:
        return json.loads(self.body)

    @property
    def event(self) -> str | None:
        return self.headers.get(EVENT_HEADER)

    @property
    def delivery(self) -> str | None:
        return self.headers.get(DELIVERY_HEADER)

    @property
    def signature(self) -> str | None:
        return self.headers.get(SIGNATURE_HEADER)


@dataclass
class Receiver:
    url: str
    #: every request, in order, failed ones too
    hits: list[Hit] = field(default_factory=list)
    #: statuses to answer with before answering 200
    fail_with: list[int] = field(default_factory=list)

    def delivered(self) -> list[Hit]:
        return [h for h in self.hits if 200 <= h.status < 300]

    def events(self) -> list[str]:
        return [str(h.event) for h in self.delivered()]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    lock = threading.Lock()
    state = Receiver(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                status = state.fail_with.pop(0) if state.fail_with else 200
                state.hits.append(Hit(self.path, dict(self.headers.items()), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/cloudorch-token-abcdef"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hook_env(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> Receiver:
    monkeypatch.setenv("HOOK_URL", receiver.url)
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    monkeypatch.setenv("CLOUDORCH_NOTIFY_BACKOFF", "0.01")
    monkeypatch.setenv("CLOUDORCH_NOTIFY_BUDGET", "10")
    return receiver


@pytest.fixture
def plan_copy(tmp_path: Path) -> Any:
    def copy(name: str) -> Path:
        target = tmp_path / name
        target.write_text((FIXTURES / name).read_text())
        return target

    return copy
