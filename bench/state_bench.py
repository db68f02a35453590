#!/usr/bin/env python3
"""cloudorch remote state benchmark: lock round trips per backend, and a no-change plan on S3 state.

Run from anywhere:  .venv/bin/python bench/state_bench.py   (or `bash bench/run state_bench.py`)

Starts moto (S3), fake-gcs-server and Azurite as local processes (see cloudorch/sandbox/processes.py).
1. Round trip: lock + read + write + unlock of a 50-resource state, N times per backend through
   the real backend classes, against the local file backend in the same run (median, ms).
2. A no-change `plan --json` of 1,000 `core.null` resources through the real CLI (a subprocess),
   with state on S3 (moto) against local state, alternating runs; target <= 1.3x local. Also
   with the store worker switched off, to show what importing botocore in the CLI process costs.
3. An apply of 500 `core.null` resources with state on S3, its journal (intents) beside the state
   in the bucket against a local journal file (what remote state used before), alternating fresh
   runs in fresh processes; target <= 1.3x; S3 calls per resource.
4. Replay of a journal of 40,000 finished operations (read, verify chain and binding, fold); target < 1 s.
5. Lock takeover after a holder dies: a holder on "another machine" (lease 2 s) is SIGKILLed; how
   long until the next command holds the lock (judged on the store's clock), on S3, GCS and Azure;
   and a dead pid on this machine (S3).
The emulators answer in well under a millisecond, so these figures are cloudorch's own overhead
(SDK calls, serialisation, lock protocol), not a cloud's latency. Exit 1 if a target fails.
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
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloudorch.sandbox.processes import RunningServer, start_azurite, start_fake_gcs, start_moto  # noqa: E402
from cloudorch.state import LocalBackend, LockInfo, ResourceRecord, State  # noqa: E402
from cloudorch.state.backends import StateBackend, open_backend  # noqa: E402
from cloudorch.state.backends.worker import ENV_SWITCH  # noqa: E402

PLAN_TARGET = 1.3
APPLY_TARGET = 1.3
REPLAY_TARGET = 1.0


def make_buckets(servers: dict[str, RunningServer]) -> dict[str, str]:
    """One fresh versioned bucket per store; returns scheme -> backend URL."""
    import boto3
    from azure.storage.blob import BlobServiceClient
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    name = f"bench-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=servers["s3"].url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    gcs = storage.Client(
        project="bench", credentials=AnonymousCredentials(), client_options={"api_endpoint": servers["gs"].url}
    )
    bucket = gcs.bucket(name)
    bucket.versioning_enabled = True
    gcs.create_bucket(bucket)
    BlobServiceClient.from_connection_string(servers["azblob"].extra["connection_string"]).create_container(name)
    return {
        "s3": f"s3://{name}/bench",
        "gs": f"gs://{name}/bench",
        "azblob": f"azblob://devstoreaccount1/{name}/bench",
    }


def round_trip_ms(backend: StateBackend, n: int) -> list[float]:
    state = State(plan_name="bench")
    for i in range(50):
        a = f"r{i}"
        state.resources[a] = ResourceRecord(
            address=a, type="core.null", provider="core", id=f"id-{i}", properties={"values": {"i": i}}
        )
    samples: list[float] = []
    for i in range(n + 2):  # the first two warm up the client and create the objects
        start = time.perf_counter()
        with backend.lock(LockInfo.new("bench"), 5.0):
            current = backend.read()
            expected = current.serial if current is not None else None
            state.serial = (expected or 0) + 1
            backend.write(state, expected)
        if i >= 2:
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def plan_file(directory: Path, backend_url: str | None, n: int) -> Path:
    lines = ["version: 1", "name: bench"]
    if backend_url:
        lines += ["backend:", f"  url: {backend_url}"]
    lines.append("resources:")
    for i in range(n):
        lines += [f"  r{i}:", "    type: core.null", f"    properties: {{values: {{i: {i}}}}}"]
    path = directory / "plan.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "cloudorch", *args], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        raise RuntimeError(f"cloudorch {args} exited {r.returncode}:\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}")
    return elapsed


# A no-change plan timed inside one long-lived process (the SDK imported and its service models
# loaded on the warm-up call; each plan still opens its backend and client), to show the
# backend's per-command cost apart from interpreter start-up.
IN_PROCESS = r"""
import json, sys, time
from pathlib import Path
from cloudorch import api
opts = api.RunOptions(plan_file=Path(sys.argv[1]), command="bench")
times = []
for _ in range(int(sys.argv[2]) + 1):
    start = time.perf_counter()
    cs = api.plan(opts)
    times.append(time.perf_counter() - start)
    assert not cs.has_changes
print(json.dumps(times[1:]))
"""


# What botocore alone costs a fresh process: import it and build the S3 client the backend
# builds (no request). The S3 plan pays this on top of everything the local plan does.
SDK_COST = r"""
import time
start = time.perf_counter()
import botocore.session
from botocore.config import Config
session = botocore.session.Session()
session.create_client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                      config=Config(retries={"mode": "standard", "max_attempts": 5}),
                      aws_access_key_id="a", aws_secret_access_key="b")
print(time.perf_counter() - start)
"""


# One apply in a fresh process, timed around `api.apply` alone; every S3 request is counted.
# "local" keeps the journal in a local file, as remote state did before journals moved beside it.
APPLY_ONE = r"""
import json, sys, time
from pathlib import Path
from cloudorch import api
from cloudorch.state.backends import remote, s3
from cloudorch.state.journal import LocalJournalStore
import botocore.session  # both sides pay the import before the clock starts
calls = {"n": 0}
for name in ("get", "get_head", "get_lock", "put", "delete", "list_names", "delete_many", "versions",
             "require_history", "get_version"):
    original = getattr(s3.S3Store, name)
    def counted(self, *a, __f=original, **k):
        calls["n"] += 1
        return __f(self, *a, **k)
    setattr(s3.S3Store, name, counted)
if sys.argv[2] == "local":
    remote.RemoteBackend.journal_store = lambda self: LocalJournalStore(self.journal_path())
opts = api.RunOptions(plan_file=Path(sys.argv[1]), command="bench")  # the CLI's default parallelism
start = time.perf_counter()
result = api.apply(opts)
elapsed = time.perf_counter() - start
assert result is not None and result.ok and len(result.succeeded) == int(sys.argv[3])
print(json.dumps({"seconds": elapsed, "calls": calls["n"], "writes": result.journal_fsyncs}))
"""


def apply_once(directory: Path, url: str, n: int, mode: str, env: dict[str, str]) -> dict[str, float]:
    path = plan_file(directory, url, n)
    r = subprocess.run(
        [sys.executable, "-c", APPLY_ONE, str(path), mode, str(n)],
        cwd=directory,
        env={**env, ENV_SWITCH: "0"},
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise RuntimeError(f"apply ({mode} journal) failed:\n{r.stderr[-2000:]}")
    doc: dict[str, float] = json.loads(r.stdout.strip().splitlines()[-1])
    return doc


def replay_seconds(base: Path, n: int) -> tuple[float, int, float]:
    """Write a journal of `n` finished operations bound to a state, then time `pending` + fold."""
    from cloudorch.state.journal import pending
    from cloudorch.state.recovery import apply_replay

    backend = LocalBackend(base / "replay", "replay")
    backend.write(State(plan_name="replay"), None)
    from cloudorch.state.journal import start_journal

    journal = start_journal(backend, {"command": "bench"})
    ops = []
    for i in range(n):
        a = f"r{i}"
        record = ResourceRecord(
            address=a, type="core.null", provider="core", id=f"id-{i}", properties={"values": {"i": i}}
        ).model_dump(mode="json")  # a record as the applier journals it
        ops.append(("finished", {"op": a, "address": a, "action": "create", "record": record}))
    journal._append_many(ops)  # one batch: the bench times the replay, not the writing
    journal.abandon()
    start, cpu = time.perf_counter(), time.process_time()
    run = pending(backend)
    assert run is not None
    state = backend.read()
    assert state is not None
    report = apply_replay(state, run.replay)
    elapsed = time.perf_counter() - start
    # CPU time too: on a machine shared with other work, wall time also counts waiting for a core
    return elapsed, len(report.recovered), time.process_time() - cpu


TAKEOVER_HOLDER = r"""
import sys, time
from pathlib import Path
from cloudorch.state.backends import open_backend
from cloudorch.state import LockInfo
b = open_backend(sys.argv[1], {"lease_seconds": float(sys.argv[2])}, key="takeover", local_root=Path(sys.argv[3]))
h = b.lock(LockInfo.new("cloudorch apply"), 0)
print("held", flush=True)
time.sleep(600)
"""


def takeover_seconds(url: str, lease: float, base: Path, env: dict[str, str], host: str | None) -> float:
    """Kill a lock holder (on another 'host', or on this one), then time the next acquisition."""
    import signal

    child_env = {**env, ENV_SWITCH: "0"}
    if host is not None:
        child_env["CLOUDORCH_TEST_HOSTNAME"] = host
    child = subprocess.Popen(
        [sys.executable, "-c", TAKEOVER_HOLDER, url, str(lease), str(base / "holder")],
        env=child_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    backend = open_backend(url, {"lease_seconds": lease}, key="takeover", local_root=base / "next", env=env)
    time.sleep(lease / 2)  # mid-lease, as a crash would usually come
    child.send_signal(signal.SIGKILL)
    child.wait()
    start = time.perf_counter()
    with backend.lock(LockInfo.new("cloudorch apply"), 60) as handle:
        elapsed = time.perf_counter() - start
        assert handle.took_over is not None
    return elapsed


def sdk_cost(env: dict[str, str], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        r = subprocess.run([sys.executable, "-c", SDK_COST], env=env, capture_output=True, text=True, check=True)
        runs.append(float(r.stdout))
    return statistics.median(runs)


def in_process_plan(path: Path, cwd: Path, env: dict[str, str], repeat: int) -> list[float]:
    r = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, str(path), str(repeat)], cwd=cwd, env=env, capture_output=True, text=True
    )
    if r.returncode != 0:
        raise RuntimeError(f"in-process plan failed:\n{r.stderr[-2000:]}")
    return [float(x) for x in json.loads(r.stdout)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trips", type=int, default=30, help="lock round trips per backend (30)")
    ap.add_argument("--resources", type=int, default=1000, help="core.null resources in the plan case (1000)")
    ap.add_argument("--repeat", type=int, default=5, help="no-change plans per side, alternating (5)")
    ap.add_argument("--apply-resources", type=int, default=500, help="core.null resources in the apply case (500)")
    ap.add_argument("--apply-repeat", type=int, default=3, help="applies per side, alternating (3)")
    ap.add_argument("--replay", type=int, default=40_000, help="finished operations in the replayed journal")
    ap.add_argument("--only", choices=["all", "journal"], default="all", help="journal: only cases 3-5")
    opts = ap.parse_args(argv)

    servers = {"s3": start_moto(), "gs": start_fake_gcs(), "azblob": start_azurite()}
    env = {**os.environ, "NO_COLOR": "1"}
    for s in servers.values():
        env.update(s.env)
    rows: list[tuple[str, str, str, str]] = []
    failed = False
    try:
        urls = make_buckets(servers)
        with tempfile.TemporaryDirectory(prefix="cloudorch-state-bench-") as tmp:
            base = Path(tmp)
            failed |= journal_cases(opts, urls, base, env, rows)
            if opts.only == "journal":
                return _report(rows, opts, failed)
            local = statistics.median(round_trip_ms(LocalBackend(base / "local", "trip"), opts.trips))
            rows.append(("round trip", "local file", f"{local:.1f} ms", "1.00x"))
            for scheme, url in urls.items():
                backend = open_backend(url, {}, key="trip", local_root=base / scheme, env=env)
                ms = statistics.median(round_trip_ms(backend, opts.trips))
                rows.append(("round trip", scheme, f"{ms:.1f} ms", f"{ms / local:.2f}x"))

            sides: dict[str, tuple[Path, Path]] = {}
            for side, url in (("local", None), ("s3", urls["s3"].rsplit("/", 1)[0] + "/plan")):
                d = base / f"plan-{side}"
                d.mkdir()
                path = plan_file(d, url, opts.resources)
                cli(["apply", str(path), "--auto-approve", "--json"], d, env)
                sides[side] = (d, path)
            times: dict[str, list[float]] = {"local": [], "s3": [], "s3, no worker": []}
            no_worker = {**env, ENV_SWITCH: "0"}
            for _ in range(opts.repeat):
                for side, (d, path) in sides.items():
                    times[side].append(cli(["plan", str(path), "--json", "--detailed-exitcode"], d, env))
                d, path = sides["s3"]
                times["s3, no worker"].append(cli(["plan", str(path), "--json", "--detailed-exitcode"], d, no_worker))
            lt, st = statistics.median(times["local"]), statistics.median(times["s3"])
            nt = statistics.median(times["s3, no worker"])
            ratio = st / lt
            ok = ratio <= PLAN_TARGET
            failed |= not ok
            rows.append((f"no-change plan, {opts.resources} core.null", "local state", f"{lt:.2f} s", "1.00x"))
            rows.append(
                (
                    f"no-change plan, {opts.resources} core.null",
                    "S3 state (moto)",
                    f"{st:.2f} s",
                    f"{ratio:.2f}x (target <= {PLAN_TARGET}x: {'PASS' if ok else 'FAIL'})",
                )
            )
            rows.append(
                (
                    f"no-change plan, {opts.resources} core.null",
                    f"S3 state, {ENV_SWITCH}=0",
                    f"{nt:.2f} s",
                    f"{nt / lt:.2f}x (the SDK imported in the CLI process)",
                )
            )
            inside = {
                side: statistics.median(in_process_plan(path, d, env, opts.repeat)) for side, (d, path) in sides.items()
            }
            sdk = sdk_cost(env, opts.repeat)
            rows.append(
                (
                    "botocore import + S3 client, fresh process",
                    "(no request)",
                    f"{sdk:.2f} s",
                    f"floor {(lt + sdk) / lt:.2f}x (local plan + this)",
                )
            )
            rows.append(("same, inside one process", "local state", f"{inside['local']:.2f} s", "1.00x"))
            rows.append(
                (
                    "same, inside one process",
                    "S3 state (moto)",
                    f"{inside['s3']:.2f} s",
                    f"{inside['s3'] / inside['local']:.2f}x",
                )
            )
    finally:
        for server in servers.values():
            server.stop()
    return _report(rows, opts, failed)


Rows = list[tuple[str, str, str, str]]


def journal_cases(opts: argparse.Namespace, urls: dict[str, str], base: Path, env: dict[str, str], rows: Rows) -> bool:
    """Cases 3-5; True if a target failed."""
    failed = False
    n = opts.apply_resources
    bucket = urls["s3"].rsplit("/", 1)[0]
    runs: dict[str, list[dict[str, float]]] = {"local": [], "backend": []}
    for i in range(opts.apply_repeat + 1):  # the first pair warms moto up and is dropped
        for mode in ("local", "backend"):
            d = base / f"apply-{mode}-{i}"
            d.mkdir()
            doc = apply_once(d, f"{bucket}/apply-{mode}-{i}", n, mode, env)
            if i:
                runs[mode].append(doc)
    lt = statistics.median(r["seconds"] for r in runs["local"])
    bt = statistics.median(r["seconds"] for r in runs["backend"])
    ok = bt / lt <= APPLY_TARGET
    failed |= not ok
    case = f"apply, {n} core.null, S3 state"
    lc = statistics.median(r["calls"] for r in runs["local"]) / n
    bc = statistics.median(r["calls"] for r in runs["backend"]) / n
    lw = statistics.median(r["writes"] for r in runs["local"])
    bw = statistics.median(r["writes"] for r in runs["backend"])
    rows.append((case, f"journal: local file ({lc:.2f} S3 calls/res, {lw:.0f} fsyncs)", f"{lt:.2f} s", "1.00x"))
    verdict = f"{bt / lt:.2f}x (target <= {APPLY_TARGET}x: {'PASS' if ok else 'FAIL'})"
    rows.append((case, f"journal: beside state ({bc:.2f} S3 calls/res, {bw:.0f} objects)", f"{bt:.2f} s", verdict))

    seconds, folded, cpu = replay_seconds(base, opts.replay)
    ok = seconds < REPLAY_TARGET and folded == opts.replay
    failed |= not ok
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    rows.append(
        (f"journal replay, {opts.replay} finished ops", f"read+verify+fold ({cpu:.2f} s CPU, load {load:.1f})",
         f"{seconds:.2f} s", f"target < {REPLAY_TARGET:.0f} s: {'PASS' if ok else 'FAIL'}")
    )  # fmt: skip

    cases = [(scheme, "holder on another host, lease 2 s", "bench-other-host") for scheme in urls]
    cases.append(("s3", "dead pid on this host", None))
    for scheme, label, host in cases:
        where = urls[scheme].rsplit("/", 1)[0] + f"/takeover-{host or 'here'}"
        t = takeover_seconds(where, 2.0, base / f"takeover-{scheme}-{host or 'here'}", env, host)
        name = {"s3": "S3", "gs": "GCS", "azblob": "Azure"}[scheme]
        judged = "store clock" if host else "pid check"
        rows.append((f"lock takeover after SIGKILL ({name})", label, f"{t:.2f} s", judged))
    return failed


def _report(rows: list[tuple[str, str, str, str]], opts: argparse.Namespace, failed: bool) -> int:
    widths = [max(len(r[i]) for r in [("case", "backend", "median", "vs local"), *rows]) for i in range(4)]
    print("\nremote state (emulators on 127.0.0.1)")
    for r in [("case", "backend", "median", "vs local"), tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(
        f"\n(lock+read+write+unlock of a 50-resource state, median of {opts.trips}; plans: median of {opts.repeat}; "
        f"applies: median of {opts.apply_repeat}. "
        "The CLI hands the S3 store to a worker process that imports botocore while the plan is parsed; "
        "the 'fresh process' row is that import's cost, the in-process rows leave it out.)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
