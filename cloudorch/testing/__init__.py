"""Tooling for tests and benchmarks: the emulators a test runs against, as pytest fixtures.

`plugin` is the one pytest plugin that starts each emulator once per test session and isolates
every test (own directory, no cloud credentials); `arm` is the ARM test server with fault
injection. The emulator processes themselves belong to the sandbox (`cloudorch.sandbox.processes`),
re-exported here for tests and benchmarks. Nothing in the product imports this package.
"""

from cloudorch.sandbox.processes import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    MOTO_CLIENT_ENV,
    RunningServer,
    ServerStartError,
    free_port,
    start_azurite,
    start_fake_gcs,
    start_moto,
    start_process,
)

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "MOTO_CLIENT_ENV",
    "RunningServer",
    "ServerStartError",
    "free_port",
    "start_azurite",
    "start_fake_gcs",
    "start_moto",
    "start_process",
]
