"""The clock: what "now" is for every command (policy input, release gates, release history, lock
leases), with the two test seams that stand in for time passing and for a wrong clock.

Real time by default. `CLOUDORCH_NOW` (an ISO 8601 time, e.g. `2026-11-26T14:00:00Z`) replaces it,
so soak and window gates can be tested without waiting. `CLOUDORCH_TEST_CLOCK_SKEW` (seconds, may
be negative) is added to the real time, so one process stands for a machine whose clock is wrong,
without touching the system clock; lock expiry is judged on the store's clock
(`cloudorch/state/backends/remote.py`), so a skewed reading must never let one machine take a live
holder's lock. Imports only `cloudorch.errors`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from cloudorch.errors import ConfigError

NOW_ENV = "CLOUDORCH_NOW"
SKEW_ENV = "CLOUDORCH_TEST_CLOCK_SKEW"


def now(env: Mapping[str, str] | None = None) -> datetime:
    """The current time (UTC, aware): `CLOUDORCH_NOW` when set, else the real time shifted by
    `CLOUDORCH_TEST_CLOCK_SKEW` when that is set."""
    environ = os.environ if env is None else env
    text = environ.get(NOW_ENV)
    if not text:
        current = datetime.now(UTC)
        skew = environ.get(SKEW_ENV)
        if skew:
            with contextlib.suppress(ValueError):  # a malformed seam reads as no skew
                current += timedelta(seconds=float(skew))
        return current
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{NOW_ENV}={text!r} is not an ISO 8601 time", hint="e.g. 2026-11-26T14:00:00Z (a test hook; unset it)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def parse_iso(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
