"""`moved:`: rename addresses in state, so a renamed resource (or for_each key, or module) keeps its object.

`apply_moves` renames records (and deposed objects, and the dependencies that name them) in an
in-memory state before refresh and diff, so the plan shows the object at its new address with
no destroy and no create. It calls no cloud. The changeset carries each address moved
(`ChangeSet.moves`), so a saved plan's apply renames exactly those (`replay_moves`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cloudorch.errors import ConfigError, StalePlanError
from cloudorch.planfile.addresses import Address, AddressError, parse_address
from cloudorch.planfile.blocks import Move
from cloudorch.state.model import State


@dataclass
class MoveResult:
    """Each state address moved (old -> new, in order) and notes on moves that had nothing to move."""

    moved: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def records(self) -> list[dict[str, str]]:
        return [{"from": a, "to": b} for a, b in self.moved.items()]


def _parsed(addresses: Iterable[str]) -> dict[str, Address]:
    out: dict[str, Address] = {}
    for a in addresses:
        try:
            out[a] = parse_address(a)
        except AddressError:
            continue  # not an address a move can name (a stage-prefixed one): never moved
    return out


def apply_moves(state: State, moves: Sequence[Move], planned: Iterable[str] = ()) -> MoveResult:
    """Rename what each move names in `state`, in order; located errors for a move that cannot be.

    `planned` holds the plan's instance addresses: a move whose source the plan still declares
    is an error (the object cannot be at both addresses).
    """
    result = MoveResult()
    declared = set(planned)
    for move in moves:
        src, dst = parse_address(move.src), parse_address(move.dst)
        current = _parsed([*state.resources, *state.deposed])
        hits = [a for a, parsed in current.items() if src.contains(parsed)]
        if not hits:
            result.notes.append(
                f"moved: nothing at {move.src} in state (already moved, or never created); "
                f"this entry changes nothing and can be removed once every state has moved"
            )
            continue
        renames: dict[str, str] = {}
        for a in hits:
            try:
                renames[a] = str(src.rebase(current[a], dst))
            except AddressError as exc:
                raise ConfigError(str(exc), location=move.location) from None
        still = sorted(a for a in hits if a in declared)
        if still:
            raise ConfigError(
                f"cannot move {move.src} to {move.dst}: the plan file still declares {', '.join(still)}",
                location=move.location,
                hint="remove (or rename) the old resource block, or this moved entry",
            )
        taken = sorted(
            b for b in renames.values() if b not in renames and (b in state.resources or b in state.deposed)
        )
        if taken:
            raise ConfigError(
                f"cannot move {move.src} to {move.dst}: {', '.join(taken)} already exists in state",
                location=move.location,
                hint="a move never overwrites an object: remove the other one first "
                "(`cloudorch state rm`) or move to a free address",
            )
        rename(state, renames)
        for a, b in renames.items():
            # a chain (a -> b, then b -> c) records a -> c
            origin = next((k for k, v in result.moved.items() if v == a), a)
            result.moved.pop(origin, None)
            result.moved[origin] = b
    return result


def rename(state: State, renames: Mapping[str, str]) -> None:
    """Rename records, deposed objects and the dependencies naming them, all at once."""
    if not renames:
        return
    resources = {}
    for address, rec in state.resources.items():
        new = renames.get(address, address)
        deps = [renames.get(d, d) for d in rec.dependencies]
        if new != address or deps != rec.dependencies:
            rec = rec.model_copy(update={"address": new, "dependencies": deps})
        resources[new] = rec
    state.resources = resources
    deposed = {}
    for address, objs in state.deposed.items():
        new = renames.get(address, address)
        deposed[new] = [
            o.model_copy(update={"address": new, "dependencies": [renames.get(d, d) for d in o.dependencies]})
            for o in objs
        ]
    state.deposed = deposed


def replay_moves(state: State, moved: Sequence[Mapping[str, str]]) -> None:
    """A saved plan's moves, renamed in `state` exactly as planned (the state is checked unchanged)."""
    renames = {m["from"]: m["to"] for m in moved}
    for a, b in renames.items():
        if a not in state.resources and a not in state.deposed:
            raise StalePlanError(f"the saved plan moves {a}, which is no longer in state", hint="plan again")
        if b not in renames and (b in state.resources or b in state.deposed):
            raise StalePlanError(f"the saved plan moves {a} to {b}, which is now taken", hint="plan again")
    rename(state, renames)
