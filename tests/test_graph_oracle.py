"""The compact `cloudorch.graph` against networkx as an oracle, on random graphs (hypothesis).

The compact graph is on the hot path of every plan and apply; networkx is the independent
implementation each answer is checked against: the topological order (every edge goes forward,
and the tie-break is networkx's lexicographical order), cycle detection (a cycle is found iff
networkx finds one, and the named cycle is a real one), and the weighted critical path.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudorch import graph as graphs
from cloudorch.errors import ConfigError

# no deadline: a loaded machine must not fail a property; no database: tests leave no files behind
PROPERTY = settings(deadline=None, database=None, max_examples=200)
MAX_NODES = 12


@st.composite
def digraphs(draw: Any, *, acyclic: bool) -> tuple[graphs.Graph, nx.DiGraph[str], dict[str, int]]:
    """The same random directed graph twice (compact, networkx), plus a weight per node.

    Names like `n10` and `n2` sort differently as text and as numbers, and nodes are inserted in
    a random order, so neither insertion order nor numbering can stand in for the name order.
    """
    n = draw(st.integers(0, MAX_NODES))
    names = [f"n{i}" for i in range(n)]
    inserted = draw(st.permutations(names))
    edges: list[tuple[str, str]] = []
    if n:
        pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n))
        rank = draw(st.permutations(range(n)))  # a hidden order; forward edges only when acyclic
        edges = [(names[u], names[v]) for u, v in pairs if not acyclic or rank[u] < rank[v]]
    weights = {name: draw(st.integers(0, 50)) for name in names}
    compact = graphs.Graph()
    oracle: nx.DiGraph[str] = nx.DiGraph()
    for name in inserted:
        compact.add_node(name, {"weight": weights[name]})
        oracle.add_node(name)
    for u, v in edges:
        compact.add_edge(u, v)
        oracle.add_edge(u, v)
    return compact, oracle, weights


def _node_weighted_longest(oracle: nx.DiGraph[str], weights: dict[str, int]) -> float:
    """networkx weighs edges, not nodes: split each node into in -> out carrying its weight."""
    split: nx.DiGraph[tuple[str, str]] = nx.DiGraph()
    for node in oracle.nodes:
        split.add_edge((node, "in"), (node, "out"), weight=weights[node])
    for u, v in oracle.edges:
        split.add_edge((u, "out"), (v, "in"), weight=0)
    return float(nx.dag_longest_path_length(split, weight="weight")) if len(split) else 0.0


@PROPERTY
@given(digraphs(acyclic=True))
def test_order_sends_every_edge_forward_and_breaks_ties_by_name(
    case: tuple[graphs.Graph, nx.DiGraph[str], dict[str, int]],
) -> None:
    compact, oracle, _ = case
    got = graphs.order(compact)
    assert sorted(got) == sorted(oracle.nodes)
    position = {node: i for i, node in enumerate(got)}
    assert all(position[u] < position[v] for u, v in oracle.edges)
    # "of the nodes ready at each step, the smallest name first" is networkx's lexicographical sort
    assert got == list(nx.lexicographical_topological_sort(oracle))


@PROPERTY
@given(digraphs(acyclic=False))
def test_a_cycle_is_found_iff_networkx_finds_one_and_it_is_real(
    case: tuple[graphs.Graph, nx.DiGraph[str], dict[str, int]],
) -> None:
    compact, oracle, _ = case
    cycle = graphs.find_cycle(compact)
    assert (cycle is None) == nx.is_directed_acyclic_graph(oracle)
    if cycle is None:
        graphs.check_acyclic(compact)
        return
    # a closed walk along real edges that visits no node twice
    assert len(cycle) >= 2 and cycle[0] == cycle[-1]
    assert len(set(cycle[:-1])) == len(cycle) - 1
    assert all(oracle.has_edge(u, v) for u, v in pairwise(cycle))
    # and it is what a user is shown, by the checks that run on every plan
    with pytest.raises(ConfigError) as err:
        graphs.build([(n, {}) for n in compact.nodes], compact.edges)
    assert "dependency cycle: " + " -> ".join(cycle) in str(err.value)
    with pytest.raises(ConfigError):
        graphs.order(compact)


@PROPERTY
@given(digraphs(acyclic=True))
def test_critical_path_length_matches_networkx(case: tuple[graphs.Graph, nx.DiGraph[str], dict[str, int]]) -> None:
    compact, oracle, weights = case
    total, path = graphs.critical_path(compact, weight=lambda n: float(weights[n]))
    assert total == pytest.approx(_node_weighted_longest(oracle, weights))
    # the named path is a real path of the graph and weighs what is claimed
    assert all(oracle.has_edge(u, v) for u, v in pairwise(path))
    assert sum(weights[n] for n in path) == pytest.approx(total)
    assert bool(path) == bool(oracle.nodes)


@PROPERTY
@given(digraphs(acyclic=True))
def test_remaining_path_is_the_heaviest_path_from_each_node(
    case: tuple[graphs.Graph, nx.DiGraph[str], dict[str, int]],
) -> None:
    """The scheduler's critical-path priority: from each node, the heaviest path to a sink."""
    compact, oracle, weights = case
    succ = {n: compact.successors(n) for n in compact.nodes}
    got = graphs.remaining_path(compact.nodes, succ, {n: float(w) for n, w in weights.items()})
    for node in oracle.nodes:
        # every node of this subgraph is reachable from `node`, so its heaviest path starts there
        below = oracle.subgraph({node} | nx.descendants(oracle, node))
        assert got[node] == pytest.approx(_node_weighted_longest(nx.DiGraph(below), weights)), node


@PROPERTY
@given(digraphs(acyclic=False), st.data())
def test_ancestors_and_descendants_match_networkx(
    case: tuple[graphs.Graph, nx.DiGraph[str], dict[str, int]], data: st.DataObject
) -> None:
    compact, oracle, _ = case
    if not oracle.nodes:
        return
    start = data.draw(st.lists(st.sampled_from(sorted(oracle.nodes)), min_size=1, max_size=3, unique=True))
    # the compact graph counts a start node only when another start node (or a cycle) reaches it
    want_desc = set().union(*(nx.descendants(oracle, s) | _on_cycle(oracle, s) for s in start))
    want_anc = set().union(*(nx.ancestors(oracle, s) | _on_cycle(oracle, s) for s in start))
    assert graphs.descendants(compact, start) == want_desc
    assert graphs.ancestors(compact, start) == want_anc


def _on_cycle(oracle: nx.DiGraph[str], node: str) -> set[str]:
    """{node} when a path leads from it back to itself (networkx's `descendants` leaves it out)."""
    return {node} if any(oracle.has_edge(p, node) for p in nx.descendants(oracle, node) | {node}) else set()
