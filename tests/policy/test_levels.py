"""Enforcement levels, overrides and their audit events, and the actor."""

from __future__ import annotations

from typing import Any

import pytest

from cloudorch.errors import ConfigError, ExitCode
from cloudorch.policy import (
    Level,
    OverrideRefusedError,
    PolicyBlockedError,
    PolicyReport,
    build_input,
    current_actor,
    load_policies,
)

from .conftest import NOON, change, changeset


def report_for(level: str) -> PolicyReport:
    entry: dict[str, Any] = {"id": "names", "rule": "naming", "pattern": "shop-.*", "level": level}
    policies = load_policies([entry])
    return policies.evaluate(build_input(changeset(change("site", after={"name": "bad"})), now=NOON))


def test_advisory_passes_with_a_warning() -> None:
    report = report_for("advisory")
    assert report.passed and report.blocking() == []
    assert [v.level for v in report.warnings()] == [Level.ADVISORY]
    report.raise_if_blocked()  # does not raise
    assert "WARN" in report.to_text()


def test_mandatory_blocks_with_exit_3_and_names_each_violation() -> None:
    report = report_for("mandatory")
    assert not report.passed
    with pytest.raises(PolicyBlockedError) as info:
        report.raise_if_blocked()
    err = info.value
    assert err.exit_code == ExitCode.DENIED == 3
    assert "names [mandatory] site: name 'bad' does not match 'shop-.*'" in err.message
    assert err.hint is not None and "--override names" in err.hint
    assert [v.address for v in err.violations] == ["site"]


def test_mandatory_override_is_recorded_with_actor_and_reason() -> None:
    report = report_for("mandatory")
    events = report.apply_overrides({"names": "legacy bucket, ticket OPS-1"})
    assert report.passed and report.blocking() == []
    assert len(events) == 1
    event = events[0]
    assert event.kind == "policy_override" and event.actor == "tester"
    assert event.detail["reason"] == "legacy bucket, ticket OPS-1"
    assert event.detail["actor_source"] == "CLOUDORCH_ACTOR"
    assert event.detail["violations"] == [{"address": "site", "message": "name 'bad' does not match 'shop-.*'"}]
    rows = report.results
    assert rows[0]["overridden"]["actor"] == "tester" and rows[0]["blocking"] is False
    # a saved plan keeps the override
    again = PolicyReport.from_results(rows)
    assert again.passed and "OVERRIDDEN" in again.to_text()


def test_blocking_accepts_override_ids_without_recording() -> None:
    report = report_for("mandatory")
    assert report.blocking(["names"]) == []
    assert report.blocking() != []


def test_hard_cannot_be_overridden() -> None:
    report = report_for("hard")
    with pytest.raises(OverrideRefusedError, match="hard and cannot be overridden") as info:
        report.apply_overrides({"names": "please"})
    assert info.value.exit_code == 3
    assert report.blocking(["names"]) != []  # even when named directly


def test_override_needs_a_known_id_and_a_reason() -> None:
    report = report_for("mandatory")
    with pytest.raises(ConfigError, match="no policy has this id"):
        report.apply_overrides({"nope": "x"})
    with pytest.raises(ConfigError, match="needs a reason"):
        report.apply_overrides({"names": "  "})


def test_unused_override_records_nothing() -> None:
    policies = load_policies([{"id": "names", "rule": "naming", "pattern": ".*"}])
    report = policies.evaluate(build_input(changeset(change("a", after={"name": "x"})), now=NOON))
    assert report.apply_overrides({"names": "just in case"}) == []


def test_actor_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert current_actor({"CLOUDORCH_ACTOR": "ann", "GITHUB_ACTOR": "bot"}).name == "ann"
    assert current_actor({"GITHUB_ACTOR": "octo"}).source == "GITHUB_ACTOR"
    assert current_actor({"GITLAB_USER_LOGIN": "gl"}).name == "gl"
    assert current_actor({"BUILD_REQUESTEDFOR": "Ann Dev"}).name == "Ann Dev"
    assert current_actor({}).source == "os-user"
