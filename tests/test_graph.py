"""Graph building, cycles, order and critical path."""

from __future__ import annotations

import pytest

from cloudorch import graph
from cloudorch.errors import ConfigError


def test_cycle_named_in_full() -> None:
    with pytest.raises(ConfigError) as err:
        graph.build([("a", {}), ("b", {}), ("c", {})], [("a", "b"), ("b", "c"), ("c", "a")])
    path = err.value.message.split(": ", 1)[1].split(" -> ")
    assert path[0] == path[-1] and len(path) == 4


def test_order_and_critical_path() -> None:
    g = graph.build([(n, {}) for n in "abcd"], [("a", "b"), ("b", "c"), ("a", "d")])
    order = graph.order(g)
    assert order.index("a") < order.index("b") < order.index("c")
    total, path = graph.critical_path(g)
    assert total == 3 and path == ["a", "b", "c"]


def test_remaining_path_weights() -> None:
    rem = graph.remaining_path(["a", "b", "c"], {"a": ["b"], "b": ["c"]}, {"a": 1, "b": 2, "c": 3})
    assert rem == {"a": 6, "b": 5, "c": 3}


def test_cycle_reached_through_a_node_outside_it_names_only_the_cycle() -> None:
    with pytest.raises(ConfigError) as err:
        graph.build([(n, {}) for n in "abc"], [("a", "b"), ("b", "c"), ("c", "b")])
    assert err.value.message == "dependency cycle: b -> c -> b"


def test_self_reference_is_a_cycle() -> None:
    with pytest.raises(ConfigError) as err:
        graph.build([("a", {})], [("a", "a")])
    assert err.value.message == "dependency cycle: a -> a"


def test_order_breaks_ties_by_name_among_ready_nodes() -> None:
    # z and y are ready from the start, but a, then b, then c (ready in turn) sort before them
    g = graph.build([(n, {}) for n in "zcbya"], [("b", "c"), ("a", "b")])
    assert graph.order(g) == ["a", "b", "c", "y", "z"]


def test_ancestors_and_descendants_follow_chains_both_ways() -> None:
    g = graph.build([(n, {}) for n in "abcde"], [("a", "b"), ("b", "c"), ("d", "c"), ("c", "e")])
    assert graph.ancestors(g, ["c"]) == {"a", "b", "d"}
    assert graph.descendants(g, ["b"]) == {"c", "e"}
    assert graph.descendants(g, ["a", "c"]) == {"b", "c", "e"}  # c is reached from a
    assert graph.ancestors(g, ["a"]) == set()


def test_edges_add_missing_nodes_and_renderers_list_everything() -> None:
    g = graph.build([("a", {"type": "core.null"})], [("a", "b")])
    assert "b" in g and g.edges == [("a", "b")]
    assert '"a" -> "b";' in graph.to_dot(g)
    assert "n_a --> n_b" in graph.to_mermaid(g)
