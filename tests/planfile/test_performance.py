"""A guard on load + expand + check_types time for a 5,000-resource plan (bench target: < 1.5 s).

The limit here is looser than the benchmark's so a busy CI machine does not flake; a real
regression (a per-resource regex compile, a deep copy per instance) costs far more.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cloudorch.planfile import check_types, expand, load_plan
from cloudorch.providers import Registry


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
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        plan = load_plan(path)
        instances = expand(plan)
        check_types(plan, registry, instances)
        best = min(best, time.perf_counter() - start)
    assert len(instances) == 5000
    assert instances[-1].depends_on == ["r4998", "r0"]
    assert best < 3.0, f"load + expand + check_types took {best:.2f} s"
