"""Helpers for policy tests: build changes and changesets directly (no engine needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cloudorch.changes import Action, Change, ChangeSet, PropertyDiff

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "policy"
#: a Wednesday, 12:00 UTC
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def change(
    address: str,
    type: str = "aws.s3_bucket",
    action: str = "create",
    after: dict[str, Any] | None = None,
    before: dict[str, Any] | None = None,
    unknown: list[str] | None = None,
    provider: str | None = None,
) -> Change:
    act = Action(action)
    if act is Action.DELETE:
        after = None
        before = before or {}
    return Change(
        address=address,
        type=type,
        provider=provider or type.split(".", 1)[0],
        action=act,
        before=before,
        after=after if act is not Action.DELETE else None,
        after_unknown=unknown or [],
        diff=[PropertyDiff(path=k, after=v) for k, v in (after or {}).items()],
    )


def changeset(*changes: Change) -> ChangeSet:
    return ChangeSet(plan_name="shop", plan_file="plans/shop.yaml", plan_hash="sha256:0", changes=list(changes))


@pytest.fixture(autouse=True)
def _known_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    """A known actor and no CI variables (the plugin already gives each test its own directory)."""
    for var in ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILD_REQUESTEDFOR", "CIRCLE_USERNAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLOUDORCH_ACTOR", "tester")
