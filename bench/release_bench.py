#!/usr/bin/env python3
"""cloudorch release benchmark: what promotion costs on top of a plain apply, and a long history.

Run from anywhere:  .venv/bin/python bench/release_bench.py   (or `bash bench/run`)

1. A plan of N `core.null` resources in three stages. The same version change (every resource
   updated) is applied to one stage with `apply --stage` and promoted into its twin stage with
   `release promote` (gates: policy, approval, soak); the figure is promote time / apply time,
   measured in this run, in process, median of --repeat runs.
2. A release ledger with E events (deploys, approvals, refusals across three stages): the time
   `release status` and `release history` take to read and summarise it.

Prints one table against the targets; exit 1 if a target fails. The clock is moved with the
CLOUDORCH_NOW test hook, so soak gates pass without waiting.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_PROMOTE_RATIO = 2.0  # promote (gates + ledger + apply) <= 2x a plain apply of the same changes
TARGET_STATUS_SECONDS = 1.0  # status over a 5,000-event ledger
TARGET_HISTORY_SECONDS = 1.0


def plan_text(n: int) -> str:
    lines = [
        "version: 1",
        "name: bench",
        "variables: {version: {type: string, default: '0'}}",
        "stages:",
        "  dev: {vars: {env: dev}}",
        "  applied: {needs: dev, vars: {env: a}}",
        "  promoted:",
        "    needs: dev",
        "    vars: {env: p}",
        "    gates: [{policy: all}, {approval: {min: 1, from: [ann]}}, {soak: 1m}]",
        "release: {version: '${var.version}'}",
        "policies:",
        "  - {id: env-set, rule: max_changes, level: mandatory, limits: {delete: 0}}",
        "resources:",
    ]
    for i in range(n):
        lines.append(
            f"  r{i}: {{type: core.null, properties: "
            "{values: {v: '${release.version}', e: '${stage.vars.env}'}}}"
        )
    return "\n".join(lines) + "\n"


def _opts(plan: Path, **kw: object) -> object:
    from cloudorch.api import RunOptions

    return RunOptions(plan_file=plan, command="cloudorch bench", **kw)  # type: ignore[arg-type]


def promote_vs_apply(n: int, repeat: int) -> tuple[float, float]:
    from dataclasses import replace

    from cloudorch import api
    from cloudorch.release import promotion

    applied: list[float] = []
    promoted: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        plan = Path(tmp) / "plan.yaml"
        plan.write_text(plan_text(n))
        base = _opts(plan)
        minute = 0

        def at(step: int) -> None:
            os.environ["CLOUDORCH_NOW"] = f"2026-11-23T{10 + step // 60:02d}:{step % 60:02d}:00Z"

        for r in range(repeat + 1):
            version = f"1.0.{r}"
            at(minute)
            promotion.deploy(replace(base, stage="dev"), version)  # type: ignore[type-var]
            minute += 2
            at(minute)
            os.environ["CLOUDORCH_ACTOR"] = "ann"
            promotion.approve(replace(base, stage="promoted"), version)  # type: ignore[type-var]
            t0 = time.perf_counter()
            api.apply(replace(base, stage="applied", vars={"version": version}, release_version=version))  # type: ignore[type-var]
            t1 = time.perf_counter()
            out = promotion.promote(base, "promoted", version=version)  # type: ignore[arg-type]
            t2 = time.perf_counter()
            assert out.ok, out.denied
            if r > 0:  # the first round creates everything; later rounds update every resource
                applied.append(t1 - t0)
                promoted.append(t2 - t1)
    return statistics.median(applied), statistics.median(promoted)


def long_history(events: int) -> tuple[float, float]:
    from cloudorch import api
    from cloudorch.clock import parse_iso
    from cloudorch.release import ledger as L
    from cloudorch.release import promotion

    with tempfile.TemporaryDirectory() as tmp:
        plan = Path(tmp) / "plan.yaml"
        plan.write_text(plan_text(2))
        opts = _opts(plan)
        rel = promotion.open_release(opts)  # type: ignore[arg-type]
        start = parse_iso("2026-01-01T00:00:00Z")
        batch = []
        for i in range(events):
            version = f"2.{i // 10}.0"
            stage = ("dev", "applied", "promoted")[i % 3]
            kind = (L.DEPLOY, L.APPROVE, L.REFUSED, L.PROMOTE)[i % 4]
            batch.append(
                L.event(kind, actor=f"user{i % 7}", at=start, stage=stage, version=version, reason="bench", ok=True)
            )
        rel.store.append(batch, command="bench")
        os.environ["CLOUDORCH_NOW"] = "2026-06-01T00:00:00Z"
        t0 = time.perf_counter()
        api.release_status(opts)  # type: ignore[arg-type]
        t1 = time.perf_counter()
        got = api.release_history(opts)  # type: ignore[arg-type]
        t2 = time.perf_counter()
        assert len(got) == events
    return t1 - t0, t2 - t1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resources", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--events", type=int, default=5000)
    args = ap.parse_args()
    os.environ.setdefault("NO_COLOR", "1")

    apply_s, promote_s = promote_vs_apply(args.resources, args.repeat)
    ratio = promote_s / apply_s
    status_s, history_s = long_history(args.events)
    cpu = time.process_time()

    rows = [
        (f"apply --stage, {args.resources} updates", f"{apply_s:.3f} s", "", ""),
        (f"release promote, {args.resources} updates", f"{promote_s:.3f} s", "", ""),
        ("promote / apply", f"{ratio:.2f}x", f"<= {TARGET_PROMOTE_RATIO:.1f}x", ratio <= TARGET_PROMOTE_RATIO),
        (
            f"release status, {args.events} events",
            f"{status_s:.3f} s",
            f"<= {TARGET_STATUS_SECONDS:.1f} s",
            status_s <= TARGET_STATUS_SECONDS,
        ),
        (
            f"release history, {args.events} events",
            f"{history_s:.3f} s",
            f"<= {TARGET_HISTORY_SECONDS:.1f} s",
            history_s <= TARGET_HISTORY_SECONDS,
        ),
    ]
    print(f"{'figure':<40} {'value':>10}  {'target':<10} result")
    failed = False
    for name, value, target, ok in rows:
        verdict = "" if target == "" else ("PASS" if ok else "FAIL")
        failed = failed or verdict == "FAIL"
        print(f"{name:<40} {value:>10}  {target:<10} {verdict}")
    print(f"(CPU seconds used by this process: {cpu:.1f})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
