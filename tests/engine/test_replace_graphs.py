"""Random graphs of replaced, updated and deleted `core.null` resources, some create-before-destroy:
every apply finishes (no cycle in the operation graph), leaves no deposed object, every reference
names the object that exists, and a re-plan shows no changes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cloudorch import api


def _plan(nodes: dict[str, tuple[list[str], str, bool]]) -> str:
    lines = ["version: 1", "name: graphs", "resources:"]
    for name, (deps, gen, cbd) in nodes.items():
        values = ", ".join(f'{d}: "${{resources.{d}.id}}"' for d in deps)
        lines += [
            f"  {name}:",
            "    type: core.null",
            f'    properties: {{triggers: {{gen: "{gen}"}}, values: {{{values}}}}}',
        ]
        if cbd:
            lines.append("    lifecycle: {create_before_destroy: true}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(12))
def test_random_replacements_apply_in_a_consistent_order(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    names = [f"r{i}" for i in range(14)]
    nodes = {
        n: (sorted(rng.sample(names[:i], k=min(i, rng.randint(0, 3)))), "1", rng.random() < 0.4)
        for i, n in enumerate(names)
    }
    plan = tmp_path / "graphs.yaml"
    plan.write_text(_plan(nodes))
    opts = api.RunOptions(plan_file=plan)
    first = api.apply(opts)
    assert first is not None and first.ok
    for _round in range(2):
        # replace some, flip create_before_destroy on some, drop some with everything that uses them
        edited = {
            n: (deps, str(int(gen) + 1) if rng.random() < 0.4 else gen, cbd ^ (rng.random() < 0.2))
            for n, (deps, gen, cbd) in nodes.items()
        }
        dropped = {n for n in edited if rng.random() < 0.1}
        changed = True
        while changed:
            changed = False
            for n, (deps, _, _) in edited.items():
                if n not in dropped and dropped & set(deps):
                    dropped.add(n)
                    changed = True
        nodes = {n: v for n, v in edited.items() if n not in dropped}
        plan.write_text(_plan(nodes))
        result = api.apply(opts)
        assert result is not None and result.ok, result.failed if result else None
        state = result.state
        assert state.deposed == {}
        assert sorted(state.resources) == sorted(nodes)
        for n, (deps, gen, _) in nodes.items():
            rec = state.resources[n]
            assert rec.properties["triggers"] == {"gen": gen}
            for d in deps:
                assert rec.properties["values"][d] == state.resources[d].id  # never a deleted object
        again = api.plan(opts)
        assert not again.has_changes
