"""`cloudorch.run.plan`: a plan is a value (changeset + policy verdict), built once and not changed after."""

from __future__ import annotations

from typing import Any

from cloudorch import api


def test_judged_plan_carries_the_verdict_and_the_results(fixture_plan: Any) -> None:
    plan = fixture_plan("policed.yaml")
    planned = api.judged_plan(api.RunOptions(plan_file=plan, vars={}))
    assert planned.verdict is not None
    blocking = [r for r in planned.verdict.report.results if r.get("blocking")]
    assert planned.changeset.policy_results == planned.verdict.report.results
    assert planned.changeset.inputs == {"vars": {}, "var_files": []}
    denial = planned.verdict.denial({})
    assert denial is not None and denial.exit_code == 3 and blocking
    # an override with a reason lifts a mandatory policy
    assert planned.verdict.denial({"no-tmp-files": "INC-1"}) is None


def test_plan_without_policies_has_no_verdict(fixture_plan: Any) -> None:
    planned = api.judged_plan(api.RunOptions(plan_file=fixture_plan("lifecycle.yaml")))
    assert planned.verdict is None
    assert planned.changeset.counts()["create"] == len(planned.changeset.changes)


def test_target_scopes_the_plan_to_the_address_and_what_it_needs(fixture_plan: Any) -> None:
    opts = api.RunOptions(plan_file=fixture_plan("lifecycle.yaml"), targets=["note"])
    cs = api.plan(opts)
    assert sorted(c.address for c in cs.changes) == ["config", "note"]
