"""What the README promises of every command: --json on graph and schema, --stage on graph and
validate, the hint for a missing plan file, and `sandbox status` when nothing runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def test_graph_and_schema_take_json(cli: Any, fixture_plan: Any) -> None:
    plan = fixture_plan("lifecycle.yaml")
    graph = cli("graph", str(plan), "--json")
    assert graph.code == 0, graph.err
    nodes = json.dumps(graph.json())
    assert "note" in nodes and "config" in nodes
    schema = cli("schema", "--json")
    assert schema.code == 0 and schema.json()["type"] == "object"


def test_graph_and_validate_take_a_stage(cli: Any, fixture_plan: Any) -> None:
    plan = fixture_plan("release_one_session.yaml")
    every = cli("validate", str(plan), "--json")
    assert every.code == 0 and every.json()["resources"] == 2
    one = cli("validate", str(plan), "--stage", "prod", "--json")
    assert one.code == 0 and one.json()["resources"] == 1 and one.json()["stage"] == "prod"
    dot = cli("graph", str(plan), "--stage", "dev")
    assert dot.code == 0 and "build_info" in dot.out and "prod" not in dot.out
    wrong = cli("validate", str(plan), "--stage", "qa")
    assert wrong.code == 1 and "no such stage" in wrong.err


def test_missing_plan_file_hint_shows_a_real_command(cli: Any) -> None:
    r = cli("validate", "nonexistent.yaml")
    assert r.code == 1
    assert "-f " not in r.err and "cloudorch validate plans/quickstart.yaml" in r.err


def test_sandbox_status_fails_when_nothing_runs(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDORCH_SANDBOX_DIR", str(tmp_path / "no-sandbox"))
    r = cli("sandbox", "status")
    assert r.code == 1 and "not running" in r.out
    doc = cli("sandbox", "status", "--json")
    assert doc.code == 1 and doc.json()["running"] is False


@pytest.mark.parametrize("fmt", ["graphml", "gexf", "node-link"])
def test_graph_exports_for_graph_tools(cli: Any, fixture_plan: Any, tmp_path: Path, fmt: str) -> None:
    import networkx as nx

    plan = fixture_plan("lifecycle.yaml")
    r = cli("graph", str(plan), "--format", fmt)
    assert r.code == 0, r.err
    path = tmp_path / f"graph.{fmt}"
    path.write_text(r.out)
    if fmt == "graphml":
        g = nx.read_graphml(path)
    elif fmt == "gexf":
        g = nx.read_gexf(path)
    else:
        g = nx.node_link_graph(json.loads(r.out), edges="edges")
    dot = cli("graph", str(plan), "--json").json()
    assert set(g.nodes) == {n["id"] for n in dot["nodes"]}
    assert len(g.edges) == len(dot["edges"]) > 0


def test_graph_refuses_an_unknown_format(cli: Any, fixture_plan: Any) -> None:
    r = cli("graph", str(fixture_plan("lifecycle.yaml")), "--format", "svg")
    assert r.code == 1 and "graphml" in r.err and "Traceback" not in r.err
