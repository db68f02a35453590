"""Report formats: SARIF validated against the official 2.1.0 schema, JUnit parsed back, and the rest."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from cloudorch.errors import ConfigError
from cloudorch.policy import PolicyReport, build_input, load_policies, parse_report_target

from .conftest import FIXTURES, NOON, change, changeset

SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))


@pytest.fixture
def report() -> PolicyReport:
    policies = load_policies(
        [
            {"id": "owner-tag", "rule": "required_tags", "level": "hard", "keys": ["owner"]},
            {"id": "few-deletes", "rule": "max_changes", "level": "mandatory", "max": 0},
            {"id": "names", "rule": "naming", "level": "advisory", "pattern": "shop-.*"},
            {"path": "conftest", "level": "mandatory"},
        ],
        base_dir=FIXTURES,
    )
    cs = changeset(
        change("site", after={"name": "shop-site", "versioning": True, "tags": {"owner": "a", "cost_center": "1"}}),
        change("logs", after={"name": "logs|x", "tags": {}}),
        change("old", action="delete"),
    )
    r = policies.evaluate(build_input(cs, stage="prod", now=NOON))
    r.apply_overrides({"few-deletes": "cleanup approved in OPS-7"})
    return r


def test_sarif_is_valid_and_located_on_plan_lines(report: PolicyReport) -> None:
    lines = {"logs": 12, "site": 5}
    sarif = report.to_sarif(lambda address: ("plans/shop.yaml", lines[address]) if address in lines else None)
    jsonschema.validate(sarif, SCHEMA)
    results = sarif["runs"][0]["results"]
    rule_ids = [r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]]
    assert {"owner-tag", "few-deletes", "names", "s3"} <= set(rule_ids)
    owner = next(r for r in results if r["ruleId"] == "owner-tag")
    assert owner["level"] == "error"
    assert owner["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "plans/shop.yaml"},
        "region": {"startLine": 12},
    }
    assert owner["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "logs"
    overridden = next(r for r in results if r["ruleId"] == "few-deletes")
    assert overridden["suppressions"][0]["justification"] == "overridden by tester: cleanup approved in OPS-7"
    rego = next(r for r in results if r["ruleId"] == "s3" and "versioned" in r["message"]["text"])
    assert rego["locations"][0]["physicalLocation"]["region"] == {"startLine": 12}
    # with no locate() answer a result falls back to the policy file's line
    unlocated = report.to_sarif(lambda address: None)["runs"][0]["results"]
    rego = next(r for r in unlocated if r["ruleId"] == "s3" and "versioned" in r["message"]["text"])
    place = rego["locations"][0]["physicalLocation"]
    assert place["artifactLocation"]["uri"].endswith("conftest/s3.rego") and place["region"] == {"startLine": 6}


def test_sarif_without_locate_is_valid(report: PolicyReport) -> None:
    jsonschema.validate(json.loads(report.render("sarif")), SCHEMA)


def test_junit_one_testcase_per_policy_and_resource(report: PolicyReport) -> None:
    root = ET.fromstring(report.to_junit())
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    owner = suites["owner-tag"]
    cases = {c.get("name"): c for c in owner.findall("testcase")}
    assert set(cases) == {"site", "logs"}
    assert cases["site"].find("failure") is None
    failure = cases["logs"].find("failure")
    assert failure is not None and failure.get("type") == "hard" and "owner" in (failure.get("message") or "")
    assert owner.get("tests") == "2" and owner.get("failures") == "1"
    deletes = suites["few-deletes"].findall("testcase")
    assert [c.get("name") for c in deletes] == ["(changeset)"]
    assert deletes[0].find("failure") is None  # overridden: reported, not failed
    assert "OVERRIDDEN by tester" in (deletes[0].findtext("system-out") or "")
    names = {c.get("name"): c for c in suites["names"].findall("testcase")}
    assert names["logs"].find("failure") is None and "WARNING" in (names["logs"].findtext("system-out") or "")
    assert int(root.get("failures") or 0) == sum(int(s.get("failures") or 0) for s in suites.values())


def test_json_markdown_text(report: PolicyReport) -> None:
    doc = json.loads(report.render("json"))
    assert doc["passed"] is False and doc["stage"] == "prod"
    assert doc["summary"]["overridden"] == 1 and doc["overrides"][0]["actor"] == "tester"
    md = report.to_markdown()
    assert md.startswith("### cloudorch policy check: ❌ blocked")
    assert "| ❌ | hard | `owner-tag` | `logs` | missing required tags: owner |" in md
    assert "logs\\|x" in md  # pipes are escaped
    text = report.to_text()
    assert "DENY       hard" in text and "OVERRIDDEN" in text and "(by tester: cleanup approved in OPS-7)" in text


def test_clean_report_renders() -> None:
    r = PolicyReport(policies=[], violations=[])
    assert r.to_text().startswith("Policies: 0 checked, no violations")
    assert "✅ passed" in r.to_markdown()
    jsonschema.validate(r.to_sarif(), SCHEMA)
    assert ET.fromstring(r.to_junit()).get("tests") == "0"


def test_report_targets() -> None:
    assert parse_report_target("sarif=out/p.sarif") == ("sarif", "out/p.sarif")
    with pytest.raises(ConfigError, match="unknown format"):
        parse_report_target("html=x.html")
    with pytest.raises(ConfigError, match="FORMAT=FILE"):
        parse_report_target("junit")
