"""The day/hour windows of the `window` gate (the same `Window` as the `change_window` policy rule).

"Now" itself lives in `cloudorch/clock.py`; its names are re-exported here for the ledger and gates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, time
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloudorch.clock import NOW_ENV, iso, now, parse_iso

if TYPE_CHECKING:
    from cloudorch.policy.builtin import Window

__all__ = ["NOW_ENV", "TimeWindow", "iso", "now", "parse_iso", "parse_window"]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TimeWindow:
    """Days and hours in a time zone, for the `window` gate."""

    def __init__(self, window: Window, tz: ZoneInfo, text: str) -> None:
        self.window = window
        self.tz = tz
        self.text = text

    def contains(self, moment: datetime) -> bool:
        return self.window.contains(moment.astimezone(self.tz))

    def __str__(self) -> str:
        return self.text


def parse_window(days: Sequence[str], hours: str, timezone: str) -> TimeWindow:
    """ValueError with a readable message for a bad day, hour range or zone."""
    from cloudorch.policy.builtin import Window

    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r} (use an IANA name such as Europe/Paris)") from None
    picked: set[int] = set()
    for name in days:
        key = str(name).strip().lower()[:3]
        if key not in _DAYS:
            raise ValueError(f"unknown day {name!r} (use mon, tue, wed, thu, fri, sat, sun)")
        picked.add(_DAYS.index(key))
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", hours)
    if m is None:
        raise ValueError(f"bad hours {hours!r} (write HH:MM-HH:MM, e.g. 09:00-17:30)")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"bad hours {hours!r}")
    end = time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2)
    text = f"{','.join(_DAYS[d] for d in sorted(picked))} {hours} {timezone}"
    return TimeWindow(Window(frozenset(picked), time(h1, m1), end), tz, text)
