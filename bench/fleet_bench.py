#!/usr/bin/env python3
"""Fleet benchmark: `fleet drift` over many stacks, on the local process pool and on Dask.

Run:  .venv/bin/python bench/fleet_bench.py  [--stacks 1000 --loop-sample 30 --moto-stacks 200 --latency 0.05]

1. `--stacks` stacks of 5 `core.null` resources, applied once, then `fleet drift` with the local
   pool (one process per CPU) and with a Dask cluster of `dask scheduler` + 2 `dask worker`
   processes over TCP on 127.0.0.1, against a shell loop of `cloudorch drift` processes. The loop
   is timed on `--loop-sample` stacks and scaled to all of them (stated in the table).
   Targets: the fleet at least 20x the loop, and the whole fleet drift in at most 30 s.
2. `--moto-stacks` stacks of one S3 bucket each on moto, every AWS call delayed `--latency`
   seconds (a botocore hook, installed on every worker): `fleet drift` local pool vs Dask.
3. Dask's own cost per stack task: trivial tasks submitted and gathered one by one.

Prints one table; exits 1 if a target fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def core_fleet(root: Path, n: int) -> None:
    for i in range(n):
        folder = root / f"g{i // 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        resources = "\n".join(
            f"  r{j}: {{type: core.null, properties: {{values: {{stack: {i}, n: {j}}}}}}}" for j in range(5)
        )
        (folder / f"s{i:04d}.yaml").write_text(f"version: 1\nname: s{i:04d}\nresources:\n{resources}\n")


def moto_fleet(root: Path, n: int) -> None:
    for i in range(n):
        (root / f"b{i:04d}.yaml").write_text(
            f"version: 1\nname: b{i:04d}\nproviders:\n  aws: {{region: us-east-1}}\nresources:\n"
            f"  data: {{type: aws.s3_bucket, properties: {{name: fleet-bench-{i:04d}, tags: {{n: '{i}'}}}}}}\n"
        )


class Cluster:
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1."""

    def __init__(self, workdir: Path) -> None:
        dask = Path(sys.executable).parent / "dask"
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        log = (workdir / "dask.log").open("wb")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.procs = [
            subprocess.Popen(
                [str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        ]
        for i in range(2):
            self.procs.append(subprocess.Popen(
                [str(dask), "worker", self.address, "--nthreads", "1", "--no-dashboard", "--name", f"w{i}"],
                stdout=log, stderr=subprocess.STDOUT, env=env))
        import distributed

        with distributed.Client(self.address, timeout="60s") as c:
            c.wait_for_workers(2, timeout=120)

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


def fleet_drift(api: Any, paths: list[Path], executor: Any) -> tuple[float, Any]:
    fleet = api.fleet_discover(paths)
    start = time.perf_counter()
    result = api.fleet_run(fleet, "drift", executor)
    return time.perf_counter() - start, result


def install_latency(seconds: float) -> None:
    """On a worker (or here, before the pool forks): every AWS call sleeps `seconds` first."""
    from cloudorch_aws import AwsProvider
    from cloudorch_aws.faults import latency

    AwsProvider.client_hooks[:] = [latency(seconds)]


def set_env(env: dict[str, str]) -> None:
    os.environ.update(env)


def noop(x: int) -> int:
    return x


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", type=int, default=1000)
    parser.add_argument("--loop-sample", type=int, default=30)
    parser.add_argument("--moto-stacks", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--tasks", type=int, default=300, help="trivial Dask tasks for the overhead figure")
    args = parser.parse_args(argv)

    import distributed

    from cloudorch import api
    from cloudorch.fleet.executor import DaskExecutor, LocalExecutor

    rows: list[tuple[str, str, bool | None]] = []
    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    cluster = Cluster(tmp)
    try:
        # ------------------------------------------------------------ 1. core stacks
        core = tmp / "core"
        core_fleet(core, args.stacks)
        start = time.perf_counter()
        applied = api.fleet_run(api.fleet_discover([core]), "apply", LocalExecutor())
        apply_s = time.perf_counter() - start
        assert applied.exit_code == 0, applied.counts()
        rows.append((f"fleet apply, {args.stacks} stacks x 5 core.null, local pool", f"{apply_s:.1f} s", None))

        local_s, local = fleet_drift(api, [core], LocalExecutor())
        assert local.exit_code == 0, local.counts()
        dask_s, on_dask = fleet_drift(api, [core], DaskExecutor(cluster.address))
        assert on_dask.exit_code == 0, on_dask.counts()

        sample = sorted(core.rglob("s*.yaml"))[: args.loop_sample]
        start = time.perf_counter()
        for plan in sample:
            done = subprocess.run([sys.executable, "-m", "cloudorch", "drift", str(plan)], capture_output=True,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            assert done.returncode == 0, done.stderr
        per_process = (time.perf_counter() - start) / len(sample)
        loop_s = per_process * args.stacks
        rows.append((f"fleet drift, local pool ({local.executor})", f"{local_s:.1f} s", local_s <= 30))
        rows.append((f"fleet drift, Dask ({on_dask.executor})", f"{dask_s:.1f} s", dask_s <= 30))
        rows.append((f"shell loop of `cloudorch drift` (timed on {len(sample)}, x{args.stacks / len(sample):.0f})",
                     f"{loop_s:.1f} s ({per_process * 1000:.0f} ms each)", None))
        rows.append(("fleet (local pool) vs the loop", f"{loop_s / local_s:.1f}x", loop_s / local_s >= 20))
        rows.append(("fleet (Dask) vs the loop", f"{loop_s / dask_s:.1f}x", loop_s / dask_s >= 20))

        # ------------------------------------------------------------ 2. moto stacks
        from cloudorch.sandbox.processes import start_moto

        server = start_moto()
        try:
            os.environ.update(server.env)
            os.environ.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
            moto = tmp / "moto"
            moto.mkdir()
            moto_fleet(moto, args.moto_stacks)
            install_latency(args.latency)  # before the pools fork
            workers = 8  # stacks wait on the network, not the CPU
            applied = api.fleet_run(api.fleet_discover([moto]), "apply", LocalExecutor(workers))
            assert applied.exit_code == 0, [r.to_json() for r in applied.results if r.status != "ok"][:2]
            local_s, local = fleet_drift(api, [moto], LocalExecutor(workers))
            with distributed.Client(cluster.address) as c:
                env = {**server.env, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
                c.run(set_env, env)
                c.run(install_latency, args.latency)
            dask_s, on_dask = fleet_drift(api, [moto], DaskExecutor(cluster.address))
            assert local.exit_code == 0 and on_dask.exit_code == 0, (local.counts(), on_dask.counts())
            rows.append((f"fleet drift, {args.moto_stacks} moto stacks, +{args.latency * 1000:.0f} ms/call, "
                         f"local pool of {workers}", f"{local_s:.1f} s", None))
            rows.append(("  the same on Dask (2 workers x 1 thread)", f"{dask_s:.1f} s", None))
        finally:
            server.stop()

        # ------------------------------------------------------------ 3. Dask's cost per task
        with distributed.Client(cluster.address) as c:
            c.submit(noop, -1, pure=False).result()
            start = time.perf_counter()
            for i in range(args.tasks):
                c.submit(noop, i, pure=False).result()
            one_by_one = (time.perf_counter() - start) / args.tasks
            start = time.perf_counter()
            c.gather([c.submit(noop, i, pure=False) for i in range(args.tasks)])
            batched = (time.perf_counter() - start) / args.tasks
        rows.append(("Dask round trip per task, one at a time", f"{one_by_one * 1000:.1f} ms", None))
        rows.append(("Dask cost per task, submitted together", f"{batched * 1000:.2f} ms", None))
    finally:
        cluster.close()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"fleet bench: {args.stacks} core stacks, {args.moto_stacks} moto stacks, {os.cpu_count()} CPUs")
    width = max(len(r[0]) for r in rows)
    ok = True
    for what, figure, passed in rows:
        mark = "" if passed is None else ("  ok" if passed else "  MISSED")
        ok = ok and passed is not False
        print(f"  {what:<{width}}  {figure}{mark}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
