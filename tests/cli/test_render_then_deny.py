"""One rule for refusals: the result is shown first, then the command exits 3."""

from __future__ import annotations

import json
from typing import Any


def test_denial_during_apply_shows_the_result_then_exits_3(cli: Any, fixture_plan: Any) -> None:
    plan = fixture_plan("policy_mid_apply.yaml")
    r = cli("apply", str(plan), "--auto-approve")
    assert r.code == 3, r.err
    assert "first" in r.out and "late" in r.out  # the result, as applied, is on stdout
    assert "kept-files" in r.err and "denied by policy" in r.err


def test_denial_in_json_keeps_stdout_one_document(cli: Any, fixture_plan: Any) -> None:
    plan = fixture_plan("policy_mid_apply.yaml")
    r = cli("apply", str(plan), "--auto-approve", "--json")
    assert r.code == 3
    doc = r.json()
    assert doc["applied"] is True and "late" in json.dumps(doc["result"])
    assert json.loads(r.err.strip().splitlines()[-1])["exit_code"] == 3


def test_plan_shows_the_violations_then_exits_3(cli: Any, fixture_plan: Any) -> None:
    plan = fixture_plan("policed.yaml")
    r = cli("plan", str(plan))
    assert r.code == 3
    assert "no-tmp-files" in r.out and "will be created" in r.out
