#!/usr/bin/env python3
"""Plan language benchmark: what CEL expressions cost a large plan, against plain references.

Run from anywhere:  .venv/bin/python bench/lang_bench.py   [--repeat N] [--layers L --width W]

Two plans of L x W (default 50 x 100 = 5,000) `core.null` resources, identical in shape: each
resource reads a variable, its own index and one resource of the previous layer. In `plain`
every value is a plain reference or interpolation; in `expr` every resource also uses a
conditional and a function on each of those (`${var.prod ? 3 : 1}`, `${lower(var.prefix)}`,
`${var.prod ? resources.X.id : 'none'}`), and a local. Each plan is timed through the real CLI
(`cloudorch plan --json` from empty state, then a no-change `plan --json` after an apply), the two
taking turns, median of --repeat runs. Both the CPU time (user + system of the process) and the
wall time are shown; the target, expr / plain <= 1.3 for the plan from empty state, is judged on
CPU time, the work done, because on a shared 2-core machine the wall time mostly measures the
other processes (the planning is CPU-bound: on an idle machine the two agree). Exit 1 if it fails.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CLOUDORCH = os.environ.get("CLOUDORCH", str(ROOT / ".venv" / "bin" / "cloudorch"))
TARGET = 1.3


def plan_doc(kind: str, layers: int, width: int) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for layer in range(layers):
        for i in range(width):
            name = f"l{layer:02d}_r{i:03d}"
            up = f"l{layer - 1:02d}_r{(i * 7) % width:03d}" if layer else None
            if kind == "plain":
                values: dict[str, Any] = {
                    "name": f"${{var.prefix}}-{name}",
                    "replicas": "${var.replicas}",
                    "team": "${var.team}",
                }
                if up:
                    values["up"] = f"${{resources.{up}.id}}"
            else:
                values = {
                    "name": f"${{lower(var.prefix)}}-{name}",
                    "replicas": "${var.prod ? 3 : 1}",
                    "team": "${local.team}",
                }
                if up:
                    values["up"] = f"${{var.prod ? resources.{up}.id : 'none'}}"
            resources[name] = {"type": "core.null", "properties": {"values": values}}
    doc: dict[str, Any] = {
        "version": 1,
        "name": f"lang-{kind}",
        "variables": {
            "prefix": {"type": "string", "default": "Shop"},
            "replicas": {"type": "number", "default": 3},
            "prod": {"type": "bool", "default": True},
            "team": {"type": "string", "default": "web"},
        },
        "resources": resources,
    }
    if kind == "expr":
        doc["locals"] = {"team": "${upper(var.team)}"}
    return doc


def run(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the process and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([CLOUDORCH, *argv], cwd=cwd, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 2):
        tail = f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        sys.exit(f"`cloudorch {' '.join(argv)}` failed ({proc.returncode}):\n{tail}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--layers", type=int, default=50)
    ap.add_argument("--width", type=int, default=100)
    args = ap.parse_args()
    count = args.layers * args.width
    walls: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="lang-bench-") as tmp:
        plans: dict[str, Path] = {}
        for kind in ("plain", "expr"):
            folder = Path(tmp) / kind
            folder.mkdir()
            plans[kind] = folder / "plan.yaml"
            plans[kind].write_text(yaml.safe_dump(plan_doc(kind, args.layers, args.width), sort_keys=False))
            run(["validate", str(plans[kind])], folder)  # warm .pyc files and the page cache

        def measure(case: str, argv: list[str]) -> None:
            # the two plans take turns, so a busy moment of the machine falls on both
            for _ in range(args.repeat):
                for kind in ("plain", "expr"):
                    wall, cpu = run([argv[0], str(plans[kind]), *argv[1:]], plans[kind].parent)
                    walls.setdefault((case, kind), []).append(wall)
                    cpus.setdefault((case, kind), []).append(cpu)

        measure("fresh", ["plan", "--json"])
        for kind in ("plain", "expr"):
            run(["apply", str(plans[kind]), "--auto-approve", "--json"], plans[kind].parent)
        measure("settled", ["plan", "--json", "--detailed-exitcode"])

    def med(table: dict[tuple[str, str], list[float]], case: str, kind: str) -> float:
        return statistics.median(table[(case, kind)])

    print(f"{count:,} core.null resources, `cloudorch plan --json`, median of {args.repeat} (plans taking turns)")
    print(f"{'case':<40}{'plain':>9}{'expr':>9}{'ratio':>8}{'target':>8}")
    verdict = True
    for case, label in (("fresh", "plan from empty state"), ("settled", "no-change plan after apply")):
        for table, unit in ((cpus, "CPU"), (walls, "wall")):
            plain, expr = med(table, case, "plain"), med(table, case, "expr")
            ratio = expr / plain
            judged = case == "fresh" and unit == "CPU"
            verdict = verdict and (ratio <= TARGET or not judged)
            mark = ("PASS" if ratio <= TARGET else "FAIL") if judged else "info"
            target = f"{TARGET:.2f}" if judged else ""
            print(f"{label + ' (' + unit + ')':<40}{plain:>8.2f}s{expr:>8.2f}s{ratio:>8.2f}{target:>8}  {mark}")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
