"""The ledger's questions (what runs where, since when, what was good) and durations."""

from __future__ import annotations

import pytest

from cloudorch.clock import parse_iso
from cloudorch.planfile.stages import parse_duration
from cloudorch.release import ledger as L
from cloudorch.release.gates import soaked_seconds
from cloudorch.state.model import StateEvent


def _e(kind: str, stage: str | None, version: str, at: str, actor: str = "ci", **detail: object) -> StateEvent:
    return L.event(kind, actor=actor, at=parse_iso(at), stage=stage, version=version, **detail)


def test_current_version_previous_good_and_soak() -> None:
    led = L.Ledger(
        [
            _e(L.DEPLOY, "dev", "1", "2026-01-01T10:00:00Z"),
            _e(L.DEPLOY, "dev", "1", "2026-01-01T11:00:00Z"),  # a re-deploy does not restart the soak
            _e(L.DEPLOY, "dev", "2", "2026-01-01T12:00:00Z"),
            _e(L.DEPLOY, "dev", "3", "2026-01-01T13:00:00Z", ok=False),  # failed: never current
            _e(L.VERIFY_FAILED, "dev", "2", "2026-01-01T12:05:00Z"),
            _e(L.ROLLBACK, "dev", "1", "2026-01-01T12:06:00Z"),
            _e(L.REJECT, None, "9", "2026-01-01T12:07:00Z", reason="bad"),
            _e(L.APPROVE, "prod", "1", "2026-01-01T12:08:00Z", actor="ann"),
            _e(L.APPROVE, "prod", "1", "2026-01-01T12:09:00Z", actor="ann"),
            _e(L.APPROVE, "prod", "2", "2026-01-01T12:09:00Z", actor="ben"),
        ]
    )
    cur = led.current("dev")
    assert cur is not None and cur.version == "1" and cur.since == parse_iso("2026-01-01T12:06:00Z")
    assert led.versions("dev") == ["1", "2", "1"]
    assert led.good("dev", "1") and not led.good("dev", "2") and not led.good("dev", "3")
    assert led.previous_good("dev") is None  # 2 failed its verification, 3 never ran
    assert list(led.approvals("prod", "1")) == ["ann"]
    assert led.rejected("9") is not None and led.rejected("1") is None
    now = parse_iso("2026-01-01T12:36:00Z")
    assert soaked_seconds(led, "dev", "1", now) == 30 * 60  # its latest unbroken run, since the rollback
    assert soaked_seconds(led, "dev", "2", now) == 6 * 60  # from its deploy until the rollback replaced it
    assert soaked_seconds(led, "prod", "1", now) is None


@pytest.mark.parametrize(
    ("text", "seconds"), [(90, 90.0), ("45s", 45.0), ("10m", 600.0), ("1h30m", 5400.0), ("2d", 172800.0)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10 minutes", "1h 30", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
