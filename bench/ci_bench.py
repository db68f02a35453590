#!/usr/bin/env python3
"""cloudorch CI/sandbox benchmark: `--help` with shell completion on and off, and the sandbox's costs.

Run from anywhere:  .venv/bin/python bench/ci_bench.py   (or `bash bench/run ci_bench.py`)

Figures (real CLI, subprocesses, in a fresh temporary directory):
- `cloudorch --help` wall time, median of N, with typer's completion options on (as shipped) and
  off (typer's `_add_completion` flipped before the app runs); target ≤ 0.35 s, and the ratio on/off.
- `sandbox up` from cold (four emulators), `sandbox up` again (reuse), `sandbox down`.
- `apply plans/multi-cloud.yaml --sandbox --auto-approve` and `destroy --sandbox` on the running sandbox.
Prints one table; exits 1 if a target fails.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
HELP_TARGET = 0.35
HELP_ON = "import sys; from cloudorch.cli import main; sys.exit(main(['--help']))"
HELP_OFF = (
    "import sys; from cloudorch.cli import common; common.app._add_completion = False; "
    "from cloudorch.cli import main; sys.exit(main(['--help']))"
)


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    return run(argv, cwd, env)[0]


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child): CPU is what a loaded shared machine disturbs least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=9, help="runs per --help variant (median)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cloudorch-ci-bench-"))
    env = {**os.environ, "CLOUDORCH_SANDBOX_DIR": str(tmp / "sandbox"), "CI": "true"}
    rows: list[tuple[str, float, str, str]] = []
    try:
        on: list[tuple[float, float]] = []
        off: list[tuple[float, float]] = []
        for _ in range(args.repeat):  # interleaved, so machine noise hits both variants alike
            on.append(run([PY, "-c", HELP_ON], tmp, env))
            off.append(run([PY, "-c", HELP_OFF], tmp, env))
        med_on = statistics.median(w for w, _ in on)
        med_off = statistics.median(w for w, _ in off)
        cpu_on = statistics.median(c for _, c in on)
        cpu_off = statistics.median(c for _, c in off)
        rows.append(("--help, completion on (shipped)", med_on, f"≤ {HELP_TARGET}", _verdict(med_on <= HELP_TARGET)))
        rows.append(("--help, completion off", med_off, "", "info"))
        rows.append(("--help CPU, completion on", cpu_on, "", "info"))
        rows.append(("--help CPU, completion off", cpu_off, "", "info"))
        rows.append(("ratio on / off (wall)", med_on / med_off, "", "info"))
        rows.append(("ratio on / off (CPU)", cpu_on / cpu_off, "", "info"))

        co = [PY, "-m", "cloudorch"]
        rows.append(("sandbox up (cold, 4 emulators)", timed([*co, "sandbox", "up"], tmp, env), "", "info"))
        rows.append(("sandbox up (already running)", timed([*co, "sandbox", "up"], tmp, env), "", "info"))
        plan = tmp / "multi-cloud.yaml"
        shutil.copy(ROOT / "plans" / "multi-cloud.yaml", plan)
        rows.append(
            (
                "apply multi-cloud --sandbox",
                timed([*co, "apply", str(plan), "--stage", "dev", "--sandbox", "--auto-approve"], tmp, env),
                "",
                "info",
            )
        )
        rows.append(
            (
                "destroy multi-cloud --sandbox",
                timed([*co, "destroy", str(plan), "--stage", "dev", "--sandbox", "--auto-approve"], tmp, env),
                "",
                "info",
            )
        )
        rows.append(("sandbox down", timed([*co, "sandbox", "down"], tmp, env), "", "info"))
    finally:
        subprocess.run([PY, "-m", "cloudorch", "sandbox", "down"], cwd=tmp, env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"{'figure':<36} {'seconds':>8}  {'target':<8} result")
    print(f"{'-' * 36} {'-' * 8}  {'-' * 8} ------")
    for name, value, target, verdict in rows:
        print(f"{name:<36} {value:8.3f}  {target:<8} {verdict}")
    return 1 if any(r[3] == "FAIL" for r in rows) else 0


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


if __name__ == "__main__":
    sys.exit(main())
