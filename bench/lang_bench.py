#!/usr/bin/env python3
"""Plan language benchmark: what CEL expressions cost a large plan, against plain references.

Run from anywhere:  .venv/bin/python bench/lang_bench.py   [--repeat N] [--layers L --width W]

Two plans of L x W (default 50 x 100 = 5,000) `core.null` resources, identical in shape: each
resource reads a variable, its own index and one resource of the previous layer. In `plain`
every value is a plain reference or interpolation; in `expr` every resource also uses a
conditional and a function on each of those (`${var.prod ? 3 : 1}`, `${lower(var.prefix)}`,
`${var.prod ? resources.X.id : 'none'}`), and a local. Each plan is timed through the real CLI
(`cloudorch plan --json` from empty state, then a no-change `plan --json` after an apply), median
of --repeat runs; the target is expr / plain <= 1.3 for the plan from empty state. Exit 1 if
it fails.
"""

from __future__ import annotations

import argparse
import os
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


def run(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run([CLOUDORCH, *argv], cwd=cwd, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 2):
        tail = f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        sys.exit(f"`cloudorch {' '.join(argv)}` failed ({proc.returncode}):\n{tail}")
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--layers", type=int, default=50)
    ap.add_argument("--width", type=int, default=100)
    args = ap.parse_args()
    count = args.layers * args.width
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="lang-bench-") as tmp:
        for kind in ("plain", "expr"):
            folder = Path(tmp) / kind
            folder.mkdir()
            plan = folder / "plan.yaml"
            plan.write_text(yaml.safe_dump(plan_doc(kind, args.layers, args.width), sort_keys=False))
            run(["validate", str(plan)], folder)  # warm .pyc files and the page cache
            fresh = [run(["plan", str(plan), "--json"], folder) for _ in range(args.repeat)]
            run(["apply", str(plan), "--auto-approve", "--json"], folder)
            settled = [run(["plan", str(plan), "--json", "--detailed-exitcode"], folder) for _ in range(args.repeat)]
            results[kind] = {"fresh": statistics.median(fresh), "settled": statistics.median(settled)}
    ratio = results["expr"]["fresh"] / results["plain"]["fresh"]
    ratio_settled = results["expr"]["settled"] / results["plain"]["settled"]
    print(f"{count:,} core.null resources, median of {args.repeat} (wall time of `cloudorch plan --json`)")
    print(f"{'case':<34}{'plain':>10}{'expr':>10}{'ratio':>9}{'target':>9}")
    print(
        f"{'plan from empty state':<34}{results['plain']['fresh']:>9.2f}s{results['expr']['fresh']:>9.2f}s"
        f"{ratio:>9.2f}{TARGET:>9.2f}  {'PASS' if ratio <= TARGET else 'FAIL'}"
    )
    print(
        f"{'no-change plan after apply':<34}{results['plain']['settled']:>9.2f}s"
        f"{results['expr']['settled']:>9.2f}s{ratio_settled:>9.2f}{'':>9}  info"
    )
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
