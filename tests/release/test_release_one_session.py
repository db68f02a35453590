"""A promotion plans, judges its gates and applies in one session of the stage's state: one load,
one lock, one recovery check, one policy run. Counted through the `cloudorch.run` logger, which
logs each of those steps (cloudorch/run/session.py, cloudorch/run/plan.py)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pytest

from cloudorch import api
from cloudorch.release import promotion

T0 = "2026-11-23T10:00:00Z"


def _steps(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cloudorch.run"]


def _count(steps: list[str], prefix: str, doc: str = "") -> int:
    return sum(1 for s in steps if s.startswith(prefix) and doc in s)


def test_promotion_loads_locks_recovers_and_judges_once(
    fixture_plan: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDORCH_NOW", T0)
    monkeypatch.setenv("CLOUDORCH_ACTOR", "ann")
    plan = fixture_plan("release_one_session.yaml")
    opts = api.RunOptions(plan_file=plan)
    assert promotion.deploy(replace(opts, stage="dev"), "1.4.0").ok

    caplog.set_level(logging.DEBUG, logger="cloudorch.run")
    caplog.clear()
    out = promotion.promote(opts, "prod", version="1.4.0")

    assert out.applied and out.ok, out.to_json()
    assert [v.gate for v in out.verdicts] == ["policy"] and out.verdicts[0].passed
    steps = _steps(caplog)
    assert _count(steps, "loaded") == 1, steps
    assert _count(steps, "locked", "shop.prod") == 1, steps
    assert _count(steps, "locked") == 1, steps  # no other stage's state was locked either
    assert _count(steps, "recovery checked", "shop.prod") == 1, steps
    assert _count(steps, "evaluated policies") == 1, steps
    # the one session also left the release in the stage's state, beside the apply
    prod = api.state_list(replace(opts, stage="prod"))
    assert [r.address for r in prod] == ["build_info"]
    assert (plan.parent / "out" / "prod.txt").read_text() == "version 1.4.0\n"


def test_refused_promotion_applies_nothing_and_still_runs_once(
    fixture_plan: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDORCH_NOW", T0)
    plan = fixture_plan("release_one_session.yaml")
    opts = api.RunOptions(plan_file=plan)
    assert promotion.deploy(replace(opts, stage="dev"), "2.0.0").ok
    plan.write_text(plan.read_text().replace('path: "out/${stage.name}.txt"', 'path: "tmp/${stage.name}.txt"'))
    # dev ran 2.0.0 from the old file: promote it under the new one, whose path breaks the policy

    caplog.set_level(logging.DEBUG, logger="cloudorch.run")
    caplog.clear()
    out = promotion.promote(opts, "prod", version="2.0.0")

    assert not out.applied and out.denied is not None and out.denied.exit_code == 3
    steps = _steps(caplog)
    assert (_count(steps, "loaded"), _count(steps, "locked"), _count(steps, "evaluated policies")) == (1, 1, 1)
    assert api.state_list(replace(opts, stage="prod")) == []


def test_version_variable_follows_version_from_the_parsed_plan(fixture_plan: Any) -> None:
    from cloudorch.run.session import read_plan

    plan = fixture_plan("release_one_session.yaml")
    spec = read_plan(api.RunOptions(plan_file=plan))
    assert promotion.version_vars(spec, "3.1.0") == {"version": "3.1.0"}
    # written in flow style, quoted, with spaces inside the reference: still one `${var.NAME}`
    flow = 'release: {version: "${ var.version }"}\n'
    plan.write_text(plan.read_text().replace("release:\n  version: ${var.version}\n", flow))
    spec = read_plan(api.RunOptions(plan_file=plan))
    assert promotion.version_vars(spec, "3.1.0") == {"version": "3.1.0"}
    # a literal, or a template with more than the reference, binds no variable
    plan.write_text(plan.read_text().replace('"${ var.version }"', '"v${var.version}"'))
    spec = read_plan(api.RunOptions(plan_file=plan))
    assert promotion.version_vars(spec, "3.1.0") == {}
