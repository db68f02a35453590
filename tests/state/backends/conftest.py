"""Real servers for remote state tests: moto (S3, DynamoDB), fake-gcs-server, Azurite.

Each server starts once per session (`cloudorch.testing.plugin`); every test gets a fresh bucket or
container (`remote` fixture) and the SDK environment pointing at the server, so the code under
test finds it the way a user's CI would (AWS_ENDPOINT_URL, STORAGE_EMULATOR_HOST,
AZURE_STORAGE_CONNECTION_STRING).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from remote_testkit import SCHEMES, CliResult, Remote, make_remote

from cloudorch.testing import RunningServer


@pytest.fixture
def servers(request: pytest.FixtureRequest) -> Callable[[str], dict[str, RunningServer]]:
    """Start (once) only the servers a test asks for."""
    names = {"s3": "moto_server", "gs": "fake_gcs", "azblob": "azurite"}

    def get(*schemes: str) -> dict[str, RunningServer]:
        return {s: request.getfixturevalue(names[s]) for s in schemes}

    return get  # type: ignore[return-value]


@pytest.fixture(params=SCHEMES)
def remote(request: pytest.FixtureRequest, servers: Any, monkeypatch: pytest.MonkeyPatch) -> Remote:
    """A fresh, versioned bucket (container on Azure) on each emulator in turn."""
    scheme = request.param
    r = make_remote(scheme, servers(scheme))
    for k, v in r.env.items():
        monkeypatch.setenv(k, v)
    return r


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run the CLI in this process, the way a user would type it (no interpreter start-up per call)."""
    from cloudorch.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
