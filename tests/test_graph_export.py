"""`cloudorch.graph_export`: GraphML, GEXF and node-link JSON read back by networkx, and networkx
kept off the import path of the CLI and of a plain plan."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from cloudorch import graph as graphs
from cloudorch.errors import CloudorchError, ConfigError
from cloudorch.graph_export import FORMATS, export

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
#: attributes the export must carry to the other tool unchanged
CARRIED = ("type", "provider", "kind", "stage", "action")


def _plan_graph(plan: Path) -> graphs.Graph:
    """The graph `cloudorch graph` computes for a plan file, rebuilt from its JSON output."""
    out = subprocess.run(
        [sys.executable, "-m", "cloudorch", "graph", str(plan), "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    doc = json.loads(out)
    nodes = [(n["id"], {k: v for k, v in n.items() if k != "id"}) for n in doc["nodes"]]
    return graphs.build(nodes, [(e["from"], e["to"]) for e in doc["edges"]])


@pytest.fixture(
    scope="module",
    params=[FIXTURES / "rollback_chain.yaml", FIXTURES / "release_two_stage.yaml", ROOT / "plans" / "quickstart.yaml"],
    ids=lambda p: p.name,
)
def plan_graph(request: pytest.FixtureRequest) -> graphs.Graph:
    return _plan_graph(request.param)


def _read_back(text: str, fmt: str) -> nx.DiGraph[str]:
    if fmt == "graphml":
        g = nx.read_graphml(io.BytesIO(text.encode()))
    elif fmt == "gexf":
        g = nx.read_gexf(io.BytesIO(text.encode()))
    else:
        g = nx.node_link_graph(json.loads(text), edges="edges")
    assert isinstance(g, nx.DiGraph)
    return g


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_reads_back_with_the_same_nodes_edges_and_attributes(plan_graph: graphs.Graph, fmt: str) -> None:
    first = next(n for n in plan_graph.nodes if plan_graph.nodes[n].get("kind") == "resource")
    text = export(plan_graph, fmt, actions={first: "create"})
    back = _read_back(text, fmt)

    assert back.is_directed()
    assert set(back.nodes) == set(plan_graph.nodes)
    assert set(back.edges) == set(plan_graph.edges)
    for node, attrs in plan_graph.nodes.items():
        want = {k: v for k, v in attrs.items() if k in CARRIED}
        if node == first:
            want["action"] = "create"
        got = {k: v for k, v in back.nodes[node].items() if k in CARRIED}
        assert got == want, node
    assert any(attrs.get("type") for attrs in plan_graph.nodes.values())  # the fixture has typed resources


def test_lists_survive_each_format() -> None:
    """A stage's `needs` is a list: native in node-link, JSON text where only scalars are allowed."""
    plan_graph = _plan_graph(FIXTURES / "release_two_stage.yaml")
    stages = [n for n, a in plan_graph.nodes.items() if a.get("kind") == "stage"]
    assert any(plan_graph.nodes[s]["needs"] for s in stages)
    for fmt in FORMATS:
        back = _read_back(export(plan_graph, fmt), fmt)
        for stage in stages:
            needs: Any = back.nodes[stage]["needs"]
            if fmt != "node-link":
                needs = json.loads(needs)
            assert needs == plan_graph.nodes[stage]["needs"]


def test_export_is_sorted_so_the_same_graph_gives_the_same_text() -> None:
    a = graphs.build([("b", {"type": "core.null"}), ("a", {"type": "core.null"})], [("a", "b")])
    b = graphs.build([("a", {"type": "core.null"}), ("b", {"type": "core.null"})], [("a", "b")])
    for fmt in ("graphml", "node-link"):  # GEXF stamps today's date into its header
        assert export(a, fmt) == export(b, fmt)


def test_an_unknown_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        export(graphs.build([("a", {})], []), "svg")
    assert "graphml" in (err.value.hint or "")


def test_missing_networkx_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "networkx", None)  # makes `import networkx` raise ImportError
    with pytest.raises(CloudorchError) as err:
        export(graphs.build([("a", {})], []), "graphml")
    assert "networkx" in str(err.value) and "pip install networkx" in (err.value.hint or "")


def _networkx_loaded_after(code: str, cwd: Path) -> bool:
    probe = f"import sys\n{code}\nprint('networkx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=cwd, check=True)
    return out.stdout.strip().splitlines()[-1] == "True"


def test_the_cli_and_a_plain_plan_do_not_import_networkx(tmp_path: Path) -> None:
    assert not _networkx_loaded_after("import cloudorch.cli", tmp_path)
    plan = str(FIXTURES / "rollback_chain.yaml")
    assert not _networkx_loaded_after(
        "from cloudorch.cli import main\n"
        "codes = []\n"
        f"for argv in (['--help'], ['plan', {plan!r}], ['graph', {plan!r}]):\n"
        "    try:\n"
        "        codes.append(main(argv))\n"
        "    except SystemExit as exc:\n"
        "        codes.append(exc.code)\n"
        "assert all(c in (0, 2) for c in codes), codes  # each command succeeded (2: plan has changes)",
        tmp_path,
    )
    # the probe can see networkx at all: it is loaded once the export runs
    assert _networkx_loaded_after(
        "from cloudorch import graph\nfrom cloudorch.graph_export import export\n"
        "export(graph.build([('a', {})], []), 'graphml')",
        tmp_path,
    )
