"""The canonical text a state's checksum is computed over: written a resource at a time, it must be
exactly the sorted, compact JSON of the whole dump, or every stored checksum would stop matching."""

from __future__ import annotations

import json

from cloudorch.state.model import DeposedObject, ResourceRecord, State, StateEvent, sensitive_marker
from cloudorch.state.statefile import decode_state, encode_state


def _whole(state: State) -> str:
    return json.dumps(state.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def _state() -> State:
    records = {
        # inserted out of order, names that sort differently by code point than by eye
        address: ResourceRecord(
            address=address,
            type="core.null",
            provider="core",
            id=f"id-{address}",
            properties={"values": {"z": 1, "a": [3, {"y": None, "b": 2.5}]}, "secret": sensitive_marker("s3cr3t!")},
            attributes={"id": f"id-{address}", "é": "\u2028 \x1b line", "n": 10**20},
            dependencies=["b", "a"],
            sensitive=["secret"],
            tainted=address == "B",
        )
        for address in ('web["b"]', "b", "B", "a_1", "a", "Z", "é")
    }
    deposed = DeposedObject(address="b", key="0a1b2c3d", type="core.null", provider="core", id="old-b")
    return State(
        plan_name="p",
        resources=records,
        deposed={"b": [deposed]},
        outputs={"url": {"value": "x", "sensitive": False}},
        events=[StateEvent(kind="apply", detail={"ok": True})],
    )


def test_canonical_json_is_the_sorted_compact_dump_of_the_whole_state() -> None:
    state = _state()
    assert state.canonical_json() == _whole(state)
    empty = State()
    assert empty.canonical_json() == _whole(empty)


def test_a_state_written_and_read_back_keeps_its_checksum() -> None:
    state = _state()
    data, header = encode_state(state)
    again = decode_state(data, "test")
    assert again.canonical_json() == state.canonical_json()
    assert header.checksum == again.checksum()
