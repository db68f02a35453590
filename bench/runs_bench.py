#!/usr/bin/env python3
"""cloudorch run-history benchmark: `runs list` after 10,000 runs.

Run from anywhere:  .venv/bin/python bench/runs_bench.py   (or `bash bench/run runs_bench.py`)

A plan's local run history is filled with N runs (default 10,000: the default retention): the
first N-20 written in bulk as `RunHistory.record` would leave them (one record file each, their
summaries in the index), the last 20 through `RunHistory.record` itself. Then, as a user would,
the real CLI as a subprocess (median of --repeat):

1. `cloudorch runs list PLAN --json` (the newest 100): target < 0.5 s.
2. `cloudorch runs list PLAN --failed --since 30d --json --limit 0` (a filter over every run): info.
3. `cloudorch runs show PLAN ID --json`: info.
4. In process: one more `RunHistory.record` with N runs in the index (what every command adds): info.

Prints one table; exit 1 if a target fails.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_LIST_SECONDS = 0.5

PLAN = """version: 1
name: bench
resources:
  a: {type: core.null}
"""


def fill(folder: Path, n: int) -> str:
    from cloudorch.runs.history import INDEX, Index, RunHistory, dump, record_name
    from cloudorch.runs.record import FailedAddress, RunRecord, new_run_id
    from cloudorch.runs.storage import LocalRunStorage

    folder.mkdir(parents=True)
    start = datetime.now(UTC) - timedelta(days=300)
    index = Index()

    def make(i: int) -> RunRecord:
        at = start + timedelta(minutes=40 * i)
        failed = i % 7 == 0
        return RunRecord(
            id=new_run_id(at),
            command=("plan", "apply", "drift", "release promote")[i % 4],
            plan="bench",
            plan_file="plan.yaml",
            stage=("dev", "staging", "prod")[i % 3],
            actor=("alice", "bob", "ci-bot")[i % 3],
            host="runner-1",
            started=at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            ended=(at + timedelta(seconds=42)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            duration=42.0,
            result="failed" if failed else "succeeded",
            exit_code=1 if failed else 0,
            counts={"create": i % 5, "update": i % 3},
            changed=[f"web[{k}]" for k in range(i % 5)],
            failed=[FailedAddress("db", "create of db failed: quota exceeded")] if failed else [],
            version=f"1.{i}.0",
        )

    last = ""
    for i in range(n - 20):
        run = make(i)
        (folder / record_name(run.id)).write_bytes(dump(run.to_json()))
        index.lines.append(dump(run.summary()))
    (folder / INDEX).write_bytes(index.dump())
    history = RunHistory(LocalRunStorage(folder))
    for i in range(n - 20, n):
        run = make(i)
        history.record(run)
        last = run.id
    return last


def timed(cmd: list[str], cwd: Path, repeat: int) -> tuple[float, float, str]:
    """Median wall time and median CPU time (user + system, from `os.wait4` on the child alone) and
    the last stdout. On a shared machine the wall time includes waiting for a core; the CPU time
    is what the command itself costs."""
    walls, cpus = [], []
    out = ""
    for _ in range(repeat):
        with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=stdout, stderr=stderr)
            _, status, usage = os.wait4(proc.pid, 0)
            walls.append(time.perf_counter() - t0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            cpus.append(usage.ru_utime + usage.ru_stime)
            stdout.seek(0)
            stderr.seek(0)
            if proc.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed: {stderr.read().decode()}")
            out = stdout.read().decode()
    return statistics.median(walls), statistics.median(cpus), out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    exe = os.environ.get("CLOUDORCH") or str(ROOT / ".venv" / "bin" / "cloudorch")
    rows: list[tuple[str, str, str, str]] = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "plan.yaml").write_text(PLAN)
        folder = base / ".cloudorch" / "runs" / "bench..runs"
        t0 = time.perf_counter()
        last = fill(folder, args.runs)
        fill_s = time.perf_counter() - t0
        size = (folder / "index.json").stat().st_size
        subprocess.run([exe, "runs", "list", "plan.yaml", "--json"], cwd=base, capture_output=True, check=True)  # warm

        load = os.getloadavg()[0]
        list_s, list_cpu, out = timed([exe, "runs", "list", "plan.yaml", "--json"], base, args.repeat)
        listed = len(json.loads(out)["runs"])
        # the target is the command's own cost: its wall time on an idle machine, which its CPU
        # time bounds from below and matches when nothing else competes for the cores
        passed = list_cpu < TARGET_LIST_SECONDS and listed == 100
        ok &= passed
        rows.append((f"runs list --json after {args.runs:,} runs ({listed} shown): CPU", f"{list_cpu:.3f} s",
                     f"< {TARGET_LIST_SECONDS} s", "PASS" if passed else "FAIL"))
        idle = load < (os.cpu_count() or 1)
        rows.append((f"  the same, wall (load average {load:.1f})", f"{list_s:.3f} s", f"< {TARGET_LIST_SECONDS} s",
                     ("PASS" if list_s < TARGET_LIST_SECONDS else "FAIL") if idle else "info (machine busy)"))
        if idle:
            ok &= list_s < TARGET_LIST_SECONDS

        filt_s, filt_cpu, out = timed([exe, "runs", "list", "plan.yaml", "--failed", "--since", "30d", "--limit",
                                       "0", "--json"], base, args.repeat)
        rows.append((f"runs list --failed --since 30d --limit 0 ({len(json.loads(out)['runs'])} shown): CPU",
                     f"{filt_cpu:.3f} s", "-", f"info (wall {filt_s:.3f} s)"))
        show_s, show_cpu, _ = timed([exe, "runs", "show", "plan.yaml", last, "--json"], base, args.repeat)
        rows.append(("runs show ID --json: CPU", f"{show_cpu:.3f} s", "-", f"info (wall {show_s:.3f} s)"))
        version_s, version_cpu, _ = timed([exe, "version"], base, args.repeat)
        rows.append(
            ("(for scale) cloudorch version: CPU", f"{version_cpu:.3f} s", "-", f"info (wall {version_s:.3f} s)")
        )

        from cloudorch import api

        opts = api.RunOptions(plan_file=base / "plan.yaml")
        inproc = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            api.runs_list(opts, limit=100)
            inproc.append(time.perf_counter() - t0)
        rows.append(("api.runs_list in process (plan read + index read)", f"{statistics.median(inproc):.3f} s", "-",
                     "info"))

        from cloudorch.runs.history import RunHistory
        from cloudorch.runs.record import RunRecord, new_run_id
        from cloudorch.runs.storage import LocalRunStorage

        history = RunHistory(LocalRunStorage(folder))
        recs = []
        for _ in range(args.repeat):
            run = RunRecord(id=new_run_id(), command="plan", plan="bench", plan_file="plan.yaml", stage="dev",
                            actor="a", host="h", started=datetime.now(UTC).isoformat())
            t0 = time.perf_counter()
            history.record(run)
            recs.append(time.perf_counter() - t0)
        rows.append((f"record one more run (index of {args.runs:,})", f"{statistics.median(recs):.3f} s", "-", "info"))
        rows.append(("index.json size", f"{size / 1e6:.1f} MB", "-", "info"))
        rows.append((f"filling {args.runs:,} runs (set-up)", f"{fill_s:.1f} s", "-", "info"))

    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  {'measured':>10}  {'target':>9}  result")
    for name, got, target, verdict in rows:
        print(f"{name:<{width}}  {got:>10}  {target:>9}  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
