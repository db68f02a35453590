"""The pytest plugin for cloudorch's tests: emulators once per session, every test isolated.

Session fixtures start each emulator on a free 127.0.0.1 port the first time a test asks for it,
once per test process (each xdist worker has its own), and stop it when the session ends:

- `moto_server`: moto in server mode (`RunningServer`); `moto` readies it for one test: all of
  its data reset, throwaway credentials and `AWS_ENDPOINT_URL` in the environment; returns the URL.
- `fake_gcs`: fake-gcs-server, in memory (`RunningServer`).
- `azurite`: Azurite's blob service, in memory (`RunningServer`).
- `arm_server`: the ARM test server (`cloudorch.testing.arm.ArmServer`); `arm` resets it.

fake-gcs-server and Azurite have no reset: tests sharing them use their own bucket or container
names. The autouse `_isolated` fixture gives every test its own working directory and home and
removes cloud credentials from the environment, so no test can reach a real account.

Load it with `pytest_plugins = ["cloudorch.testing.plugin"]` in the root `conftest.py`, as this
repository does; a provider distribution outside it can do the same in its own.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cloudorch.sandbox.processes import RunningServer, start_azurite, start_fake_gcs, start_moto

if TYPE_CHECKING:
    from cloudorch.testing.arm import ArmServer

#: environment variables that could lead an SDK to a real account or away from the emulators
CLOUD_ENV_PREFIXES = (
    "AWS_", "AZURE_", "ARM_", "MSI_", "IDENTITY_", "GOOGLE_", "CLOUDSDK_", "GCE_", "STORAGE_EMULATOR_HOST",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test in its own working directory and home, without cloud credentials, colours or CI host."""
    for key in list(os.environ):
        if key.startswith(CLOUD_ENV_PREFIXES):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    # the suite itself may run on a CI host: no test writes annotations for it unless it asks
    monkeypatch.setenv("CLOUDORCH_CI_HOST", "none")
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture(scope="session")
def moto_server() -> Iterator[RunningServer]:
    """moto in server mode, its own process, all services on one port; see `moto` for a test's use."""
    with start_moto() as server:
        yield server


@pytest.fixture
def moto(moto_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """moto with no data, and the AWS SDKs of this test (and its subprocesses) pointed at it."""
    request = urllib.request.Request(f"{moto_server.url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
    for key, value in moto_server.env.items():
        monkeypatch.setenv(key, value)
    # no profile of the user's can add a region, a role or a credential process
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return moto_server.url


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[RunningServer]:
    """fake-gcs-server with the memory backend; every bucket reports location US."""
    with start_fake_gcs() as server:
        yield server


@pytest.fixture(scope="session")
def azurite() -> Iterator[RunningServer]:
    """Azurite's blob service in memory; `extra["connection_string"]` reaches its dev account."""
    with start_azurite() as server:
        yield server


@pytest.fixture(scope="session")
def arm_server() -> Iterator[ArmServer]:
    """The ARM test server over HTTPS (`url`, `ca_bundle`), on a thread of this process."""
    from cloudorch.testing.arm import ArmServer

    server = ArmServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def arm(arm_server: ArmServer) -> ArmServer:
    """The ARM test server with no resource groups, resources or pending faults."""
    arm_server.reset()
    return arm_server

