"""Rego policies: Conftest deny / warn / violation, levels, syntax errors, apply-time re-checks, tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cloudorch.errors import ExitCode
from cloudorch.policy import Level, PolicyLoadError, build_input, load_policies, run_rego_tests

from .conftest import FIXTURES, NOON, change, changeset


def test_deny_warn_violation_on_fixtures() -> None:
    policies = load_policies([{"path": "conftest", "level": "mandatory"}], base_dir=FIXTURES)
    cs = changeset(
        change("good", after={"name": "shop-a", "versioning": True, "tags": {"cost_center": "1"}}),
        change("bad", after={"name": "x", "tags": {}}),
        change("other", type="core.null", after={}),
    )
    report = policies.evaluate(build_input(cs, now=NOON))
    got = sorted((v.policy_id, v.level.value, v.address, v.message) for v in report.violations)
    assert got == [
        ("s3", "advisory", "bad", "bad has no cost_center tag"),
        ("s3", "mandatory", "bad", "bad: buckets must be versioned"),
        ("s3", "mandatory", "bad", "bucket names must start with shop-"),
    ]
    structured = next(v for v in report.violations if v.kind == "rego:main.violation")
    assert structured.details == {"address": "bad", "name": "x"}
    assert [v.address for v in report.blocking()] == ["bad", "bad"]


def test_level_from_the_file_and_rule_suffix_ids() -> None:
    policies = load_policies([], extra_paths=[FIXTURES / "naming"])
    report = policies.evaluate(build_input(changeset(change("b", after={"name": "Nope"})), now=NOON))
    (v,) = report.violations
    assert (v.policy_id, v.level, v.address) == ("bucket_name", Level.HARD, "b")
    assert v.source is not None and v.source.endswith("names.rego") and v.line == 6


def test_syntax_error_names_file_and_line() -> None:
    with pytest.raises(PolicyLoadError) as info:
        load_policies([{"path": "broken/bad.rego", "level": "hard"}], base_dir=FIXTURES)
    err = info.value
    assert err.exit_code == ExitCode.ERROR
    assert err.location is not None and err.location.file.endswith("bad.rego") and err.location.line == 7
    assert "Invalid assignment" in err.message


def test_unknown_function_fails_at_load(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package main\nimport rego.v1\ndeny contains m if { m := nope(1) }\n")
    with pytest.raises(PolicyLoadError, match="Function not found"):
        load_policies([{"path": "p.rego"}], base_dir=tmp_path)


def test_no_rules_in_namespace(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package other\nimport rego.v1\ndeny contains 1 if false\n")
    with pytest.raises(PolicyLoadError, match="no deny, warn or violation rules in package main"):
        load_policies([{"path": "p.rego"}], base_dir=tmp_path)
    policies = load_policies([{"path": "p.rego", "namespace": "other"}], base_dir=tmp_path)
    assert policies.ids == ["p"]


def test_v0_syntax_partial_sets(tmp_path: Path) -> None:
    (tmp_path / "old.rego").write_text(
        'package main\n\ndeny[msg] {\n  c := input.changeset.changes[_]\n  c.action == "delete"\n'
        '  msg := sprintf("%s is deleted", [c.address])\n}\n'
    )
    policies = load_policies([{"path": "old.rego"}], base_dir=tmp_path)
    report = policies.evaluate(build_input(changeset(change("a", action="delete")), now=NOON))
    assert [(v.address, v.message) for v in report.violations] == [("a", "a is deleted")]


def test_unknown_at_plan_value_is_checked_again_at_apply() -> None:
    policies = load_policies([{"path": "naming"}], base_dir=FIXTURES)
    planned = change("site", after={"name": "${resources.x.name}-site"}, unknown=["name"])
    doc = build_input(changeset(planned), stage="prod", now=NOON)
    assert doc["changeset"]["changes"][0]["after"] == {}  # unknown values are left out
    assert doc["changeset"]["changes"][0]["after_unknown"] == ["name"]
    assert policies.evaluate(doc).violations == []
    created = planned.model_copy(update={"after": {"name": "Bad_Name"}, "after_unknown": []})
    report = policies.check_resource(created, input_doc=doc)
    assert [(v.policy_id, v.address) for v in report.violations] == [("bucket_name", "site")]
    assert report.when == "apply" and not report.passed
    fine = planned.model_copy(update={"after": {"name": "shop-site"}, "after_unknown": []})
    assert policies.check_resource(fine, input_doc=doc).violations == []


def test_check_resource_runs_resource_builtins_only() -> None:
    policies = load_policies(
        [
            {"id": "names", "rule": "naming", "pattern": "shop-.*"},
            {"id": "few", "rule": "max_changes", "limits": {"create": 0}},
        ]
    )
    report = policies.check_resource(change("a", after={"name": "x"}))
    assert [v.policy_id for v in report.violations] == ["names"]


def test_projection_keeps_named_fields_only() -> None:
    policies = load_policies([{"path": "conftest"}], base_dir=FIXTURES)
    assert policies.rego is not None
    projected = policies.rego.projection.apply(
        build_input(changeset(change("a", after={"name": "n", "secret_thing": 1, "tags": {"cost_center": 1}})))
    )
    assert set(projected) == {"changeset"}
    assert projected["changeset"]["changes"][0]["after"] == {"name": "n", "tags": {"cost_center": 1}}


def test_projection_is_off_for_policies_that_walk_the_input(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(
        'package main\nimport rego.v1\ndeny contains k if { some c in input.changeset.changes\n'
        '  some k in object.keys(c.after); k == "secret_thing" }\n'
    )
    policies = load_policies([{"path": "p.rego"}], base_dir=tmp_path)
    report = policies.evaluate(build_input(changeset(change("a", after={"secret_thing": 1})), now=NOON))
    assert [v.message for v in report.violations] == ["secret_thing"]


def test_policy_test_runner() -> None:
    results = {r.name: r for r in run_rego_tests(FIXTURES / "unit")}
    assert results["data.main.test_delete_denied"].passed
    assert results["data.main.test_create_allowed"].passed
    assert not results["data.main.test_wrong_expectation"].passed
    assert results["data.main.todo_test_later"].skipped
    assert results["data.main.test_delete_denied"].line == 5


def test_policy_test_files_are_not_loaded_as_policies(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "unit", tmp_path / "unit")
    policies = load_policies([{"path": "unit"}], base_dir=tmp_path)
    assert policies.ids == ["policy"]


def test_policy_test_syntax_error() -> None:
    with pytest.raises(PolicyLoadError, match=r"bad\.rego:7"):
        run_rego_tests(FIXTURES / "broken")
