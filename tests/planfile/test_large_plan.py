"""A 5,000-resource plan loads, expands and type-checks correctly.

Its speed is measured by `bench/core_bench.py`, not asserted here: timed tests flake on a
busy machine and say nothing a benchmark does not.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cloudorch.planfile import check_types, expand, load_plan
from cloudorch.provider.registry import Registry


def big_plan(n: int) -> str:
    lines = ["version: 1", "variables:", "  prefix: {type: string, default: bench}", "resources:"]
    for i in range(n):
        lines += [
            f"  r{i}:",
            "    type: core.null",
            "    properties:",
            "      values:",
            f'        name: "${{var.prefix}}-{i}"',
            f'        parent: "${{resources.r{max(i - 1, 0)}.id}}"' if i else "        parent: none",
            '        root: "${resources.r0.values}"' if i else "        root: none",
        ]
    return "\n".join(lines) + "\n"


def test_five_thousand_resources(write_plan: Callable[..., Path], registry: Registry) -> None:
    path = write_plan(big_plan(5000))
    plan = load_plan(path)
    instances = expand(plan)
    check_types(plan, registry, instances)
    assert len(instances) == 5000
    assert instances[-1].depends_on == ["r4998", "r0"]
