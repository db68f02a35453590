"""The order of a fleet: stack B runs after stack A when B reads A's outputs (`${stacks.*}`).

Selection keeps that order honest: `--target-stack` brings the stacks that depend on the target
(they read what it changes), `--exclude-stack` drops a stack and what depends on it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path

from cloudorch.errors import ConfigError
from cloudorch.fleet.discover import Fleet, Stack


def edges(fleet: Fleet) -> dict[str, set[str]]:
    """stack -> the stacks of this fleet it reads (its upstream)."""
    by_plan: dict[tuple[Path, str | None], str] = {(s.plan_file, s.stage): s.name for s in fleet.stacks}
    plain: dict[Path, list[str]] = {}
    for s in fleet.stacks:
        plain.setdefault(s.plan_file, []).append(s.name)
    out: dict[str, set[str]] = {s.name: set() for s in fleet.stacks}
    for s in fleet.stacks:
        for plan, stage in s.reads:
            if (plan, stage) in by_plan:
                out[s.name].add(by_plan[(plan, stage)])
            elif stage is None and plan in plain:
                out[s.name].update(plain[plan])
            # a stack outside the fleet is read from its state as it is: no edge
        out[s.name].discard(s.name)
    return out


def downstream(ups: dict[str, set[str]]) -> dict[str, set[str]]:
    down: dict[str, set[str]] = {n: set() for n in ups}
    for n, deps in ups.items():
        for d in deps:
            down[d].add(n)
    return down


def order(fleet: Fleet) -> list[list[str]]:
    """Layers of stack names: each layer reads only earlier layers. A cycle is an error."""
    ups = edges(fleet)
    left = {n: set(d) for n, d in ups.items()}
    layers: list[list[str]] = []
    while left:
        ready = sorted(n for n, d in left.items() if not d)
        if not ready:
            cycle = " -> ".join(sorted(left))
            raise ConfigError(
                f"the fleet's stacks read each other in a cycle ({cycle})",
                hint="cross-stack references must form a chain: move the shared outputs into one stack",
            )
        layers.append(ready)
        for n in ready:
            del left[n]
        for d in left.values():
            d.difference_update(ready)
    return layers


def _matches(stack: Stack, pattern: str) -> bool:
    return fnmatch.fnmatchcase(stack.name, pattern) or fnmatch.fnmatchcase(stack.plan_file.stem, pattern)


def select(
    fleet: Fleet,
    *,
    stage: str | None = None,
    tags: Sequence[str] = (),
    targets: Sequence[str] = (),
    excludes: Sequence[str] = (),
) -> Fleet:
    """The stacks to run: by stage and tag, `targets` with their dependents, minus `excludes` and theirs."""
    stacks = list(fleet.stacks)
    if stage is not None:
        stacks = [s for s in stacks if s.stage == stage]
        if not stacks:
            raise ConfigError(f"no stack of this fleet has stage {stage!r}", hint="check --stage")
    if tags:
        stacks = [s for s in stacks if set(tags) & set(s.tags)]
    kept = Fleet(stacks, fleet.limits)
    down = downstream(edges(kept))
    names = {s.name for s in stacks}

    def closure(patterns: Sequence[str], flag: str) -> set[str]:
        hit = {s.name for s in stacks if any(_matches(s, p) for p in patterns)}
        missing = [p for p in patterns if not any(_matches(s, p) for s in stacks)]
        if missing:
            raise ConfigError(
                f"{flag} {missing[0]}: no stack of this fleet matches", hint="see `cloudorch fleet status`"
            )
        todo = list(hit)
        while todo:
            for d in down[todo.pop()]:
                if d not in hit:
                    hit.add(d)
                    todo.append(d)
        return hit

    if targets:
        names &= closure(targets, "--target-stack")
    if excludes:
        names -= closure(excludes, "--exclude-stack")
    return Fleet([s for s in stacks if s.name in names], fleet.limits)
