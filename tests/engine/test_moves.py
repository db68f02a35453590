"""`apply_moves` on an in-memory state: keys, whole resources, module addresses, chains, collisions."""

from __future__ import annotations

import pytest

from cloudorch.engine.moves import apply_moves, replay_moves
from cloudorch.errors import ConfigError, Location, StalePlanError
from cloudorch.planfile.blocks import Move
from cloudorch.state.model import DeposedObject, ResourceRecord, State

HERE = Location("p.yaml", 3, 5, "moved.0")


def state(*addresses: str) -> State:
    s = State()
    for a in addresses:
        s.resources[a] = ResourceRecord(address=a, type="core.null", provider="core", id=f"id-{a}")
    return s


def move(src: str, dst: str) -> Move:
    return Move(src, dst, HERE)


def test_module_instances_move_with_everything_inside() -> None:
    s = state("module.net[eu].vpc", "module.net[eu].module.sub.subnet[a]", "module.net[us].vpc", "other")
    s.resources["other"].dependencies = ["module.net[eu].vpc"]
    done = apply_moves(s, [move("module.net[eu]", "module.network[europe]")])
    assert sorted(s.resources) == [
        "module.net[us].vpc",
        "module.network[europe].module.sub.subnet[a]",
        "module.network[europe].vpc",
        "other",
    ]
    assert s.resources["module.network[europe].vpc"].id == "id-module.net[eu].vpc"
    assert s.resources["module.network[europe].vpc"].address == "module.network[europe].vpc"
    assert s.resources["other"].dependencies == ["module.network[europe].vpc"]
    assert done.moved["module.net[eu].vpc"] == "module.network[europe].vpc"


def test_into_and_out_of_a_module_and_chains() -> None:
    s = state("vpc", "module.old.db")
    done = apply_moves(
        s, [move("vpc", "module.net[eu].vpc"), move("module.old.db", "db"), move("db", "database")]
    )
    assert sorted(s.resources) == ["database", "module.net[eu].vpc"]
    assert done.records() == [{"from": "vpc", "to": "module.net[eu].vpc"}, {"from": "module.old.db", "to": "database"}]
    again = state("vpc", "module.old.db")
    replay_moves(again, done.records())
    assert sorted(again.resources) == sorted(s.resources)


def test_deposed_objects_move_too() -> None:
    s = state("web")
    s.add_deposed(DeposedObject.of(s.resources["web"], "abcd1234"))
    apply_moves(s, [move("web", "site")])
    assert [o.address for o in s.deposed_objects()] == ["site"]


def test_collisions_absent_sources_and_declared_sources() -> None:
    s = state("a", "b")
    with pytest.raises(ConfigError, match="b already exists in state") as info:
        apply_moves(s, [move("a", "b")])
    assert info.value.location == HERE
    assert sorted(s.resources) == ["a", "b"]  # nothing half-moved
    done = apply_moves(s, [move("gone", "c")])
    assert done.moved == {} and "nothing at gone in state" in done.notes[0]
    with pytest.raises(ConfigError, match="still declares a"):
        apply_moves(s, [move("a", "c")], planned=["a", "c"])
    with pytest.raises(ConfigError, match="stands for every key"):
        apply_moves(state("w[x]"), [move("w", "v[y]")])
    with pytest.raises(StalePlanError):
        replay_moves(state("b"), [{"from": "a", "to": "c"}])
