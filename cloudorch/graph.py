"""The dependency graph: one networkx DiGraph over resource addresses (and, later, stages).

An edge `a -> b` means `a` must exist before `b` (b references a or lists it in depends_on).
This module builds the graph, names cycles in full, orders it, computes critical paths and
renders it; it knows nothing about clouds or state. Import it lazily: networkx is slow to load.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import networkx as nx

from cloudorch.errors import ConfigError, Location


def build(
    nodes: Iterable[tuple[str, Mapping[str, Any]]],
    edges: Iterable[tuple[str, str]],
    *,
    locate: Callable[[str], Location | None] | None = None,
) -> nx.DiGraph:
    """Build and check the graph. `edges` are (dependency, dependent) pairs."""
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    check_acyclic(g, locate=locate)
    return g


def check_acyclic(g: nx.DiGraph, *, locate: Callable[[str], Location | None] | None = None) -> None:
    # find_cycle is slow on large acyclic graphs (seconds at 5,000 nodes); only name a cycle
    # once the cheap check says there is one
    if nx.is_directed_acyclic_graph(g):
        return
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return
    path = [u for u, _ in cycle] + [cycle[0][0]]
    first = path[0]
    raise ConfigError(
        "dependency cycle: " + " -> ".join(path),
        hint="break the cycle: remove one of these references or depends_on entries",
        location=locate(first) if locate else None,
    )


def order(g: nx.DiGraph) -> list[str]:
    """A deterministic topological order (ties broken by name)."""
    return list(nx.lexicographical_topological_sort(g))


def remaining_path(
    nodes: Iterable[str],
    successors: Mapping[str, Iterable[str]],
    weight: Mapping[str, float],
) -> dict[str, float]:
    """For each node, the weight of the heaviest path from it to a sink (inclusive).

    The scheduler starts the ready node with the largest value first (critical-path priority).
    Works on plain mappings so the scheduler does not need networkx.
    """
    node_list = list(nodes)
    indeg: dict[str, int] = dict.fromkeys(node_list, 0)
    for n in node_list:
        for s in successors.get(n, ()):
            indeg[s] += 1
    # Kahn order, then a reverse sweep
    ready = [n for n in node_list if indeg[n] == 0]
    topo: list[str] = []
    while ready:
        n = ready.pop()
        topo.append(n)
        for s in successors.get(n, ()):
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    if len(topo) != len(node_list):
        raise ConfigError("operation graph has a cycle", hint="this is a bug in cloudorch; please report it")
    out: dict[str, float] = {}
    for n in reversed(topo):
        best = 0.0
        for s in successors.get(n, ()):
            best = max(best, out[s])
        out[n] = weight.get(n, 1.0) + best
    return out


def critical_path(g: nx.DiGraph, weight: Callable[[str], float] = lambda _n: 1.0) -> tuple[float, list[str]]:
    """The heaviest path through the graph and its total weight."""
    if g.number_of_nodes() == 0:
        return 0.0, []
    best: dict[str, tuple[float, str | None]] = {}
    for n in nx.topological_sort(g):
        preds = [(best[p][0], p) for p in g.predecessors(n)]
        top = max(preds) if preds else (0.0, None)
        best[n] = (top[0] + weight(n), top[1])
    end = max(best, key=lambda n: best[n][0])
    total = best[end][0]
    path: list[str] = []
    cur: str | None = end
    while cur is not None:
        path.append(cur)
        cur = best[cur][1]
    return total, list(reversed(path))


def ancestors(g: nx.DiGraph, nodes: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for n in nodes:
        out |= nx.ancestors(g, n)
    return out


def descendants(g: nx.DiGraph, nodes: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for n in nodes:
        out |= nx.descendants(g, n)
    return out


# --------------------------------------------------------------------------- rendering


def _label(g: nx.DiGraph, n: str) -> str:
    kind = g.nodes[n].get("type", "")
    return f"{n}\\n{kind}" if kind else n


def to_dot(g: nx.DiGraph) -> str:
    lines = ["digraph cloudorch {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    for n in sorted(g.nodes):
        shape = ', shape=ellipse, style=filled, fillcolor="#eef"' if g.nodes[n].get("kind") == "stage" else ""
        lines.append(f'  "{n}" [label="{_label(g, n)}"{shape}];')
    for u, v in sorted(g.edges):
        lines.append(f'  "{u}" -> "{v}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_id(n: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in n)


def to_mermaid(g: nx.DiGraph) -> str:
    lines = ["flowchart LR"]
    for n in sorted(g.nodes):
        kind = g.nodes[n].get("type", "")
        text = f"{n}<br/>{kind}" if kind else n
        lines.append(f'  {_mermaid_id(n)}["{text}"]')
    for u, v in sorted(g.edges):
        lines.append(f"  {_mermaid_id(u)} --> {_mermaid_id(v)}")
    return "\n".join(lines) + "\n"


def to_json(g: nx.DiGraph) -> str:
    doc = {
        "nodes": [{"id": n, **{k: v for k, v in g.nodes[n].items()}} for n in sorted(g.nodes)],
        "edges": [{"from": u, "to": v} for u, v in sorted(g.edges)],
        "order": order(g),
    }
    return json.dumps(doc, indent=2, default=str) + "\n"
