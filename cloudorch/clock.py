"""The clock: what "now" is for every command (policy input, release gates, release history).

Real time by default. `CLOUDORCH_NOW` (an ISO 8601 time, e.g. `2026-11-26T14:00:00Z`) replaces
it; that is a test hook, so soak and window gates can be tested without waiting. Imports only
`cloudorch.errors`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime

from cloudorch.errors import ConfigError

NOW_ENV = "CLOUDORCH_NOW"


def now(env: Mapping[str, str] | None = None) -> datetime:
    """The current time (UTC, aware), or `CLOUDORCH_NOW` when set (test hook)."""
    text = (os.environ if env is None else env).get(NOW_ENV)
    if not text:
        return datetime.now(UTC)
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
