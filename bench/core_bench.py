#!/usr/bin/env python3
"""cloudorch foundation benchmark: engine overhead, makespan, scheduling quality, CLI start-up.

Run from anywhere:  .venv/bin/python bench/core_bench.py   (or `bash bench/run`)

Every case generates its plan file (fixed seed) into a fresh temporary directory and runs the
real CLI there as a subprocess, so state lands in `<tmp>/<case>/.cloudorch/`. The figures are
printed as one table against the targets (PASS/FAIL); the exit status is 1 if any target fails.
Limits are ratios of a figure measured in this same run to its target, so a noisy machine moves
both sides together where it can (the makespan targets are relative to the critical path).

See bench/README.md for what each figure means and how it is measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
SEED = 20260101
WAIT = 0.2  # seconds per core.wait resource
MB = 1024 * 1024

# Modules that must stay out of `cloudorch --help` (prefix match on the top-level package).
FORBIDDEN_AT_HELP = ("regopy", "boto3", "botocore", "azure", "google")
# Also reported (not a target) if they show up, because they are slow to import.
HEAVY_INFO = ("pydantic", "rich", "yaml", "typer", "jsonschema", "moto", "requests", "urllib3", "s3transfer")


# --------------------------------------------------------------------------- plan generation


def plan_doc(name: str, resources: dict[str, dict]) -> dict:
    return {"version": 1, "name": name, "resources": resources}


def null_res(values: dict, depends_on: list[str] | None = None) -> dict:
    r: dict = {"type": "core.null", "properties": {"values": values}}
    if depends_on:
        r["depends_on"] = depends_on
    return r


def wait_res(depends_on: list[str] | None = None) -> dict:
    r: dict = {"type": "core.wait", "properties": {"seconds": WAIT}}
    if depends_on:
        r["depends_on"] = depends_on
    return r


def layered(layers: int, width: int, kind: str, rng: random.Random) -> dict[str, dict]:
    """L layers x W; each resource depends on 2 random resources of the previous layer.

    core.null resources also carry a reference to one of those deps, so the reference resolver
    and implicit edges are exercised (explicit depends_on + `${resources.X.id}`).
    """
    res: dict[str, dict] = {}
    prev: list[str] = []
    for layer in range(layers):
        cur = []
        for i in range(width):
            name = f"l{layer:02d}_r{i:03d}"
            deps = sorted(rng.sample(prev, 2)) if prev else []
            if kind == "null":
                values = {"k": f"v{layer}_{i}"}
                if deps:
                    values["up"] = "${resources." + rng.choice(deps) + ".id}"
                res[name] = null_res(values, deps)
            else:
                res[name] = wait_res(deps)
            cur.append(name)
        prev = cur
    return res


def wide(n: int, kind: str) -> dict[str, dict]:
    if kind == "null":
        return {f"w{i:04d}": null_res({"k": f"v{i}"}) for i in range(n)}
    return {f"w{i:04d}": wait_res() for i in range(n)}


def chain(n: int, kind: str, prefix: str = "c") -> dict[str, dict]:
    res: dict[str, dict] = {}
    prev = None
    for i in range(n):
        name = f"{prefix}{i:04d}"
        deps = [prev] if prev else None
        if kind == "null":
            values = {"k": f"v{i}"}
            if prev:
                values["up"] = "${resources." + prev + ".id}"
            res[name] = null_res(values, deps)
        else:
            res[name] = wait_res(deps)
        prev = name
    return res


def write_plan(case_dir: Path, doc: dict) -> Path:
    case_dir.mkdir(parents=True, exist_ok=True)
    path = case_dir / "plan.yaml"
    try:
        import yaml

        text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=200)
    except ImportError:  # JSON is YAML
        text = json.dumps(doc, indent=1)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- running the CLI


@dataclass
class Run:
    argv: list[str]
    rc: int
    wall: float
    maxrss_kb: int
    cpu: float  # user + system seconds of the child: what a loaded machine does not inflate
    io: dict[str, int]
    stdout: str
    stderr: str
    stdout_bytes: int
    stderr_bytes: int

    def json(self) -> dict:
        try:
            return json.loads(self.stdout)
        except ValueError:
            return {}


def run_cli(
    argv: list[str], cwd: Path, timeout: float = 600.0, keep_stdout: bool = True, env: dict[str, str] | None = None
) -> Run:
    """Run one command; return wall time, the child's own peak RSS (wait4) and /proc/<pid>/io.

    stdout/stderr go to regular files (not pipes) so the child never blocks on us and so their
    sizes can be subtracted from the child's `wchar` exactly. /proc/<pid>/io is read after the
    child exits but before it is reaped (waitid WNOWAIT), so it holds the final counters for
    all of the child's threads.
    """
    out_path = cwd / f".bench-stdout-{os.getpid()}"
    err_path = cwd / f".bench-stderr-{os.getpid()}"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        deadline = t0 + timeout
        while True:
            info = os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if info is not None:
                break
            if time.perf_counter() > deadline:
                p.kill()
            time.sleep(0.002)
        wall = time.perf_counter() - t0
        io: dict[str, int] = {}
        try:
            for line in Path(f"/proc/{p.pid}/io").read_text().splitlines():
                k, _, v = line.partition(":")
                io[k.strip()] = int(v)
        except OSError:
            pass
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text(errors="replace") if keep_stdout else ""
    stderr = err_path.read_text(errors="replace")
    run = Run(
        argv=argv,
        rc=p.returncode,
        wall=wall,
        maxrss_kb=ru.ru_maxrss,
        cpu=ru.ru_utime + ru.ru_stime,
        io=io,
        stdout=stdout,
        stderr=stderr,
        stdout_bytes=out_path.stat().st_size,
        stderr_bytes=err_path.stat().st_size,
    )
    out_path.unlink()
    err_path.unlink()
    return run


def cloudorch_bin() -> str:
    return os.environ.get("CLOUDORCH") or str(VENV_BIN / "cloudorch")


def python_bin() -> str:
    return os.environ.get("CLOUDORCH_PYTHON") or str(VENV_BIN / "python")


def apply_cmd(plan: Path, *extra: str) -> list[str]:
    return [cloudorch_bin(), "apply", str(plan), "--auto-approve", "--json", *extra]


def plan_cmd(plan: Path, *extra: str) -> list[str]:
    return [cloudorch_bin(), "plan", str(plan), "--json", "--detailed-exitcode", *extra]


class BenchError(RuntimeError):
    pass


def expect_ok(run: Run, what: str, ok_codes: tuple[int, ...] = (0,)) -> None:
    if run.rc not in ok_codes:
        tail = "\n".join(run.stderr.strip().splitlines()[-15:])
        raise BenchError(f"{what}: exit {run.rc} (wanted {ok_codes})\n{tail}")


def apply_ok(run: Run, what: str, expected: int) -> dict:
    expect_ok(run, what)
    doc = run.json()
    result = doc.get("result") or {}
    n = len(result.get("succeeded") or [])
    if not result.get("ok") or n != expected:
        raise BenchError(f"{what}: result.ok={result.get('ok')} succeeded={n}/{expected}")
    return result


# --------------------------------------------------------------------------- results table


@dataclass
class Row:
    case: str
    metric: str
    value: float | None
    unit: str
    limit: float | None = None  # value must be <= limit
    note: str = ""
    error: str = ""

    @property
    def status(self) -> str:
        if self.error:
            return "ERROR"
        if self.limit is None:
            return "info"
        return "PASS" if self.value is not None and self.value <= self.limit else "FAIL"

    @property
    def ratio(self) -> str:
        if self.limit is None or self.value is None or not self.limit:
            return ""
        return f"{self.value / self.limit:.2f}"


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "s":
        return f"{v:.3f} s"
    if unit == "MB":
        return f"{v:.1f} MB"
    if unit == "x":
        return f"{v:.2f}x"
    if unit == "B":
        return f"{int(v):,} B"
    if unit == "":
        return f"{v:g}"
    return f"{v:g} {unit}"


def print_table(rows: list[Row], title: str) -> None:
    head = ("case", "metric", "measured", "target", "used", "result")
    body = [
        (
            r.case,
            r.metric,
            fmt(r.value, r.unit) if not r.error else "-",
            ("<= " + fmt(r.limit, r.unit)) if r.limit is not None else "",
            r.ratio,
            r.status,
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    print(f"\n{title}")
    print(line)
    print("  ".join("-" * w for w in widths))
    for r, b in zip(rows, body, strict=True):
        print(
            "  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)).rstrip() + (f"   {r.note}" if r.note else "")
        )
    for r in rows:
        if r.error:
            print(f"\nERROR in {r.case} / {r.metric}:\n{r.error}")


# --------------------------------------------------------------------------- cases


@dataclass
class Ctx:
    tmp: Path
    repeat: int
    profile: bool
    strace: bool
    layers: int
    width: int
    rows: list[Row] = field(default_factory=list)
    failures: list[tuple[str, list[str], Path]] = field(default_factory=list)  # (case, argv, cwd) to profile

    def case_dir(self, name: str) -> Path:
        d = self.tmp / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        return d


def warm_up(ctx: Ctx) -> None:
    """One small apply so .pyc files and the page cache are warm before anything is timed.

    The warm-up runs without PYTHONDONTWRITEBYTECODE: with it set (as in some sandboxes) and an
    install that compiled nothing (an editable or `uv pip install` one), every timed command
    would compile each module it imports from source, which no installed cloudorch does twice.
    """
    d = ctx.case_dir("warmup")
    rng = random.Random(SEED)
    res = layered(3, 5, "null", rng)
    res.update({"w": wait_res()})
    plan = write_plan(d, plan_doc("warmup", res))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    apply_ok(run_cli(apply_cmd(plan), d, env=env), "warm-up apply", len(res))
    expect_ok(run_cli(plan_cmd(plan), d, env=env), "warm-up plan")


def cpu_note(cpu: float, target: float) -> str:
    """CPU time against a wall-time target: on a machine shared with other work, the wall time
    measures the load as much as cloudorch; the CPU time of the command (all its threads, so it
    may exceed the wall time of a parallel apply) does not."""
    return f"= {cpu / target:.2f} of the {target:g} s wall target; load average {os.getloadavg()[0]:.1f}"


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def strace_state_writes(argv: list[str], cwd: Path, state_dir: Path) -> tuple[int, dict[str, int], int]:
    """Bytes written (per file) under state_dir by argv, counted from strace's write syscalls."""
    log = cwd / "strace.log"  # -ff: one file per thread, so no "unfinished ... resumed" splits
    cmd = [
        "strace",
        "-f",
        "-ff",
        "-qq",
        "-s",
        "0",
        "-y",
        "-e",
        "signal=none",
        "-e",
        "trace=write,writev,pwrite64,pwritev,pwritev2,sendfile,copy_file_range",
        "-o",
        str(log),
        *argv,
    ]
    run = run_cli(cmd, cwd, keep_stdout=False)
    pat = re.compile(r"^(?:\d+\s+)?(\w+)\((\d+)<([^>]*)>.*\)\s+=\s+(\d+)")
    per_file: dict[str, int] = {}
    for part in cwd.glob("strace.log.*"):
        for line in part.read_text(errors="replace").splitlines():
            m = pat.match(line)
            if not m:
                continue
            path = m.group(3)
            if str(state_dir) in path:
                rel = os.path.relpath(path, state_dir)
                per_file[rel] = per_file.get(rel, 0) + int(m.group(4))
        part.unlink()
    return sum(per_file.values()), per_file, run.rc


def case_engine(ctx: Ctx) -> None:
    L, W = ctx.layers, ctx.width
    n = L * W
    case = f"engine null layered {L}x{W}"
    rng = random.Random(SEED)
    resources = layered(L, W, "null", rng)
    applies, plans = [], []
    d = plan = None
    for _ in range(ctx.repeat):
        d = ctx.case_dir("engine")
        plan = write_plan(d, plan_doc("engine", resources))
        a = run_cli(apply_cmd(plan), d)
        res = apply_ok(a, "engine apply", n)
        p = run_cli(plan_cmd(plan), d)
        expect_ok(p, "engine no-change plan (detailed exit code 0 = no changes)")
        applies.append((a, res))
        plans.append(p)
    assert d is not None and plan is not None
    state_dir = d / ".cloudorch"
    state_files = list((state_dir / "state").glob("*.json"))
    state_size = sum(f.stat().st_size for f in state_files)

    wall = statistics.median(a.wall for a, _ in applies)
    phase = statistics.median(float(r.get("seconds", 0.0)) for _, r in applies)
    rss = max(a.maxrss_kb for a, _ in applies) / 1024
    pwall = statistics.median(p.wall for p in plans)
    prss = max(p.maxrss_kb for p in plans) / 1024
    cpu = statistics.median(a.cpu for a, _ in applies)
    ctx.rows += [
        Row(case, f"apply from empty ({n} creates), wall", wall, "s", 10.0),
        Row(case, "  of which apply phase (result.seconds)", phase, "s", note=f"plan part ~{wall - phase:.2f} s"),
        Row(case, "  CPU (user + sys)", cpu, "s", note=cpu_note(cpu, 10.0)),
        Row(case, "apply peak RSS", rss, "MB", 400.0),
        Row(case, "no-change plan, wall", pwall, "s", 1.5),
        Row(
            case,
            "  CPU (user + sys)",
            statistics.median(p.cpu for p in plans),
            "s",
            note=cpu_note(statistics.median(p.cpu for p in plans), 1.5),
        ),
        Row(case, "no-change plan peak RSS", prss, "MB"),
    ]
    if wall > 10.0:
        ctx.failures.append((case + " apply", apply_cmd(plan), d))
    if pwall > 1.5:
        ctx.failures.append((case + " plan", plan_cmd(plan), d))

    # Bytes written to the state dir during the apply. wchar counts every write() the process
    # made; stdout/stderr went to regular files, so subtract exactly what they received.
    a, _ = applies[-1]
    wchar = a.io.get("wchar", 0)
    written = wchar - a.stdout_bytes - a.stderr_bytes
    ctx.rows += [
        Row(case, "final state file size", state_size, "B"),
        Row(
            case,
            "bytes written by apply (wchar - stdout - stderr)",
            written,
            "B",
            note=f"write_bytes={a.io.get('write_bytes', 0):,} B (block layer, incl. fs metadata)",
        ),
        Row(case, "bytes written / final state size", written / state_size if state_size else None, "x", 4.0),
    ]
    want_strace = ctx.strace or bool(state_size and written / state_size > 4.0)
    if want_strace and shutil.which("strace"):
        d2 = ctx.case_dir("engine-strace")
        plan2 = write_plan(d2, plan_doc("engine", resources))
        total, per_file, rc = strace_state_writes(apply_cmd(plan2), d2, d2 / ".cloudorch")
        if rc != 0:
            ctx.rows.append(Row(case, "strace: bytes written under .cloudorch/", None, "B", error=f"exit {rc}"))
        else:
            by_kind: dict[str, int] = {}
            for rel, b in per_file.items():
                top = rel.split(os.sep)[0]
                by_kind[top] = by_kind.get(top, 0) + b
            detail = ", ".join(f"{k}={v:,}" for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1]))
            ctx.rows.append(Row(case, "strace: bytes written under .cloudorch/", total, "B", note=detail))
            ctx.rows.append(
                Row(
                    case,
                    "strace: .cloudorch bytes / final state size",
                    total / state_size if state_size else None,
                    "x",
                    4.0,
                )
            )


def changed_by_edit(resources: dict[str, dict], edited: str) -> set[str]:
    """The oracle of the one-value-change case: which resources' values really change.

    Independent of the planner: an update of a core.null keeps its id and changes the values it
    was given, so a resource changes when it is the edited one or reads a changed value of one
    (`${resources.X.KEY}` with KEY not `id`), transitively.
    """
    changed = {edited}
    ref = re.compile(r"\$\{resources\.(\w+)\.(\w+)\}")
    grew = True
    while grew:
        grew = False
        for name, spec in resources.items():
            if name in changed:
                continue
            text = json.dumps(spec["properties"])
            if any(t in changed and attr != "id" for t, attr in ref.findall(text)):
                changed.add(name)
                grew = True
    return changed


def case_change(ctx: Ctx) -> None:
    """Change one value of one first-layer node of the layered graph: plan exactly what changes."""
    L, W = ctx.layers, ctx.width
    case = f"one-value change layered {L}x{W}"
    resources = layered(L, W, "null", random.Random(SEED))
    d = ctx.case_dir("change")
    plan = write_plan(d, plan_doc("engine", resources))
    apply_ok(run_cli(apply_cmd(plan), d), "change: first apply", L * W)
    edited = "l00_r000"
    resources[edited]["properties"]["values"]["k"] = "edited"
    write_plan(d, plan_doc("engine", resources))
    want = changed_by_edit(resources, edited)
    p = run_cli(plan_cmd(plan), d)
    expect_ok(p, "change: plan (exit 2 = changes)", (2,))
    doc = p.json()
    got = {c["address"] for c in doc.get("changes", []) if c["action"] in ("update", "replace")}
    extra, missing = sorted(got - want), sorted(want - got)
    ctx.rows.append(
        Row(
            case,
            "resources planned to change (update + replace)",
            len(got),
            "",
            len(want),
            note=f"values really change in {len(want)}; spurious {len(extra)}, missed {len(missing)}"
            + (f" (e.g. {', '.join((extra or missing)[:3])})" if extra or missing else ""),
            error=f"missed {len(missing)}: {', '.join(missing[:5])}" if missing else "",
        )
    )
    ctx.rows.append(Row(case, "  plan wall", p.wall, "s"))


def case_wide(ctx: Ctx, n: int = 20_000) -> None:
    """Many independent core.null: the per-resource cost of plan, apply and state."""
    case = f"engine null wide {n:,}"
    resources = wide_named(n)
    applies, plans = [], []
    d = plan = None
    for _ in range(ctx.repeat):
        d = ctx.case_dir("wide")
        plan = write_plan(d, plan_doc("wide", resources))
        a = run_cli(apply_cmd(plan), d, keep_stdout=True)
        res = apply_ok(a, "wide apply", n)
        p = run_cli(plan_cmd(plan), d)
        expect_ok(p, "wide no-change plan (detailed exit code 0 = no changes)")
        applies.append((a, res))
        plans.append(p)
    assert d is not None and plan is not None
    wall = statistics.median(a.wall for a, _ in applies)
    phase = statistics.median(float(r.get("seconds", 0.0)) for _, r in applies)
    pwall = statistics.median(p.wall for p in plans)
    rss = max(max(a.maxrss_kb for a, _ in applies), max(p.maxrss_kb for p in plans)) / 1024
    cpu = statistics.median(a.cpu for a, _ in applies)
    pcpu = statistics.median(p.cpu for p in plans)
    ctx.rows += [
        Row(case, f"plan + apply from empty ({n:,} creates), wall", wall, "s", 10.0),
        Row(case, "  of which apply phase (result.seconds)", phase, "s"),
        Row(case, "  CPU (user + sys)", cpu, "s", note=cpu_note(cpu, 10.0)),
        Row(case, "no-change plan, wall", pwall, "s", 2.0),
        Row(case, "  CPU (user + sys)", pcpu, "s", note=cpu_note(pcpu, 2.0)),
        Row(case, "peak RSS (apply, plan)", rss, "MB", 300.0),
    ]
    if wall > 10.0 or rss > 300.0:
        ctx.failures.append((case + " apply", apply_cmd(plan), d))
    if pwall > 2.0:
        ctx.failures.append((case + " plan", plan_cmd(plan), d))


def wide_named(n: int) -> dict[str, dict]:
    return {f"w{i:05d}": null_res({"k": f"v{i}"}) for i in range(n)}


def case_makespan(
    ctx: Ctx,
    name: str,
    resources: dict[str, dict],
    ideal: float,
    factor: float,
    extra: tuple[str, ...] = (),
    metric: str = "",
) -> None:
    phases, walls = [], []
    plan = d = None
    for _ in range(ctx.repeat):
        d = ctx.case_dir(re.sub(r"\W+", "-", name))
        plan = write_plan(d, plan_doc("makespan", resources))
        a = run_cli(apply_cmd(plan, *extra), d)
        res = apply_ok(a, name, len(resources))
        phases.append(float(res.get("seconds", 0.0)))
        walls.append(a.wall)
    phase = statistics.median(phases)
    wall = statistics.median(walls)
    limit = factor * ideal
    ctx.rows += [
        Row(
            name,
            metric or f"apply phase (ideal {ideal:.1f} s)",
            phase,
            "s",
            limit,
            note=f"= {phase / ideal:.3f} x ideal (limit {factor:.2f}x)",
        ),
        Row(name, "  command wall time", wall, "s"),
    ]
    if phase > limit and plan is not None and d is not None:
        ctx.failures.append((name, apply_cmd(plan, *extra), d))


def case_help(ctx: Ctx) -> None:
    d = ctx.case_dir("help")
    times = []
    for _ in range(5):
        r = run_cli([cloudorch_bin(), "--help"], d)
        expect_ok(r, "cloudorch --help")
        times.append(r.wall)
    ctx.rows.append(
        Row(
            "cli start-up",
            "`cloudorch --help` wall (median of 5)",
            statistics.median(times),
            "s",
            0.35,
            note="runs: " + " ".join(f"{t:.3f}" for t in times),
        )
    )

    r = run_cli([python_bin(), "-X", "importtime", "-m", "cloudorch", "--help"], d)
    expect_ok(r, "python -X importtime -m cloudorch --help")
    mods: dict[str, tuple[int, int]] = {}  # module -> (self us, cumulative us)
    for line in r.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3:
            continue
        mods[parts[2].strip()] = (int(parts[0]), int(parts[1]))
    tops = {m.split(".")[0] for m in mods}
    forbidden = sorted(t for t in tops if t in FORBIDDEN_AT_HELP)
    heavy = sorted(t for t in tops if t in HEAVY_INFO)
    total_us = sum(s for s, _ in mods.values())
    top_level = sorted(((c, m) for m, (_, c) in mods.items() if "." not in m), reverse=True)[:6]
    ctx.rows.append(
        Row(
            "cli start-up",
            "forbidden modules imported by --help",
            len(forbidden),
            "",
            0,
            note=("found: " + ", ".join(forbidden)) if forbidden else "none of " + "/".join(FORBIDDEN_AT_HELP),
        )
    )
    ctx.rows.append(
        Row(
            "cli start-up",
            "import time, all modules (-X importtime)",
            total_us / 1e6,
            "s",
            note=f"{len(mods)} modules; heavy present: {', '.join(heavy) or 'none'}",
        )
    )
    ctx.rows.append(
        Row(
            "cli start-up",
            "  slowest top-level imports (cumulative)",
            None,
            "",
            note=", ".join(f"{m} {c / 1000:.0f}ms" for c, m in top_level),
        )
    )
    if forbidden or statistics.median(times) > 0.35:
        ctx.failures.append(("cli start-up", [python_bin(), "-m", "cloudorch", "--help"], d))


# --------------------------------------------------------------------------- profiling failures


def profile_child(out: str, argv: list[str]) -> int:
    """Run the CLI in this process under cProfile, every thread included, and dump the stats.

    Plain `python -m cProfile` sees only the main thread; the scheduler's work runs on a pool,
    so each Thread.run gets its own profiler and all are merged into one file.
    """
    import cProfile
    import pstats
    import threading

    profiles: list[cProfile.Profile] = []
    orig_run = threading.Thread.run

    def run(self: threading.Thread) -> None:
        prof = cProfile.Profile()
        profiles.append(prof)
        prof.enable()
        try:
            orig_run(self)
        finally:
            prof.disable()

    threading.Thread.run = run  # type: ignore[method-assign]
    main_prof = cProfile.Profile()
    main_prof.enable()
    rc = 1
    try:
        from cloudorch.cli import main as cli_main

        rc = cli_main(argv)
    finally:
        main_prof.disable()
        st = pstats.Stats(main_prof)
        for prof in list(profiles):
            with contextlib.suppress(TypeError, ValueError):  # a thread that never ran Python code
                st.add(prof)
        st.dump_stats(out)
    return rc


def print_hotspots(path: Path, top: int) -> None:
    import pstats

    st = pstats.Stats(str(path))
    stats = st.stats  # type: ignore[attr-defined]

    def where(func: tuple[str, int, str]) -> str:
        fname, line, fn = func
        if fname.startswith(str(ROOT)):
            fname = os.path.relpath(fname, ROOT)
        elif "site-packages/" in fname:
            fname = fname.split("site-packages/", 1)[1]
        return f"{fname}:{line}({fn})"

    def show(title: str, items: list[tuple[tuple[str, int, str], tuple]]) -> None:
        print(f"--- {title}")
        print(f"{'tottime':>8} {'cumtime':>8} {'ncalls':>9}  location")
        for func, (_cc, nc, tt, ct, _) in items[:top]:
            print(f"{tt:8.3f} {ct:8.3f} {nc:>9}  {where(func)}")

    items = list(stats.items())
    show(f"top {top} by own time (all threads; sleeps/waits included)", sorted(items, key=lambda kv: -kv[1][2]))
    ours = [kv for kv in items if kv[0][0].startswith(str(ROOT / "cloudorch"))]
    show(
        f"top {top} cloudorch/ functions by cumulative time (summed over threads)",
        sorted(ours, key=lambda kv: -kv[1][3]),
    )


def profile_failures(ctx: Ctx, top: int) -> None:
    """Re-run each failing command under cProfile (fresh state) and print its hotspots."""
    for case, argv, d in ctx.failures:
        pd = ctx.case_dir("profile-" + re.sub(r"\W+", "-", case))
        for f in d.glob("*.yaml"):
            shutil.copy(f, pd / f.name)
        if " plan" in case and (d / ".cloudorch").exists():  # a no-change plan needs the applied state
            shutil.copytree(d / ".cloudorch", pd / ".cloudorch")
        args = [a.replace(str(d), str(pd)) for a in argv]
        # argv is `cloudorch ...` or `python -m cloudorch ...`
        cli_args = args[1:] if Path(args[0]).name == "cloudorch" else args[3:]
        out = pd / "out.prof"
        cmd = [python_bin(), str(Path(__file__).resolve()), "--profile-child", str(out), "--", *cli_args]
        run = run_cli(cmd, pd, keep_stdout=False)
        print(f"\n=== profile: {case}  (exit {run.rc}, {run.wall:.2f} s under cProfile)")
        print("    " + " ".join(["cloudorch", *cli_args]).replace(str(pd), "<tmp>"))
        if not out.exists():
            print("no profile written:\n" + run.stderr[-2000:])
            continue
        print_hotspots(out, top)


# --------------------------------------------------------------------------- main


CASES = ("engine", "change", "wide", "makespan", "sched", "help")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", choices=CASES, help="run only these cases (repeatable)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case; the table shows the median")
    ap.add_argument("--layers", type=int, default=50, help="engine case: layers (default 50)")
    ap.add_argument("--width", type=int, default=100, help="engine case: resources per layer (default 100)")
    ap.add_argument(
        "--strace",
        action="store_true",
        help="also count state-dir bytes per file with strace (done automatically on failure)",
    )
    ap.add_argument(
        "--profile",
        dest="profile",
        action="store_true",
        default=True,
        help="profile failing cases with cProfile (default)",
    )
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--top", type=int, default=15, help="hotspots to print per profile")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON to FILE")
    ap.add_argument("--profile-child", metavar="OUT", help=argparse.SUPPRESS)
    ap.add_argument("cli_args", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.profile_child:
        return profile_child(args.profile_child, args.cli_args)

    if not Path(cloudorch_bin()).exists():
        print(f"no cloudorch at {cloudorch_bin()} (set CLOUDORCH=...)", file=sys.stderr)
        return 2
    cases = args.only or list(CASES)
    tmp = Path(tempfile.mkdtemp(prefix="cloudorch-bench-"))
    ctx = Ctx(
        tmp=tmp,
        repeat=max(1, args.repeat),
        profile=args.profile,
        strace=args.strace,
        layers=args.layers,
        width=args.width,
    )
    t0 = time.perf_counter()
    try:
        print(
            f"cloudorch core bench: {os.cpu_count()} cpus, seed {SEED}, repeat {ctx.repeat}, tmp {tmp}", file=sys.stderr
        )
        warm_up(ctx)
        steps = {
            "engine": lambda: case_engine(ctx),
            "change": lambda: case_change(ctx),
            "wide": lambda: case_wide(ctx),
            "makespan": lambda: (
                case_makespan(
                    ctx,
                    "makespan wait layered 10x20",
                    layered(10, 20, "wait", random.Random(SEED)),
                    ideal=10 * WAIT,
                    factor=1.10,
                ),
                case_makespan(ctx, "makespan wait wide 200", wide(200, "wait"), ideal=WAIT, factor=1.5),
            ),
            "sched": lambda: case_makespan(
                ctx,
                "sched p=10 chain20+wide200",
                {**chain(20, "wait"), **wide(200, "wait")},
                ideal=max(20 * WAIT, 220 * WAIT / 10),
                factor=1.10,
                extra=("--parallelism", "10"),
                metric="apply phase (ideal max(4.0, 4.4) s)",
            ),
            "help": lambda: case_help(ctx),
        }
        for name in cases:
            print(f"... {name}", file=sys.stderr)
            try:
                steps[name]()
            except (BenchError, subprocess.SubprocessError, OSError) as e:
                ctx.rows.append(Row(name, "case", None, "", error=str(e)))
        print_table(ctx.rows, f"cloudorch core bench ({time.perf_counter() - t0:.0f} s)")
        gated = [r for r in ctx.rows if r.limit is not None or r.error]
        failed = [r for r in gated if r.status != "PASS"]
        print(
            f"\n{len(gated) - len(failed)}/{len(gated)} targets pass"
            + ("; FAIL: " + "; ".join(f"{r.case} / {r.metric.strip()}" for r in failed) if failed else "")
        )
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    [
                        dict(
                            case=r.case,
                            metric=r.metric.strip(),
                            value=r.value,
                            unit=r.unit,
                            limit=r.limit,
                            status=r.status,
                            note=r.note,
                            error=r.error,
                        )
                        for r in ctx.rows
                    ],
                    indent=1,
                )
            )
        if ctx.failures and ctx.profile:
            profile_failures(ctx, args.top)
        return 1 if failed else 0
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
