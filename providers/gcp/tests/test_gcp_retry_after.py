"""Cloud Storage's Retry-After reaches the engine in both forms, and GCP errors keep their kinds.

fake-gcs-server never throttles, so a small HTTP server of the test's own answers every request
with the status and headers Cloud Storage sends; the real storage client talks to it.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cloudorch_gcp import GcpConfig, GcpProvider

from cloudorch.provider.contract import ErrorKind, ProviderContext, ProviderError


class Answer:
    """What the server answers next: a status, a message and headers."""

    status = 429
    message = "rate limited"
    headers: dict[str, str] = {}


@pytest.fixture
def answer() -> Iterator[type[Answer]]:
    yield Answer
    Answer.status, Answer.message, Answer.headers = 429, "rate limited", {}


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        body = json.dumps({"error": {"code": Answer.status, "message": Answer.message}}).encode()
        self.send_response(Answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in Answer.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _read_error(server: str, tmp_path: Path) -> ProviderError:
    provider = GcpProvider(GcpConfig(project="p", endpoint=server), "gcp", ProviderContext(plan_dir=tmp_path, env={}))
    try:
        rt = provider.resource_type("gcp.storage_bucket")
        with pytest.raises(ProviderError) as info:
            rt.read("web.b", "b", rt.Properties.model_validate({"name": "retry-after-bucket"}))
        return info.value
    finally:
        provider.close()


def test_delta_seconds(server: str, answer: type[Answer], tmp_path: Path) -> None:
    answer.headers = {"Retry-After": "9"}
    err = _read_error(server, tmp_path)
    assert err.kind is ErrorKind.THROTTLED
    assert err.retry_after == 9.0
    assert err.message.startswith("web.b: read bucket retry-after-bucket: throttled by Cloud Storage")


def test_http_date(server: str, answer: type[Answer], tmp_path: Path) -> None:
    answer.headers = {"Retry-After": email.utils.formatdate(time.time() + 120, usegmt=True)}
    seconds = _read_error(server, tmp_path).retry_after
    assert seconds is not None and 100 < seconds <= 120


def test_5xx_is_transient_and_carries_retry_after(server: str, answer: type[Answer], tmp_path: Path) -> None:
    answer.status, answer.headers = 503, {"Retry-After": "3"}
    err = _read_error(server, tmp_path)
    assert (err.kind, err.retry_after) == (ErrorKind.TRANSIENT, 3.0)


@pytest.mark.parametrize(
    ("status", "message", "kind", "shown"),
    [
        (409, "conflicting change", ErrorKind.CONFLICT, "conflict"),
        (412, "precondition", ErrorKind.CONFLICT, "precondition failed"),
        (409, "The bucket you tried to delete is not empty", ErrorKind.FATAL, "bucket is not empty"),
        (412, "bucket must be empty", ErrorKind.FATAL, "bucket is not empty"),
        (409, "bucket already exists", ErrorKind.FATAL, "bucket name is taken"),
        (403, "no", ErrorKind.FATAL, "forbidden"),
    ],
)
def test_kinds(
    server: str, answer: type[Answer], tmp_path: Path, status: int, message: str, kind: ErrorKind, shown: str
) -> None:
    answer.status, answer.message = status, message
    err = _read_error(server, tmp_path)
    assert err.kind is kind
    assert f": {shown}: " in err.message
