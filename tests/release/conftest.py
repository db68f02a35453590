"""Fixtures for the release tests: the CLI run in process, a release plan copied into the test's
directory, and one moto server (real HTTP, real boto3 in the AWS provider) for health gates."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloudorch.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
T0 = "2026-11-23T10:00:00Z"  # a Monday


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run `cloudorch ARGS` as `actor` at time `at` (the CLOUDORCH_NOW test hook)."""

    def call(*args: str, actor: str = "ci", at: str = T0) -> Result:
        monkeypatch.setenv("CLOUDORCH_ACTOR", actor)
        monkeypatch.setenv("CLOUDORCH_NOW", at)
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """moto, reset, with throwaway credentials in the environment (the autouse fixture cleared real ones)."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")).read()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    return moto_server


@pytest.fixture
def release_plan(tmp_path: Path) -> Callable[[str], Path]:
    def copy(name: str = "release_three_stage.yaml") -> Path:
        dest = tmp_path / "plan.yaml"
        shutil.copy(FIXTURES / name, dest)
        return dest

    return copy
