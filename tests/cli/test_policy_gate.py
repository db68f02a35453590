"""Policies at plan and apply through the CLI: exit 3, overrides recorded, reports written."""

from __future__ import annotations

import json


def test_mandatory_policy_blocks_plan_and_apply(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("policed.yaml")
    r = cli("plan", str(plan))
    assert r.code == 3
    assert "no-tmp-files" in r.out + r.err and "bad" in r.out + r.err
    r = cli("plan", str(plan), "--json")
    assert r.code == 3
    assert any(v["policy_id"] == "no-tmp-files" for v in r.json()["policy_results"])  # one document
    r = cli("apply", str(plan), "--auto-approve")
    assert r.code == 3
    assert cli("state", "list", str(plan), "--json").json() == {"resources": []}


def test_override_needs_reason_and_is_recorded(cli, fixture_plan, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("policed.yaml")
    r = cli("apply", str(plan), "--auto-approve", "--override", "no-tmp-files")
    assert r.code == 1 and "--reason" in r.err
    monkeypatch.setenv("CLOUDORCH_ACTOR", "alice")
    sarif = tmp_path / "policy.sarif"
    r = cli(
        "apply", str(plan), "--auto-approve", "--override", "no-tmp-files", "--reason", "INC-1 hotfix",
        "--policy-report", f"sarif={sarif}",
    )
    assert r.code == 0, r.out + r.err
    doc = json.loads(sarif.read_text())
    assert doc["version"] == "2.1.0"
    state = json.loads((tmp_path / ".cloudorch" / "state" / "policed.json").read_text())
    events = state["state"]["events"] if "state" in state else state["events"]
    if isinstance(events, str):
        events = json.loads(events)
    overrides = [e for e in events if e["kind"] == "policy_override"]
    assert overrides and overrides[0]["actor"] == "alice"
    assert "INC-1 hotfix" in json.dumps(overrides[0])


def test_policy_check_alone(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("policed.yaml")
    r = cli("policy", "check", str(plan), "--json")
    assert r.code == 3
    blocked = [v for v in r.json()["violations"] if v["policy_id"] == "no-tmp-files"]
    assert [v["address"] for v in blocked] == ["bad"]
    r = cli("policy", "check", str(plan), "--override", "no-tmp-files", "--reason", "accepted")
    assert r.code == 0, r.err
    assert cli("state", "list", str(plan), "--json").json() == {"resources": []}  # nothing applied
    r = cli("policy", "check", str(fixture_plan("lifecycle.yaml")))
    assert r.code == 1 and "declares no policies" in r.err


def test_policy_test_runs_rego_unit_tests(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil
    from pathlib import Path

    src = Path(__file__).parents[1] / "fixtures" / "policy" / "unit"
    shutil.copytree(src, tmp_path / "unit")
    r = cli("policy", "test", str(tmp_path / "unit"))
    assert r.code == 1
    assert "PASS  data.main.test_delete_denied" in r.out
    assert "FAIL  data.main.test_wrong_expectation" in r.out
    assert "2 passed, 1 failed, 1 skipped" in r.out
    (tmp_path / "unit" / "policy_test.rego").write_text(
        (tmp_path / "unit" / "policy_test.rego").read_text().replace("count(deny) == 5", "count(deny) == 1")
    )
    r = cli("policy", "test", str(tmp_path / "unit"), "--json")
    assert r.code == 0 and r.json()["passed"] is True
