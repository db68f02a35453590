#!/usr/bin/env python3
"""cloudorch rollback benchmark: time to undo a failed 500-resource apply, as a ratio of the apply.

Run from anywhere:  .venv/bin/python bench/rollback_bench.py   (or `bash bench/run`)

A seeded plan of 500 `core.wait` resources in 10 layers of 50 (each depending on one or two of
the layer before) ends in a `core.null` with `fail_on_create: true` that depends on the last
layer, so all 500 operations finish before the failure. `apply --on-failure=rollback --json`
runs as a subprocess; the apply's own seconds and the undo's seconds come from its JSON (both
measured inside the same process, same machine, same moment). Target: undo / apply <= 1.2.
A second case with instant `core.null` resources shows the engine's own undo overhead (info).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261126
TARGET_RATIO = 1.2
ROLLBACK = ("--on-failure=rollback",)


def make_plan(kind: str, layers: int, width: int, seconds: float) -> dict:
    rng = random.Random(SEED)
    resources: dict[str, dict] = {}
    for layer in range(layers):
        for i in range(width):
            name = f"r{layer}_{i}"
            props = {"seconds": seconds} if kind == "core.wait" else {"values": {"n": name}}
            res: dict = {"type": kind, "properties": props}
            if layer:
                res["depends_on"] = sorted({f"r{layer - 1}_{rng.randrange(width)}" for _ in range(rng.randint(1, 2))})
            resources[name] = res
    resources["boom"] = {
        "type": "core.null",
        "properties": {"fail_on_create": True},
        "depends_on": [f"r{layers - 1}_{i}" for i in range(width)],
    }
    return {"version": 1, "name": "rollbench", "resources": resources}


def run_case(kind: str, seconds: float) -> tuple[float, float, int, bool]:
    with tempfile.TemporaryDirectory(prefix="cloudorch-rollback-bench-") as tmp:
        plan = Path(tmp) / "plan.yaml"
        plan.write_text(yaml.safe_dump(make_plan(kind, 10, 50, seconds)))
        proc = subprocess.run(
            [sys.executable, "-m", "cloudorch", "apply", str(plan), "--auto-approve", "--json", *ROLLBACK],
            cwd=tmp,
            env={**os.environ, "NO_COLOR": "1"},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 1 or not proc.stdout.strip():
            raise SystemExit(f"unexpected exit {proc.returncode}: {proc.stderr[-2000:]}")
        result = json.loads(proc.stdout)["result"]
        undo = result["rolled_back"]
        state = json.loads(
            subprocess.run(
                [sys.executable, "-m", "cloudorch", "state", "list", str(plan), "--json"],
                cwd=tmp,
                capture_output=True,
                text=True,
            ).stdout
        )["resources"]
        return float(result["seconds"]), float(undo["seconds"]), len(undo["undone"]), undo["complete"] and not state


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wait", type=float, default=0.2, help="seconds per core.wait (default 0.2)")
    args = ap.parse_args()
    ok = True
    print(f"{'case':<34} {'apply s':>8} {'undo s':>8} {'undone':>7} {'ratio':>6}  target")
    for label, kind, secs, targeted in (
        (f"500 core.wait ({args.wait}s), 10 layers", "core.wait", args.wait, True),
        ("500 core.null (instant), 10 layers", "core.null", 0.0, False),
    ):
        apply_s, undo_s, undone, clean = run_case(kind, secs)
        ratio = undo_s / apply_s if apply_s else float("inf")
        verdict = ("PASS" if ratio <= TARGET_RATIO and clean and undone == 500 else "FAIL") if targeted else "info"
        ok &= verdict != "FAIL"
        print(
            f"{label:<34} {apply_s:8.2f} {undo_s:8.2f} {undone:7d} {ratio:6.2f}  "
            f"{'<= ' + str(TARGET_RATIO) if targeted else '-'} {verdict}"
            + ("" if clean else "  (state not empty after the rollback!)")
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
