"""Fleets on Dask distributed: a real cluster of processes over TCP (`dask scheduler` and two
`dask worker`s, one killed mid-run), a `LocalCluster`, and the refusal of local state on a
cluster elsewhere."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

from cloudorch import api  # noqa: E402
from cloudorch.cli import main  # noqa: E402
from cloudorch.errors import ConfigError  # noqa: E402

DASK = Path(sys.executable).parent / "dask"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """`dask scheduler` and two `dask worker` processes (no nanny: a killed worker stays dead)."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [
        subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=(logs / "scheduler.log").open("wb"), stderr=subprocess.STDOUT, env=env,
        )
    ]
    for i in range(2):
        procs.append(
            subprocess.Popen(
                [str(DASK), "worker", address, "--no-nanny", "--nthreads", "1", "--no-dashboard",
                 "--name", f"w{i}", "--death-timeout", "30"],
                stdout=(logs / f"worker{i}.log").open("wb"), stderr=subprocess.STDOUT, env=env,
            )
        )
    client = distributed.Client(address, timeout="30s")
    try:
        client.wait_for_workers(2, timeout=60)
    finally:
        client.close()
    try:
        yield address, procs
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)


def _slow_fleet(root: Path, n: int) -> Path:
    """A network stack and `n` services, each service waiting 2 s in its apply (time to kill a worker)."""
    (root / "network").mkdir(parents=True)
    (root / "network" / "plan.yaml").write_text(
        "version: 1\nname: network\nresources:\n  vpc: {type: core.null, properties: {values: {cidr: 10.0.0.0/16}}}\n"
        "outputs:\n  vpc_id: '${resources.vpc.id}'\n"
    )
    (root / "services").mkdir()
    for i in range(n):
        (root / "services" / f"svc{i}.yaml").write_text(
            f"version: 1\nname: svc{i}\nstacks:\n  network: {{plan: ../network/plan.yaml}}\nresources:\n"
            "  slow: {type: core.wait, properties: {seconds: 2}}\n"
            "  app: {type: core.file, depends_on: [slow], properties: "
            f"{{path: out/svc{i}.txt, content: 'svc{i} in ${{stacks.network.outputs.vpc_id}}'}}}}\n"
        )
    return root


def test_a_real_cluster_runs_the_fleet_and_survives_a_killed_worker(
    cluster: tuple[str, list[subprocess.Popen[bytes]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address, procs = cluster
    root = _slow_fleet(tmp_path / "fleet", 4)
    fleet = api.fleet_discover([root])
    pool = api.fleet_executor(address.replace("tcp://", "dask://"))
    client = pool.client  # type: ignore[attr-defined]
    pids: dict[str, int] = client.run(os.getpid)
    killed: dict[str, Any] = {}

    def kill_a_busy_worker() -> None:
        # as soon as a service stack runs on a worker, kill that worker (SIGKILL: no goodbye)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for worker, keys in client.processing().items():
                if any("svc" in str(k) for k in keys):
                    time.sleep(0.5)  # inside its 2 s wait: the stack's lock is held, its journal open
                    os.kill(pids[worker], signal.SIGKILL)
                    # reaped at once, as its parent on a real machine would: a zombie's pid looks alive
                    next(p for p in procs if p.pid == pids[worker]).wait(timeout=10)
                    killed["worker"] = worker
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    result = api.fleet_run(fleet, "apply", pool)
    killer.join()
    assert killed, "no worker was running a service stack"
    status = {r.name: r.status for r in result.results}
    assert status == {"network": "ok", **{f"svc{i}": "ok" for i in range(4)}}, [r.to_json() for r in result.results]
    assert sum(p.poll() is not None for p in procs[1:]) == 1  # one worker dead, the other did the rest
    assert len({r.worker for r in result.results if r.name.startswith("svc")}) >= 1
    for i in range(4):
        assert (root / "services" / "out" / f"svc{i}.txt").read_text().startswith(f"svc{i} in ")
    # the rerun on the surviving worker left nothing half-done: a plan of every stack is empty
    capsys.readouterr()
    code = main(["fleet", "plan", str(root), "--json", "--executor", address.replace("tcp://", "dask://")])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc
    assert doc["counts"] == {"ok": 5}


def test_local_cluster_drift(make_fleet: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    root = make_fleet(services=3)
    assert main(["fleet", "apply", str(root), "--auto-approve"]) == 0
    state = root / "services" / ".cloudorch" / "state" / "svc1.json"
    assert state.exists()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
        capsys.readouterr()
        code = main(["fleet", "drift", str(root), "--json", "--executor", lc.scheduler_address])
        doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc
    assert doc["executor"].startswith("Dask cluster") and doc["counts"] == {"ok": 5}


def test_local_state_is_refused_on_a_cluster_elsewhere(make_fleet: Callable[..., Path]) -> None:
    from cloudorch.fleet.executor import DaskExecutor

    root = make_fleet(services=1)
    local = distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None)
    with local as lc, distributed.Client(lc) as c:
        # an address that is not this machine: the workers could not reach this disk
        far = DaskExecutor("tcp://192.0.2.10:8786", client=c)
        with pytest.raises(ConfigError) as err:
            api.fleet_run(api.fleet_discover([root]), "plan", far)
    assert "keep state on this disk" in err.value.message and "network" in err.value.message
