"""The wall clock cloudorch reads, with one test seam for clock skew.

`CLOUDORCH_TEST_CLOCK_SKEW` (seconds, may be negative) is added to every reading: a test seam
that makes one process stand for a machine whose clock is wrong, without touching the system
clock. Lock expiry is judged on the store's clock (`cloudorch/state/backends/remote.py`), so a
skewed reading here must never let one machine take a live holder's lock.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime, timedelta

SKEW_ENV = "CLOUDORCH_TEST_CLOCK_SKEW"


def now() -> datetime:
    """The current time (UTC, aware), shifted by `CLOUDORCH_TEST_CLOCK_SKEW` when set."""
    current = datetime.now(UTC)
    skew = os.environ.get(SKEW_ENV)
    if skew:
        with contextlib.suppress(ValueError):  # a malformed seam reads as no skew
            current += timedelta(seconds=float(skew))
    return current
