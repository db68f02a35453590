"""Remote state through the real CLI: apply/plan/history/rollback, racing processes, a killed
runner, and `state migrate` / `state rekey`, each against moto, fake-gcs-server and Azurite."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from remote_testkit import SCHEMES, CliResult, Remote, make_remote

from cloudorch.state.backends import open_backend

PLAN = """\
version: 1
name: {name}
variables:
  owner: {{type: string, default: web}}
  hold: {{type: number, default: 0}}
{backend}resources:
  marker:
    type: core.null
    properties: {{values: {{owner: "${{var.owner}}"}}}}
  hold:
    type: core.wait
    properties: {{seconds: "${{var.hold}}"}}
"""


def _plan(tmp_path: Path, name: str, backend: str | None, **options: Any) -> Path:
    lines = ""
    if backend is not None:
        lines = f"backend:\n  url: {backend}\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in options.items())
    path = tmp_path / f"{name}.yaml"
    path.write_text(PLAN.format(name=name, backend=lines))
    return path


def _start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cloudorch", *args],
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = _start(*args, cwd=cwd)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


Cli = Callable[..., CliResult]


def _serials(cli: Cli, plan: Path) -> list[int]:
    r = cli("state", "history", str(plan), "--json")
    assert r.returncode == 0, r.stderr
    return [e["serial"] for e in json.loads(r.stdout)["history"]]


def test_apply_plan_history_rollback(cli: Cli, remote: Remote, tmp_path: Path) -> None:
    plan = _plan(tmp_path, "shop", remote.url)
    for owner in ("ann", "ben"):
        r = cli("apply", str(plan), "--auto-approve", "--var", f"owner={owner}")
        assert r.returncode == 0, r.stderr
    r = cli("plan", str(plan), "--var", "owner=ben", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["summary"]["has_changes"] is False
    assert not (tmp_path / ".cloudorch" / "state").exists()  # state is remote; nothing local but the journal dir

    serials = _serials(cli, plan)
    assert serials == sorted(serials, reverse=True) and len(serials) >= 2
    backend = open_backend(remote.url, {}, key="shop", local_root=tmp_path / ".cloudorch")
    first = backend.read_version(serials[-1])
    assert first.resources["marker"].properties["values"] == {"owner": "ann"}

    r = cli("rollback", str(plan), "--to", str(serials[-1]), "--auto-approve", "--json")
    assert r.returncode == 0, r.stderr
    current = backend.read()
    assert current is not None and current.serial == serials[0] + 1
    assert current.resources["marker"].properties["values"] == {"owner": "ann"}


ROUNDS = 10  # each round is forced to race (one barrier); more rounds only add time

# The racers are forked from one warm interpreter that has already imported the CLI, the engine
# and the cloud SDK: each racer is still its own process (own pid, own SDK client, own lease
# thread) running `cloudorch apply` through `cloudorch.cli.main`, but both are released at the
# same instant through a pipe, instead of after two interpreter start-ups (~0.7 s of CPU each,
# and seconds of jitter on a loaded machine). One line in, one JSON line out per round.
#
# Whichever racer takes the lock stops at the test barrier (`CLOUDORCH_TEST_BARRIER`, see
# cloudorch/state/lock.py) and stays inside its locked section until the other racer has exited;
# only then is the barrier released. So the loser always meets a held lock, however the machine
# schedules the two, and the reply says who had arrived at the barrier when the loser ended (the
# loser never; the winner, unless it was still between writing the lock and reaching the barrier).
RACER = r"""
import json, os, sys, tempfile
import cloudorch.api, cloudorch.cli.app, cloudorch.engine.applier, cloudorch.state.backends.remote
from cloudorch.cli import main
for sdk in ("boto3", "google.cloud.storage", "azure.storage.blob"):
    __import__(sdk)
for line in sys.stdin:
    request = json.loads(line)
    barrier = request["barrier"]
    os.environ["CLOUDORCH_TEST_BARRIER"] = barrier
    gate_r, gate_w = os.pipe()
    racers = {}
    for _ in range(2):
        err = tempfile.TemporaryFile()
        pid = os.fork()
        if pid == 0:
            os.close(gate_w)
            os.read(gate_r, 1)  # wait for the start
            out = os.open(os.devnull, os.O_WRONLY)
            os.dup2(out, 1)
            os.dup2(err.fileno(), 2)
            try:
                code = main(request["args"])
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
        racers[pid] = err
    os.close(gate_r)
    os.write(gate_w, b"go")  # both read one byte of it: released together
    os.close(gate_w)
    done = []
    while racers:
        pid, status = os.wait()
        err = racers.pop(pid)
        err.seek(0)
        arrived = sorted(int(name.split(".")[0]) for name in os.listdir(barrier) if name.endswith(".arrived"))
        done.append({"pid": pid, "code": os.waitstatus_to_exitcode(status), "stderr": err.read().decode(),
                     "arrived_before_exit": arrived})
        open(os.path.join(barrier, "release"), "w").close()
    print(json.dumps(done), flush=True)
"""


@pytest.mark.slow
def test_two_applies_racing_exactly_one_wins(remote: Remote, tmp_path: Path) -> None:
    """20 times: two `apply` processes on the same plan and backend at once. The winner is held
    at the test barrier inside its locked section until the loser has exited, so the two always
    overlap; one applies, the other exits 4 naming it, and the serial grows by exactly one. The
    hold resource's `seconds` changes each round so every round has a change to apply."""
    plan = _plan(tmp_path, "race", remote.url)
    backend = open_backend(remote.url, {}, key="race", local_root=tmp_path / ".cloudorch")
    racer = subprocess.Popen(
        [sys.executable, "-c", RACER],
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert racer.stdin is not None and racer.stdout is not None
    serial = 0
    try:
        for i in range(ROUNDS):
            hold = f"0.0{i:02d}"
            barrier = tmp_path / f"barrier{i}"
            barrier.mkdir()
            args = ["apply", str(plan), "--auto-approve", "--var", f"hold={hold}"]
            racer.stdin.write(json.dumps({"args": args, "barrier": str(barrier)}) + "\n")
            racer.stdin.flush()
            loser, winner = json.loads(racer.stdout.readline())
            assert (loser["code"], winner["code"]) == (4, 0), (i, loser, winner)
            # the loser ended while the winner was still held inside the lock, and only it had arrived
            # the loser never got inside; the winner may not have reached the barrier yet (it holds
            # the lock from the moment the lock object is written, a little before the barrier)
            assert loser["pid"] not in loser["arrived_before_exit"], (i, loser, winner)
            assert set(loser["arrived_before_exit"]) <= {winner["pid"]}, (i, loser, winner)
            assert f"pid {winner['pid']} (cloudorch apply)" in loser["stderr"], loser["stderr"]
            assert "force-unlock" in loser["stderr"]
            state = backend.read()
            assert state is not None
            assert state.serial == serial + 1, f"round {i}: serial {serial} -> {state.serial}"
            assert state.resources["hold"].properties["seconds"] == float(hold)
            serial = state.serial
    finally:
        racer.stdin.close()
        racer.wait(timeout=30)
    assert backend.current_lock() is None


@pytest.mark.slow
def test_runner_killed_while_holding_the_lock(remote: Remote, tmp_path: Path) -> None:
    plan = _plan(tmp_path, "killed", remote.url, lease_seconds=1)
    backend = open_backend(remote.url, {}, key="killed", local_root=tmp_path / ".cloudorch")
    runner = _start("apply", str(plan), "--auto-approve", "--var", "hold=30", cwd=tmp_path)
    deadline = time.monotonic() + 20
    while (held := backend.current_lock()) is None or held.pid != runner.pid:
        assert time.monotonic() < deadline and runner.poll() is None, runner.stderr and runner.stderr.read()
        time.sleep(0.05)
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=10)
    held = backend.current_lock()
    assert held is not None and held.pid == runner.pid

    r = _run("plan", str(plan), "--var", "hold=30", "--lock-timeout", "5", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "took over a stale state lock" in r.stderr
    assert f"pid {runner.pid}" in r.stderr
    assert backend.current_lock() is None


def test_migrate_local_s3_gcs_azure_local_keeps_every_serial(
    cli: Cli, servers: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = servers(*SCHEMES)
    targets = []
    for scheme in SCHEMES:
        r = make_remote(scheme, found, prefix="moved")
        targets.append(r.url)
        for k, v in r.env.items():
            monkeypatch.setenv(k, v)
    targets.append(f"file://{tmp_path / 'final'}")
    plan = _plan(tmp_path, "moving", None)
    for owner in ("ann", "ben", "cy"):
        assert cli("apply", str(plan), "--auto-approve", "--var", f"owner={owner}").returncode == 0
    before = _serials(cli, plan)
    for url in targets:
        r = cli("state", "migrate", str(plan), "--to", url, "--json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["switched"] is True, doc
        assert doc["documents"][0]["serials"] == sorted(before)
        assert f'url: "{url}"' in plan.read_text()
        assert _serials(cli, plan) == before
        r = cli("plan", str(plan), "--var", "owner=cy", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["summary"]["has_changes"] is False
    final = open_backend(targets[-1], {}, key="moving", local_root=tmp_path / ".cloudorch")
    assert final.read_version(before[-1]).resources["marker"].properties["values"] == {"owner": "ann"}


def test_migrate_refuses_a_target_that_holds_state(cli: Cli, remote: Remote, tmp_path: Path) -> None:
    plan = _plan(tmp_path, "busy", None)
    assert cli("apply", str(plan), "--auto-approve").returncode == 0
    (tmp_path / "other").mkdir()
    other = _plan(tmp_path / "other", "busy", remote.url)
    assert cli("apply", str(other), "--auto-approve").returncode == 0
    text = plan.read_text()
    r = cli("state", "migrate", str(plan), "--to", remote.url)
    assert r.returncode == 1
    assert "already holds a state" in r.stderr
    assert plan.read_text() == text


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_encrypted_state_and_rekey_through_the_cli(
    cli: Cli, servers: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = make_remote("s3", servers("s3"))
    for k, v in r.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("OLD_KEY", _key())
    monkeypatch.setenv("NEW_KEY", _key())
    plan = _plan(tmp_path, "secret", r.url, encryption={"key_env": "OLD_KEY"})
    assert cli("apply", str(plan), "--auto-approve", "--var", "owner=ann").returncode == 0
    raw = r.raw_get("team/shop/secret.json")
    assert b"ann" not in raw and b"marker" not in raw

    # the plan now names the new key; without the old one the state cannot be read, and nothing changes
    plan = _plan(tmp_path, "secret", r.url, encryption={"key_env": "NEW_KEY"})
    failed = cli("apply", str(plan), "--auto-approve", "--var", "owner=ben")
    assert failed.returncode == 1
    assert "encrypted with key" in failed.stderr and "Traceback" not in failed.stderr
    assert r.raw_get("team/shop/secret.json") == raw

    done = cli("state", "rekey", str(plan), "--old-key-env", "OLD_KEY", "--json")
    assert done.returncode == 0, done.stderr
    rekeyed = json.loads(done.stdout)["rekeyed"][0]
    assert rekeyed["changed"] is True and rekeyed["from_key"] != rekeyed["to_key"]
    r2 = cli("apply", str(plan), "--auto-approve", "--var", "owner=ben")
    assert r2.returncode == 0, r2.stderr
    # versions from before the rotation need the old key listed
    plan = _plan(tmp_path, "secret", r.url, encryption={"key_env": "NEW_KEY", "old_keys": [{"key_env": "OLD_KEY"}]})
    serials = _serials(cli, plan)
    backend = open_backend(
        r.url,
        {"encryption": {"key_env": "NEW_KEY", "old_keys": [{"key_env": "OLD_KEY"}]}},
        key="secret",
        local_root=tmp_path,
    )
    assert backend.read_version(serials[-1]).resources["marker"].properties["values"] == {"owner": "ann"}


def test_backend_block_errors_are_located(cli: Cli, tmp_path: Path) -> None:
    plan = _plan(tmp_path, "bad", "s3://team-state/shop", regoin="eu-west-1")
    r = cli("plan", str(plan))
    assert r.returncode == 1
    assert "bad.yaml:" in r.stderr and "backend.regoin: unknown option" in r.stderr
    assert "region" in r.stderr
    plan = _plan(tmp_path, "bad2", "gcs://team-state/shop")
    r = cli("plan", str(plan))
    assert r.returncode == 1 and "gs://bucket/prefix" in r.stderr and "bad2.yaml:" in r.stderr
    r = cli("plan", str(plan), "--backend", "s3://")
    assert r.returncode == 1 and "--backend" in r.stderr and "needs a bucket" in r.stderr


def test_force_unlock_a_remote_lock_through_the_cli(cli: Cli, remote: Remote, tmp_path: Path) -> None:
    from cloudorch.state import LockInfo

    plan = _plan(tmp_path, "stuck", remote.url)
    backend = open_backend(remote.url, {}, key="stuck", local_root=tmp_path / ".cloudorch")
    handle = backend.lock(LockInfo.new("cloudorch apply"), 0)
    try:
        refused = cli("plan", str(plan))
        assert refused.returncode == 4
        assert f"cloudorch force-unlock {handle.info.id} PLAN_FILE" in refused.stderr
        assert cli("force-unlock", "not-it", str(plan)).returncode == 1
        done = cli("force-unlock", handle.info.id, str(plan), "--json")
        assert done.returncode == 0, done.stderr
        assert backend.current_lock() is None
        assert cli("plan", str(plan)).returncode == 0
    finally:
        handle.release()


def test_validate_checks_the_backend_block_without_connecting(cli: Cli, tmp_path: Path) -> None:
    plan = _plan(tmp_path, "typo", "s3://team-state/shop", lock_tabel="locks")
    r = cli("validate", str(plan))
    assert r.returncode == 1
    assert "typo.yaml:" in r.stderr and "backend.lock_tabel: unknown option" in r.stderr
    assert "lock_table" in r.stderr
    good = _plan(tmp_path, "fine", "s3://no-such-bucket-anywhere/shop", lock_table="locks")
    assert cli("validate", str(good)).returncode == 0


def test_migrate_encrypted_state_between_clouds(
    cli: Cli, servers: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = servers("s3", "gs")
    source, target = make_remote("s3", found), make_remote("gs", found, prefix="moved")
    for k, v in {**source.env, **target.env}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("TEAM_KEY", _key())
    plan = _plan(tmp_path, "sealed", source.url, encryption={"key_env": "TEAM_KEY"})
    for owner in ("ann", "ben"):
        assert cli("apply", str(plan), "--auto-approve", "--var", f"owner={owner}").returncode == 0
    before = _serials(cli, plan)
    r = cli("state", "migrate", str(plan), "--to", target.url, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["switched"] is True
    assert _serials(cli, plan) == before
    raw = target.raw_get("moved/sealed.json")
    assert b'"ciphertext"' in raw and b"ben" not in raw  # still encrypted on the new backend


def test_migrate_does_not_switch_when_options_belong_to_the_old_cloud(
    cli: Cli, servers: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = servers("s3", "gs")
    source, target = make_remote("s3", found), make_remote("gs", found, prefix="moved")
    for k, v in {**source.env, **target.env}.items():
        monkeypatch.setenv(k, v)
    plan = _plan(tmp_path, "regional", source.url, region="us-east-1")
    assert cli("apply", str(plan), "--auto-approve").returncode == 0
    text = plan.read_text()
    r = cli("state", "migrate", str(plan), "--to", target.url)
    assert r.returncode == 0, r.stderr
    assert "backend options region do not apply to gs://" in r.stdout
    assert plan.read_text() == text  # copied and verified, but the plan still points at S3
    moved = open_backend(target.url, {}, key="regional", local_root=tmp_path / ".cloudorch")
    assert moved.read() is not None
