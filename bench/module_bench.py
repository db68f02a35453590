#!/usr/bin/env python3
"""cloudorch module benchmark: a module used 500 times (5,000 core.null) against the same plan written flat.

Run from anywhere:  .venv/bin/python bench/module_bench.py   (or `bash bench/run module_bench.py`)

Both plans declare the same 5,000 `core.null` resources with the same values and the same
references (each resource of a group refers to the one before it and to a group input); the
module plan writes the group once in `modules/group/module.yaml` and uses it with `for_each`
over 500 keys. Each case runs the real CLI as a subprocess, `plan --json` from empty state (the
plan file is loaded, modules expanded, type-checked, graphed and planned) in a fresh directory;
the figure is the median wall time of `--repeat` runs. Target: module / flat <= 1.2.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CLOUDORCH = os.environ.get("CLOUDORCH", str(ROOT / ".venv" / "bin" / "cloudorch"))
TARGET = 1.2


def group_resources(prefix: str, cidr: str, name: str) -> dict[str, dict]:
    """The 10 resources of one group; `prefix` names them, `cidr`/`name` are the inputs' text."""
    res: dict[str, dict] = {}
    for j in range(10):
        values: dict[str, str] = {"name": f"{name}-r{j}", "cidr": cidr, "index": str(j)}
        if j:
            values["up"] = "${resources." + f"{prefix}r{j - 1}" + ".id}"
        res[f"{prefix}r{j}"] = {"type": "core.null", "properties": {"values": values}}
    return res


def write_cases(base: Path, groups: int) -> tuple[Path, Path]:
    keys = [f"g{i:03d}" for i in range(groups)]
    flat_dir = base / "flat"
    flat_dir.mkdir()
    resources: dict[str, dict] = {}
    for i, k in enumerate(keys):
        resources.update(group_resources(f"{k}_", f"10.{i % 250}.0.0/16", f"app-{k}"))
    flat = flat_dir / "plan.yaml"
    flat.write_text(yaml.safe_dump({"version": 1, "name": "flat", "resources": resources}, sort_keys=False))

    mod_dir = base / "module"
    (mod_dir / "modules" / "group").mkdir(parents=True)
    module = {
        "variables": {"cidr": {"type": "string"}, "name": {"type": "string"}},
        "resources": group_resources("", "${var.cidr}", "${var.name}"),
        "outputs": {"last": "${resources.r9.id}"},
    }
    (mod_dir / "modules" / "group" / "module.yaml").write_text(yaml.safe_dump(module, sort_keys=False))
    plan = {
        "version": 1,
        "name": "modular",
        "variables": {"groups": {"type": "map", "default": {k: f"10.{i % 250}.0.0/16" for i, k in enumerate(keys)}}},
        "modules": {
            "group": {
                "source": "./modules/group",
                "for_each": "${var.groups}",
                "inputs": {"cidr": "${each.value}", "name": "app-${each.key}"},
            }
        },
    }
    modular = mod_dir / "plan.yaml"
    modular.write_text(yaml.safe_dump(plan, sort_keys=False))
    return flat, modular


def run_plan(plan: Path) -> tuple[float, int]:
    state = plan.parent / ".cloudorch"
    if state.exists():
        import shutil

        shutil.rmtree(state)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [CLOUDORCH, "plan", str(plan), "--json"], cwd=plan.parent, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode not in (0, 2):
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"plan of {plan} failed with exit {proc.returncode}")
    doc = json.loads(proc.stdout)
    creates = sum(1 for c in doc.get("changes", []) if c.get("action") == "create")
    return elapsed, creates


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=500, help="module instances (10 resources each)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per case; the median counts")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="cloudorch-module-bench-"))
    flat, modular = write_cases(base, args.groups)
    run_plan(flat)  # warm the page cache and .pyc files
    times: dict[str, list[float]] = {"flat": [], "module": []}
    counts: dict[str, int] = {}
    for _ in range(args.repeat):  # interleaved, so load on the machine hits both alike
        for name, plan in (("flat", flat), ("module", modular)):
            elapsed, creates = run_plan(plan)
            times[name].append(elapsed)
            counts[name] = creates
    if counts["flat"] != counts["module"] or counts["flat"] != args.groups * 10:
        raise SystemExit(f"the two plans differ: {counts}")
    flat_s = statistics.median(times["flat"])
    mod_s = statistics.median(times["module"])
    ratio = mod_s / flat_s
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    total = counts["module"]
    print(f"module bench: {args.groups} instances x 10 core.null = {total} resources, plan --json from empty state")
    print(f"  flat    median {flat_s:6.2f} s  runs {', '.join(f'{t:.2f}' for t in times['flat'])}")
    print(f"  module  median {mod_s:6.2f} s  runs {', '.join(f'{t:.2f}' for t in times['module'])}")
    print(f"  ratio module/flat {ratio:.3f}  target <= {TARGET}  {verdict}")
    if args.keep:
        print(f"  kept {base}")
    else:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
