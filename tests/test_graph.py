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
