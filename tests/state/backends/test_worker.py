"""Remote stores hosted in a worker process (`cloudorch.state.backends.worker`), as the CLI runs them:
the same state semantics as in process, errors that cross the process boundary intact, a worker
that dies, and a CLI process that never imports the SDK itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from remote_testkit import SCHEMES, Remote, make_remote

from cloudorch.cli.prefetch import scheme_in_plan
from cloudorch.errors import StateError, StateLockedError
from cloudorch.state import LockInfo, ResourceRecord, State
from cloudorch.state.backends import open_backend, parse_backend_url, store_and_slot, worker
from cloudorch.state.backends.remote import RemoteBackend
from cloudorch.state.backends.url import parse_options

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(params=SCHEMES)
def hosted(request: pytest.FixtureRequest, servers: Any) -> Iterator[Remote]:
    """A fresh bucket on each emulator, with its store's worker started as the CLI starts it."""
    remote = make_remote(request.param, servers(request.param))
    assert worker.prefetch(remote.scheme) is not None
    yield remote
    worker.shutdown()


@pytest.fixture
def s3_hosted(servers: Any) -> Iterator[tuple[Remote, worker.StoreWorker]]:
    """A fresh S3 bucket on moto and the S3 store worker, started."""
    remote = make_remote("s3", servers("s3"))
    started = worker.prefetch("s3")
    assert started is not None
    yield remote, started
    worker.shutdown()


def _state(n: int = 3) -> State:
    state = State(plan_name="shop", serial=1)
    for i in range(n):
        state.resources[f"r{i}"] = ResourceRecord(address=f"r{i}", type="core.null", provider="core", id=f"id-{i}")
    return state


def _hosted_backend(remote: Remote) -> RemoteBackend:
    backend = remote.backend()
    assert isinstance(backend, RemoteBackend)
    assert isinstance(backend.store, worker.WorkerStore), "the prefetched worker should host the store"
    return backend


def _s3_plan(tmp_path: Path, url: str, resources: str, variables: str = "") -> Path:
    """A plan file `shop.yaml` with state at `url`; `resources` is the YAML under `resources:`."""
    plan = tmp_path / "shop.yaml"
    plan.write_text(f"version: 1\nname: shop\n{variables}backend:\n  url: {url}\nresources:\n{resources}")
    return plan


def _json_of(argv: list[str], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run a real process that must exit 0: its stdout as one JSON document, or else its last
    line as one (a probe printing after the CLI's own output)."""
    r = subprocess.run(
        argv, cwd=cwd, env={**os.environ, "NO_COLOR": "1", **env}, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    try:
        doc: dict[str, Any] = json.loads(r.stdout)
    except json.JSONDecodeError:
        doc = json.loads(r.stdout.strip().splitlines()[-1])
    return doc


def test_a_hosted_store_keeps_state_history_and_compare_and_swap(hosted: Remote) -> None:
    backend = _hosted_backend(hosted)
    with backend.lock(LockInfo.new("test"), 5.0):
        assert backend.read() is None
        backend.write(_state(), None)
        current = backend.read()
        assert current is not None and len(current.resources) == 3
        current.resources["added"] = ResourceRecord(address="added", type="core.null", provider="core", id="x")
        backend.write_next(current)
    assert [e.serial for e in backend.history()] == [2, 1]
    assert len(backend.read_version(1).resources) == 3

    # another client rewrites the object between our read and our write (same serial, a broken
    # lock): the store refuses our write rather than overwrite theirs
    mine = backend.read()
    assert mine is not None
    forged = _state(1)
    forged.lineage, forged.serial = mine.lineage, 2
    hosted.backend(key="forger").write(forged, None)
    forged_bytes = hosted.raw_get("team/shop/forger.json")
    hosted.raw_put("team/shop/shop.json", forged_bytes)
    mine.serial = 3
    with pytest.raises(StateError, match=r"changed since it was read.*nothing was overwritten"):
        backend.write(mine, 2)
    assert hosted.raw_get("team/shop/shop.json") == forged_bytes


def test_a_lock_held_through_a_worker_stops_a_runner_without_one(hosted: Remote) -> None:
    backend = _hosted_backend(hosted)
    parsed = parse_backend_url(hosted.url)
    store, slot = store_and_slot(
        parsed, parse_options(parsed.scheme, {}, None), "team/shop/shop.json", "team/shop/shop.lock", hosted.env
    )
    other = RemoteBackend(store, slot, state_name="team/shop/shop.json", key="shop", local_root=hosted.local_root)
    holder = LockInfo.new("cloudorch apply")
    with backend.lock(holder, 5.0):
        with pytest.raises(StateLockedError) as caught:
            other.lock(LockInfo.new("cloudorch plan"), 0.0)
        assert "cloudorch apply" in str(caught.value)
        assert other.current_lock() is not None and other.current_lock().id == holder.id  # type: ignore[union-attr]
    assert other.current_lock() is None  # released through the worker


def test_errors_keep_their_message_and_hint_across_the_process_boundary(
    s3_hosted: tuple[Remote, worker.StoreWorker],
) -> None:
    remote, _ = s3_hosted
    backend = open_backend("s3://no-such-bucket-here/x", {}, key="shop", local_root=remote.local_root, env=remote.env)
    assert isinstance(backend, RemoteBackend) and isinstance(backend.store, worker.WorkerStore)
    with pytest.raises(StateError) as caught:
        backend.read()
    assert "no-such-bucket-here does not exist" in caught.value.message
    assert caught.value.hint is not None and "versioning" in caught.value.hint


def test_a_worker_that_dies_is_a_clear_error_naming_the_switch(s3_hosted: tuple[Remote, worker.StoreWorker]) -> None:
    remote, started = s3_hosted
    backend = _hosted_backend(remote)
    assert backend.read() is None
    started._proc.kill()
    started._proc.wait()
    with pytest.raises(StateError) as caught:
        backend.read()
    assert "worker process stopped" in caught.value.message
    assert caught.value.hint is not None and worker.ENV_SWITCH in caught.value.hint


@pytest.mark.parametrize("sent", ["whole", "half"])
def test_a_call_abandoned_by_ctrl_c_does_not_garble_the_next(
    s3_hosted: tuple[Remote, worker.StoreWorker], sent: str
) -> None:
    """What Ctrl-C during a call leaves behind: a request sent whole whose answer nobody read, or
    one stopped half way through writing it. The next call still gets its own answer."""
    remote, started = s3_hosted
    backend = _hosted_backend(remote)
    backend.write(_state(), None)
    handle = backend.store.handle  # type: ignore[attr-defined]
    with started._lock:
        started._sent += 1
        message = worker._frame((started._sent, handle, "store.get", ("team/shop/nothing-here.json",), {}))
        if sent == "whole":
            started._send(message)
        else:  # what an interrupted _send leaves: part written to the pipe, the rest kept
            os.write(started._in.fileno(), message[:7])
            started._outbuf += message[7:]
    # in a thread: a garbled stream would leave the worker waiting for bytes, and this call hung
    got: list[State | None] = []
    reader = threading.Thread(target=lambda: got.append(backend.read()), daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert not reader.is_alive(), "the call after an abandoned one never got its answer"
    assert got[0] is not None and got[0].serial == 1 and len(got[0].resources) == 3


@pytest.mark.parametrize(
    ("text", "scheme"),
    [
        ("version: 1\nbackend:\n  url: s3://b/p\n  region: eu-west-1\nresources: {}\n", "s3"),
        ("backend: {url: 'gs://b/p'}\n", "gs"),
        ('backend:\n  # team state\n  lease_seconds: 30\n\n  "url": "azblob://acct/c/p"\n', "azblob"),
        ("backend:\n  url: file://.state\n", "file"),
        ("backend:\n  url: ${var.state_url}\n", None),
        ("resources:\n  x:\n    backend:\n      url: s3://not/top-level\n", None),
        ("version: 1\nname: shop\n", None),
    ],
)
def test_the_store_is_guessed_from_the_plan_text(text: str, scheme: str | None) -> None:
    assert scheme_in_plan(text) == scheme


def test_the_cli_leaves_the_sdk_to_the_worker_and_stops_it(servers: Any, tmp_path: Path) -> None:
    remote = make_remote("s3", servers("s3"))
    plan = _s3_plan(tmp_path, remote.url, "  a:\n    type: core.null\n    properties: {values: {n: 1}}\n")
    probe = textwrap.dedent(
        """
        import json, os, sys
        from cloudorch.cli import main
        code = main(sys.argv[1:])
        try:
            os.waitpid(-1, os.WNOHANG)
            children_left = True
        except ChildProcessError:
            children_left = False
        print(json.dumps({"code": code, "botocore": "botocore" in sys.modules, "children": children_left}))
        """
    )

    def run(*args: str, **env: str) -> dict[str, Any]:
        return _json_of([sys.executable, "-c", probe, *args], tmp_path, {**remote.env, **env})

    applied = run("apply", str(plan), "--auto-approve")
    assert applied == {"code": 0, "botocore": False, "children": False}
    assert run("plan", str(plan), "--detailed-exitcode") == {"code": 0, "botocore": False, "children": False}
    # a saved plan (JSON) names its plan file, whose backend block the worker is started for
    assert run("plan", str(plan), "-o", "saved.plan")["code"] == 0
    assert run("apply", "saved.plan") == {"code": 0, "botocore": False, "children": False}
    # switched off, the same command imports the SDK here and finds the state the worker wrote
    off = run("plan", str(plan), "--detailed-exitcode", **{worker.ENV_SWITCH: "0"})
    assert off == {"code": 0, "botocore": True, "children": False}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads a process's children from /proc")
def test_ctrl_c_reaches_the_cli_which_saves_state_and_unlocks_through_the_worker(servers: Any, tmp_path: Path) -> None:
    remote = make_remote("s3", servers("s3"))
    plan = _s3_plan(tmp_path, remote.url, "  slow:\n    type: core.wait\n    properties: {seconds: 2}\n")
    # its own process group, as a shell gives a foreground job: Ctrl-C signals the whole group
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloudorch", "apply", str(plan), "--auto-approve"],
        cwd=tmp_path,
        env={**os.environ, **remote.env, "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    backend = open_backend(remote.url, {}, key="shop", local_root=tmp_path / ".cloudorch", env=remote.env)
    deadline = time.monotonic() + 30
    while backend.current_lock() is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert len(children) == 1, "the apply should have one child: its store worker"
    time.sleep(0.3)  # the wait has started
    os.killpg(proc.pid, signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "saved" in err, (_out, err)
    assert backend.current_lock() is None
    state = backend.read()
    assert state is not None and "slow" in state.resources
    assert not Path(f"/proc/{children[0]}").exists() or "Z" in Path(f"/proc/{children[0]}/stat").read_text().split()[2]


def test_migrate_through_the_cli_with_the_source_in_a_worker(servers: Any, tmp_path: Path) -> None:
    """A real CLI process: S3 -> another S3 bucket (a second store in the same worker) -> GCS (the
    target's SDK in process, the source's in the worker) keeps every serial."""
    found = servers("s3", "gs")
    source = make_remote("s3", found)
    second, gcs = make_remote("s3", found, prefix="moved"), make_remote("gs", found, prefix="moved")
    plan = _s3_plan(
        tmp_path,
        source.url,
        '  a:\n    type: core.null\n    properties: {values: {n: "${var.n}"}}\n',
        variables="variables:\n  n: {type: number, default: 0}\n",
    )

    def cloudorch(*args: str) -> dict[str, Any]:
        return _json_of([sys.executable, "-m", "cloudorch", *args, "--json"], tmp_path, {**source.env, **gcs.env})

    for n in (1, 2, 3):
        cloudorch("apply", str(plan), "--auto-approve", "--var", f"n={n}")
    before = [e["serial"] for e in cloudorch("state", "history", str(plan))["history"]]
    assert before == [3, 2, 1]
    for target in (second.url, gcs.url):
        moved = cloudorch("state", "migrate", str(plan), "--to", target)
        assert moved["switched"] is True and moved["documents"][0]["serials"] == [1, 2, 3]
        assert [e["serial"] for e in cloudorch("state", "history", str(plan))["history"]] == before
