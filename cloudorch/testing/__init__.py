"""Reusable helpers for tests, benchmarks and the sandbox: local cloud servers to run against.

Owns starting and stopping emulator processes on 127.0.0.1 (`servers`). It must not import a
cloud SDK, and nothing in the product path imports it except the sandbox.
"""

from cloudorch.testing.servers import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    RunningServer,
    ServerStartError,
    free_port,
    start_azurite,
    start_fake_gcs,
    start_process,
)

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "RunningServer",
    "ServerStartError",
    "free_port",
    "start_azurite",
    "start_fake_gcs",
    "start_process",
]
