"""Helpers for tests and benchmarks: local cloud servers on 127.0.0.1 to run against (`servers`).

It must not import a cloud SDK at import time, nor `release`, `api` or `cli`; of the product, only
the sandbox imports it (for the emulator processes).
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
