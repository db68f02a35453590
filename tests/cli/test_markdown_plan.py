"""`cloudorch plan --format markdown`: the pull-request comment, golden-tested and stable across runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cloudorch.changes import ChangeSet
from cloudorch.cli.markdown import render

GOLDEN = Path(__file__).parents[1] / "fixtures" / "markdown"


def test_comment_matches_the_golden_file() -> None:
    # every action, drift, and a denied, an advisory and an overridden policy result
    cs = ChangeSet.load(GOLDEN / "changeset.json")
    assert render(cs) == (GOLDEN / "changeset.md").read_text()


def test_comment_does_not_depend_on_when_or_against_what_serial_it_was_planned() -> None:
    cs = ChangeSet.load(GOLDEN / "changeset.json")
    later = cs.model_copy(update={"created_at": "2030-01-01T00:00:00+00:00", "state_serial": 99})
    later.changes = list(reversed(cs.changes))
    assert render(later) == render(cs)


def test_sandbox_and_stage_are_named_and_the_marker_keeps_them_apart() -> None:
    cs = ChangeSet.load(GOLDEN / "changeset.json")
    text = render(cs, stage="dev", sandbox=True)
    assert text.splitlines()[0] == "<!-- cloudorch-plan: shop (sandbox) -->"
    assert "stage `dev`" in text and "sandbox" in text.splitlines()[1]


def test_plan_format_markdown_through_the_cli(cli: Any, fixture_plan: Any) -> None:
    plan = fixture_plan("lifecycle.yaml")
    first = cli("plan", str(plan), "--format", "markdown")
    second = cli("plan", str(plan), "--format", "markdown")
    assert first.code == 0, first.err
    assert first.out == second.out
    assert first.out.startswith("<!-- cloudorch-plan: ")
    assert "<details><summary>Changes (" in first.out
    assert cli("apply", str(plan), "--auto-approve").code == 0
    clean = cli("plan", str(plan), "--format", "markdown", "--detailed-exitcode")
    assert clean.code == 0
    assert "**No changes.**" in clean.out and "<details>" not in clean.out


def test_a_policy_denial_still_prints_the_comment_and_exits_3(cli: Any, fixture_plan: Any) -> None:
    result = cli("plan", str(fixture_plan("policed.yaml")), "--format", "markdown")
    assert result.code == 3
    assert "| ❌ denied | mandatory | `no-tmp-files` | `bad` |" in result.out
    assert "denied by policy" in result.err


def test_format_json_and_bad_formats(cli: Any, fixture_plan: Any) -> None:
    plan = str(fixture_plan("lifecycle.yaml"))
    assert cli("plan", plan, "--format", "json").json()["summary"]["has_changes"] is True
    assert cli("plan", plan, "--format", "yaml").code == 1
    both = cli("plan", plan, "--format", "markdown", "--json")
    assert both.code == 1 and "two documents" in both.out
