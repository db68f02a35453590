"""Policy sources: plan-file entries, YAML rule files, --policy paths, and the input document."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudorch.policy import Level, PolicyLoadError, build_input, load_policies

from .conftest import FIXTURES, NOON, change, changeset


def test_yaml_rule_file_with_file_level() -> None:
    policies = load_policies([{"path": "rules.yaml"}], base_dir=FIXTURES)
    levels = {p.id: p.level for p in policies.policies}
    assert levels == {"owner-tag": Level.MANDATORY, "eu-only": Level.HARD}
    report = policies.evaluate(build_input(changeset(change("b", after={"region": "us-east-1"})), now=NOON))
    assert {v.policy_id for v in report.violations} == {"owner-tag", "eu-only"}


def test_extra_path_defaults_to_mandatory(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text('package main\nimport rego.v1\ndeny contains "no" if { input.stage == "x" }\n')
    policies = load_policies(None, extra_paths=[tmp_path / "p.rego"])
    assert [(p.id, p.level) for p in policies.policies] == [("p", Level.MANDATORY)]


def test_paths_are_relative_to_the_plan_folder(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="does not exist"):
        load_policies([{"path": "missing/"}], base_dir=tmp_path)
    policies = load_policies([{"path": "conftest"}], base_dir=FIXTURES)
    assert policies.ids == ["s3"]


def test_bad_entries() -> None:
    with pytest.raises(PolicyLoadError, match="needs `path`"):
        load_policies([{"level": "hard"}], plan_file="plan.yaml")
    with pytest.raises(PolicyLoadError, match="must be a mapping"):
        load_policies(["policies/"])  # type: ignore[list-item]
    with pytest.raises(PolicyLoadError, match="needs an `id`"):
        load_policies([{"rule": "protect", "addresses": ["a"]}])
    with pytest.raises(PolicyLoadError, match="not a policy rule file"):
        (Path("x.yaml")).write_text("just: data\n")
        load_policies([{"path": "x.yaml"}])


def test_input_document_shape() -> None:
    cs = changeset(
        change("site", after={"name": "a", "tags": {"owner": "${var.x}", "env": "dev"}}, unknown=["tags.owner"]),
        change("old", action="delete", before={"name": "o"}),
    )
    doc = build_input(
        cs,
        stage="prod",
        release={"version": "1.2.0"},
        provider_configs={"aws": {"region": "eu-west-1", "secret_key": "S3CR3T"}},
        now=NOON,
    )
    assert set(doc) == {"when", "changeset", "resources", "providers", "stage", "release", "user", "time", "plan"}
    site = doc["changeset"]["changes"][0]
    assert site == {
        "address": "site",
        "type": "aws.s3_bucket",
        "provider": "aws",
        "action": "create",
        "before": None,
        "after": {"name": "a", "tags": {"env": "dev"}},
        "after_unknown": ["tags.owner"],
        "diff": ["name", "tags"],
        "moved_from": None,
        "importing": None,
    }
    assert doc["changeset"]["moves"] == [] and doc["changeset"]["imports"] == []
    assert doc["changeset"]["counts"]["create"] == 1 and doc["changeset"]["counts"]["delete"] == 1
    assert doc["resources"] == {"site": {"name": "a", "tags": {"env": "dev"}}}
    assert doc["providers"] == {"aws": {"region": "eu-west-1"}}  # never credentials
    assert (doc["stage"], doc["release"], doc["user"]) == ("prod", {"version": "1.2.0"}, "tester")
    assert doc["time"] == "2026-11-25T12:00:00+00:00"
    assert doc["plan"] == {"name": "shop", "file": "plans/shop.yaml"}
