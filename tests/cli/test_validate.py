"""Bad input gives a located message and exit 1, never a traceback."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("bad_type.yaml", ["unknown resource type", "did you mean `core.file`?", "bad_type.yaml:5"]),
        ("bad_property.yaml", ["contnet", "did you mean `content`?", "bad_property.yaml:"]),
        ("cycle.yaml", ["dependency cycle:", " -> "]),
    ],
)
def test_bad_plans(cli, fixture_plan, fixture: str, expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan(fixture)
    for command in (["validate"], ["plan"]):
        r = cli(*command, str(plan))
        assert r.code == 1, r.out
        assert "Traceback" not in r.err
        for text in expected:
            assert text in r.err, (text, r.err)


def test_cycle_is_printed_in_full(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    r = cli("validate", str(fixture_plan("cycle.yaml")))
    line = next(x for x in r.err.splitlines() if "dependency cycle" in x)
    path = line.split("dependency cycle: ", 1)[1].split(" -> ")
    assert path[0] == path[-1] and set(path) == {"a", "b", "c"}


def test_json_errors_are_documents(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    r = cli("validate", str(fixture_plan("bad_type.yaml")), "--json")
    assert r.code == 1
    doc = r.json()
    assert doc["exit_code"] == 1 and doc["location"]["line"] == 5 and "core.file" in doc["hint"]


def test_missing_plan_file(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("plan", "nope.yaml")
    assert r.code == 1 and "nope.yaml" in r.err


def test_bad_var_syntax(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    r = cli("plan", str(fixture_plan("lifecycle.yaml")), "--var", "novalue")
    assert r.code == 1 and "NAME=VALUE" in r.err


def test_graph_schema_providers_version(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("lifecycle.yaml")
    dot = cli("graph", str(plan))
    assert dot.code == 0 and '"config" -> "note"' in dot.out
    mer = cli("graph", str(plan), "--format", "mermaid")
    assert mer.out.startswith("flowchart LR")
    js = cli("graph", str(plan), "--format", "json")
    import json

    doc = json.loads(js.out)
    assert doc["order"].index("config") < doc["order"].index("note")
    schema = cli("schema")
    assert schema.code == 0 and "core.null" in schema.out and "fail_on_create" in schema.out
    prov = cli("providers", "--json").json()
    core = next(p for p in prov["providers"] if p["name"] == "core")
    assert {t["type"] for t in core["types"]} >= {"core.null", "core.file", "core.wait"}
    assert cli("version", "--json").json()["version"]


def test_unknown_option_is_a_usage_error_not_an_internal_error(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("lifecycle.yaml")
    result = cli("validate", str(plan), "--no-such-flag")
    assert result.code == 1
    assert "No such option: --no-such-flag" in result.err
    assert "Internal error" not in result.err and "Traceback" not in result.err
