"""State shared by two machines: the journal lives beside remote state, is bound to it, and locks are fenced.

Two working directories stand for two machines (each with its own `.cloudorch/`, its own host name
through the lock's test seam); both use one bucket on moto, fake-gcs-server or Azurite. Processes
are stopped at an exact point through the journal's hold seam (a marker file, then a release file),
never by sleeping.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from remote_testkit import Remote, make_remote

from cloudorch.state.backends import open_backend
from cloudorch.state.backends.base import StateBackend
from cloudorch.state.journal import HOLD_ENV, parse_journal

PLAN = """\
version: 1
name: shop
backend:
  url: {url}
  lease_seconds: {lease}
{providers}resources:
{resources}"""


def _plan(directory: Path, url: str, n: int, *, lease: float = 2, kind: str = "null", tag: str = "r") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    providers = ""
    if kind == "null":
        body = "".join(f"  {tag}{i}:\n    type: core.null\n    properties: {{values: {{i: {i}}}}}\n" for i in range(n))
    else:  # VPCs on moto: a create that ran twice leaves two VPCs with the same address tag
        providers = "providers:\n  aws: {region: us-east-1}\n"
        vpc = "  {tag}{i}:\n    type: aws.vpc\n    properties: {{cidr_block: 10.{i}.0.0/16}}\n"
        body = "".join(vpc.format(tag=tag, i=i) for i in range(n))
    path = directory / "shop.yaml"
    path.write_text(PLAN.format(url=url, lease=lease, providers=providers, resources=body))
    return path


class Machine:
    """A working directory and a host name: one of the two machines."""

    def __init__(self, root: Path, host: str, remote: Remote, plan_args: tuple[str, int, str], tag: str = "r") -> None:
        self.dir = root / host
        self.host = host
        self.remote = remote
        url, n, kind = plan_args
        self.plan = _plan(self.dir, url, n, kind=kind, tag=tag)
        self.marker = self.dir / "held"
        self.release = self.dir / "go"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            **self.remote.env,
            "NO_COLOR": "1",
            "CLOUDORCH_TEST_HOSTNAME": self.host,
            **extra,
        }

    def start(self, *args: str, hold_after: int | None = None, **extra: str) -> subprocess.Popen[str]:
        env = self.env(**extra)
        if hold_after is not None:
            env[HOLD_ENV] = f"{hold_after}:{self.marker}:{self.release}"
        return subprocess.Popen(
            [sys.executable, "-m", "cloudorch", *args],
            cwd=self.dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        proc = self.start(*args, **extra)
        out, err = proc.communicate(timeout=120)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def wait_held(self, proc: subprocess.Popen[str]) -> None:
        """The barrier: the process reached the hold point (or died, which fails the test)."""
        deadline = time.monotonic() + 60
        while not self.marker.exists():
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"{self.host} ended before the hold point:\n{err}")
            assert time.monotonic() < deadline, "the hold point was never reached"
            time.sleep(0.01)

    def backend(self) -> StateBackend:
        return open_backend(self.remote.url, {}, key="shop", local_root=self.dir / ".cloudorch", env=self.remote.env)


def _state_bytes(remote: Remote) -> bytes:
    return remote.raw_get("team/shop/shop.json")


def _journal_runs(backend: StateBackend) -> list[Any]:
    return [parse_journal(r.data, r.where) for r in backend.journal_store().runs()]


def _open_runs(backend: StateBackend) -> list[Any]:
    return [r for r in _journal_runs(backend) if not r.ended_cleanly]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            with_signal = getattr(signal, "SIGCONT", None)
            if with_signal is not None:
                os.kill(p.pid, with_signal)
            p.kill()
        p.communicate(timeout=30)


def test_killed_apply_is_recovered_by_another_machine_from_the_backend(
    remote: Remote, tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    a = Machine(tmp_path, "machine-a", remote, (remote.url, 12, "null"))
    b = Machine(tmp_path, "machine-b", remote, (remote.url, 12, "null"))
    runner = a.start("apply", str(a.plan), "--auto-approve", "--parallelism", "2", hold_after=5)
    procs.append(runner)
    a.wait_held(runner)
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=30)

    # the record of what A did is in the bucket, not on A's disk
    assert not list((a.dir / ".cloudorch").glob("journal/*"))
    pending = _open_runs(b.backend())
    assert len(pending) == 1
    done = {op["address"]: op["record"]["id"] for op in pending[0].finished}
    assert len(done) >= 5

    r = b.run("apply", str(b.plan), "--auto-approve", "--json", "--lock-timeout", "30")
    assert r.returncode == 0, r.stderr
    assert "recovered" in r.stderr and "finished operation(s)" in r.stderr
    ran = set(json.loads(r.stdout)["result"]["succeeded"])
    assert ran and not ran & set(done), "B created again what A had finished"
    listed = b.run("state", "list", str(b.plan), "--json")
    ids = {res["address"]: res["id"] for res in json.loads(listed.stdout)["resources"]}
    assert len(ids) == 12
    assert all(ids[address] == id_ for address, id_ in done.items())
    assert _open_runs(b.backend()) == []

    # A comes back: nothing of its old run is left to fold, and nothing changes
    before = _state_bytes(remote)
    again = a.run("plan", str(a.plan), "--json", "--detailed-exitcode")
    assert again.returncode == 0, again.stderr
    assert _state_bytes(remote) == before


def test_a_stale_journal_of_an_older_serial_is_refused(remote: Remote, tmp_path: Path) -> None:
    """A journal (here: a killed run's, copied aside before B recovered it) put back later is not folded
    over the newer state: its serial no longer matches, and nothing is written."""
    a = Machine(tmp_path, "machine-a", remote, (remote.url, 6, "null"))
    b = Machine(tmp_path, "machine-b", remote, (remote.url, 6, "null"))
    runner = a.start("apply", str(a.plan), "--auto-approve", "--parallelism", "1", hold_after=2)
    try:
        a.wait_held(runner)
        runner.send_signal(signal.SIGKILL)
    finally:
        runner.wait(timeout=30)
    names = b.backend().store.list_names("team/shop/shop.journal/")  # type: ignore[attr-defined]
    saved = {name: remote.raw_get(name) for name in names}
    assert saved
    assert b.run("apply", str(b.plan), "--auto-approve", "--lock-timeout", "30").returncode == 0
    before = _state_bytes(remote)
    for name, data in saved.items():
        if not name.endswith("/00000000"):
            continue
        remote.raw_put(name.replace("team/shop/shop.journal/", "team/shop/shop.journal/0stale"), data)
    for command in ("plan", "apply"):
        r = a.run(command, str(a.plan), "--auto-approve" if command == "apply" else "--json")
        said = r.stdout + r.stderr
        assert r.returncode != 0
        assert "does not match the stored state" in said and "serial" in said
        assert "cloudorch recover" in said
        assert _state_bytes(remote) == before


def test_a_skewed_clock_takes_nothing_from_a_live_holder(
    remote: Remote, tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    a = Machine(tmp_path, "machine-a", remote, (remote.url, 3, "null"))
    b = Machine(tmp_path, "machine-b", remote, (remote.url, 3, "null"))
    runner = a.start("apply", str(a.plan), "--auto-approve", "--parallelism", "1", hold_after=1)
    procs.append(runner)
    a.wait_held(runner)
    # B's clock runs 2 minutes ahead: A's lease looks long gone to B's wall clock, not to the store's
    r = b.run("apply", str(b.plan), "--auto-approve", "--lock-timeout", "4", CLOUDORCH_TEST_CLOCK_SKEW="120")
    assert r.returncode == 4, r.stderr
    assert "machine-a" in r.stderr
    a.release.touch()
    _, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    assert _open_runs(b.backend()) == []
    r = b.run("plan", str(b.plan), "--json", "--detailed-exitcode")
    assert r.returncode == 0, r.stderr


def test_a_superseded_holder_cannot_write_state(remote: Remote) -> None:
    """Fencing at the backend: A still believes its lease is good (it renewed a moment ago), but the
    lock was force-unlocked and taken by B since; A's write carries an older token and is refused."""
    from cloudorch.state import LockInfo, State
    from cloudorch.state.lock import LockLost

    first = remote.backend(lease_seconds=30)
    seed = State(plan_name="shop")
    first.write(seed, None)
    handle = first.lock(LockInfo.new("cloudorch apply"), 0)
    state = first.read()
    assert state is not None
    other = remote.backend(lease_seconds=30)
    other.force_unlock(handle.info.id)
    with other.lock(LockInfo.new("cloudorch apply"), 0) as newer:
        assert newer.fence is not None and handle.fence is not None and newer.fence > handle.fence
        before = remote.raw_get("team/shop/shop.json")
        state.resources.clear()
        with pytest.raises(LockLost, match="fencing token"):
            first.write_next(state)
        assert remote.raw_get("team/shop/shop.json") == before
    handle.release()


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
def test_a_stopped_holder_stops_starting_work_and_its_late_writes_are_refused(
    round_: int, servers: Any, tmp_path: Path, procs: list[subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGSTOP A at an exact point, let its lease run out, let B take over, recover and finish; then
    SIGCONT A: it starts nothing, its journal and state writes are refused, and no VPC exists twice."""
    remote = make_remote("s3", servers("s3"))
    for k, v in remote.env.items():
        monkeypatch.setenv(k, v)
    tag = f"v{uuid.uuid4().hex[:8]}x"
    a = Machine(tmp_path, "machine-a", remote, (remote.url, 6, "vpc"), tag)
    b = Machine(tmp_path, "machine-b", remote, (remote.url, 6, "vpc"), tag)
    runner = a.start("apply", str(a.plan), "--auto-approve", "--parallelism", "1", hold_after=2 + round_)
    procs.append(runner)
    a.wait_held(runner)
    runner.send_signal(signal.SIGSTOP)
    a.release.touch()  # A would go on at once, were it running

    r = b.run("apply", str(b.plan), "--auto-approve", "--json", "--lock-timeout", "30")
    assert r.returncode == 0, r.stderr
    after_b = _state_bytes(remote)

    runner.send_signal(signal.SIGCONT)
    _, err = runner.communicate(timeout=60)
    assert runner.returncode != 0
    assert "lost the lock" in err or "refusing to write" in err, err
    assert _state_bytes(remote) == after_b

    import boto3

    ec2 = boto3.client("ec2", region_name="us-east-1")
    counts: dict[str, int] = {}
    for vpc in ec2.describe_vpcs()["Vpcs"]:
        for label in vpc.get("Tags", []):
            if label["Key"] == "cloudorch:address":
                counts[label["Value"]] = counts.get(label["Value"], 0) + 1
    mine = {k: v for k, v in counts.items() if k.startswith(tag)}
    assert sorted(mine) == sorted(f"{tag}{i}" for i in range(6)), mine
    assert all(count == 1 for count in mine.values()), mine
    r = b.run("plan", str(b.plan), "--json", "--detailed-exitcode")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("kind", ["no-header", "broken-chain"])
def test_a_hostile_journal_beside_remote_state_is_refused(remote: Remote, tmp_path: Path, kind: str) -> None:
    b = Machine(tmp_path, "machine-b", remote, (remote.url, 3, "null"))
    assert b.run("apply", str(b.plan), "--auto-approve").returncode == 0
    victim = {"op": "r0", "address": "r0", "action": "delete", "record": None}
    lines = [{"at": "2026-01-01T00:00:00.000Z", "event": "finished", "op": victim}]
    if kind == "broken-chain":  # a genuine header for this very state, then a line that does not follow it
        binding = b.backend().binding()
        assert binding is not None
        header = {"at": "2026-01-01T00:00:00.000Z", "event": "run", "op": {}, "prev": "",
                  "journal": {"format": 2, "run_id": "evil", "lineage": binding.lineage,
                              "serial": binding.serial, "state_hash": binding.state_hash}}  # fmt: skip
        lines = [header, {**lines[0], "prev": "0" * 64}]
    remote.raw_put("team/shop/shop.journal/evil/00000000", b"".join(json.dumps(x).encode() + b"\n" for x in lines))
    before = _state_bytes(remote)
    for command in ("plan", "apply"):
        r = b.run(command, str(b.plan), "--auto-approve" if command == "apply" else "--json")
        said = r.stdout + r.stderr
        assert r.returncode != 0, said
        assert ("no header binding it" if kind == "no-header" else "hash chain is broken") in said
        assert _state_bytes(remote) == before
