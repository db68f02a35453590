"""State locks: contention between processes, stale and expired takeover, leases, force-unlock."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from cloudorch.errors import ExitCode, StateError, StateLockedError
from cloudorch.state import LocalBackend, LockHeldError, LockInfo

RunChild = Callable[[str, list[str]], subprocess.Popen[str]]

HOLD_LOCK = """
import sys, time
from pathlib import Path
from cloudorch.state import LocalBackend, LockInfo
backend = LocalBackend(Path(sys.argv[1]), "shop", lease_seconds=float(sys.argv[2]))
handle = backend.lock(LockInfo.new("cloudorch apply"), timeout=10)
print(handle.info.id, flush=True)
time.sleep(60)
"""


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _plant(backend: LocalBackend, info: LockInfo) -> None:
    backend.lock_path.parent.mkdir(parents=True, exist_ok=True)
    backend.lock_path.write_text(info.to_json())


def test_lock_info_new_describes_this_process() -> None:
    info = LockInfo.new("cloudorch apply")
    assert info.pid == os.getpid()
    assert info.host == socket.gethostname()
    assert info.command == "cloudorch apply"
    assert len(info.id) == 36
    assert info.expires_at is None
    assert LockInfo.from_json(info.to_json()) == info
    assert f"@{info.host} pid {info.pid} (cloudorch apply) since " in info.describe()


def test_lock_and_release(backend: LocalBackend) -> None:
    with backend.lock(LockInfo.new("cloudorch apply"), timeout=1) as handle:
        assert handle.took_over is None
        current = backend.current_lock()
        assert current is not None and current.id == handle.info.id
        assert current.expires_at is not None
    assert backend.current_lock() is None
    assert not backend.lock_path.exists()
    handle.release()  # twice is fine


def test_second_holder_in_same_process_times_out(backend: LocalBackend) -> None:
    with backend.lock(LockInfo.new("cloudorch apply"), timeout=1) as handle:
        started = time.monotonic()
        with pytest.raises(LockHeldError) as excinfo:
            backend.lock(LockInfo.new("cloudorch plan"), timeout=0.3)
        assert time.monotonic() - started >= 0.3
        assert excinfo.value.holder.id == handle.info.id


def test_lock_contention_between_two_processes(
    backend: LocalBackend, root: Path, run_child: RunChild
) -> None:
    child = run_child(HOLD_LOCK, [str(root), "60"])
    assert child.stdout is not None
    lock_id = child.stdout.readline().strip()
    assert lock_id, child.stderr.read() if child.stderr else ""

    started = time.monotonic()
    with pytest.raises(StateLockedError) as excinfo:
        backend.lock(LockInfo.new("cloudorch plan"), timeout=0.5)
    waited = time.monotonic() - started
    err = excinfo.value
    assert waited >= 0.5  # waited out its timeout first; how long it takes is bench/library_bench.py's
    assert err.exit_code == 4
    assert err.exit_code == ExitCode.LOCKED
    assert f"pid {child.pid}" in err.message
    assert "(cloudorch apply)" in err.message
    assert "since " in err.message
    assert err.hint is not None and f"cloudorch force-unlock {lock_id}" in err.hint

    # SIGKILL the holder: its pid is dead on this host, so the next lock takes over.
    child.send_signal(signal.SIGKILL)
    child.wait()
    with backend.lock(LockInfo.new("cloudorch apply"), timeout=2) as handle:
        assert handle.took_over is not None
        assert handle.took_over.pid == child.pid
        assert handle.took_over.id == lock_id


def test_stale_lock_of_dead_pid_is_taken_over(backend: LocalBackend) -> None:
    stale = replace(LockInfo.new("cloudorch apply"), pid=_dead_pid()).with_lease(3600)
    _plant(backend, stale)
    with backend.lock(LockInfo.new("cloudorch apply"), timeout=0) as handle:
        assert handle.took_over == stale
        current = backend.current_lock()
        assert current is not None and current.id == handle.info.id


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to tell a zombie")
def test_a_killed_holder_not_yet_reaped_is_dead(backend: LocalBackend) -> None:
    # its parent has not waited for it yet: signal 0 still reaches it, but it holds nothing
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = replace(LockInfo.new("cloudorch apply"), pid=child.pid).with_lease(3600)
        assert not alive.holder_is_dead() and alive.holder_is_alive_here()
        child.kill()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_bytes().rsplit(b")", 1)[1][1:2] != b"Z":
            assert time.monotonic() < deadline, "the killed child never became a zombie"
            time.sleep(0.01)
        assert alive.holder_is_dead() and not alive.holder_is_alive_here()
        _plant(backend, alive)
        with backend.lock(LockInfo.new("cloudorch recover"), timeout=0) as handle:
            assert handle.took_over == alive
    finally:
        child.kill()
        child.wait()


def test_lock_from_another_host_is_not_judged_by_pid(backend: LocalBackend) -> None:
    foreign = replace(LockInfo.new("cloudorch apply"), host="other-host", pid=_dead_pid()).with_lease(3600)
    _plant(backend, foreign)
    with pytest.raises(LockHeldError, match="@other-host"):
        backend.lock(LockInfo.new("cloudorch plan"), timeout=0.1)


def test_expired_lease_is_taken_over(backend: LocalBackend) -> None:
    expired = replace(LockInfo.new("cloudorch apply"), host="other-host").with_lease(-1)
    _plant(backend, expired)
    with backend.lock(LockInfo.new("cloudorch apply"), timeout=0) as handle:
        assert handle.took_over is not None and handle.took_over.id == expired.id


def test_lease_is_renewed_while_held(root: Path) -> None:
    holder = LocalBackend(root, "shop", lease_seconds=0.3)
    other = LocalBackend(root, "shop", lease_seconds=0.3)
    with holder.lock(LockInfo.new("cloudorch apply"), timeout=0) as handle:
        first_expiry = handle.info.expires_at
        time.sleep(0.8)  # well past the first lease: only renewal keeps it
        assert handle.renewals >= 2
        current = holder.current_lock()
        assert current is not None and current.expires_at is not None and first_expiry is not None
        assert current.expires_at > first_expiry
        with pytest.raises(LockHeldError):
            other.lock(LockInfo.new("cloudorch plan"), timeout=0)
    assert holder.current_lock() is None


def test_unreadable_lock_waits_then_is_stale(backend: LocalBackend) -> None:
    backend.lock_path.parent.mkdir(parents=True, exist_ok=True)
    backend.lock_path.write_bytes(b"")  # a writer died between O_EXCL create and write
    with pytest.raises(LockHeldError, match="unknown@unknown"):
        backend.lock(LockInfo.new("cloudorch plan"), timeout=0)
    old = time.time() - 60
    os.utime(backend.lock_path, (old, old))
    with backend.lock(LockInfo.new("cloudorch plan"), timeout=0) as handle:
        assert handle.took_over is not None and handle.took_over.id == "unreadable"


def test_force_unlock(backend: LocalBackend) -> None:
    handle = backend.lock(LockInfo.new("cloudorch apply"), timeout=0)
    with pytest.raises(StateError, match="does not match") as excinfo:
        backend.force_unlock("not-the-id")
    assert excinfo.value.hint is not None and handle.info.id in excinfo.value.hint
    backend.force_unlock(handle.info.id)
    assert backend.current_lock() is None
    with pytest.raises(StateError, match="is not locked"):
        backend.force_unlock(handle.info.id)

    # The old holder finds out at its next renewal and never removes a newer holder's lock.
    newer = backend.lock(LockInfo.new("cloudorch apply"), timeout=0)
    assert handle.renew_now() is False
    assert handle.lost
    handle.release()
    current = backend.current_lock()
    assert current is not None and current.id == newer.info.id
    newer.release()


def _race_for_stale_lock(root: Path, contenders: int) -> list[str]:
    """Plant a stale lock, let `contenders` threads see it at once; return the winners' ids."""
    seed = LocalBackend(root, "shop")
    _plant(seed, replace(LockInfo.new("cloudorch apply"), pid=_dead_pid()).with_lease(3600))
    barrier = threading.Barrier(contenders)
    winners: list[str] = []

    def contend() -> None:
        backend = LocalBackend(root, "shop", poll_interval=0.01)
        info = LockInfo.new("cloudorch apply")
        barrier.wait()
        with contextlib.suppress(LockHeldError):
            backend.lock(info, timeout=0.2)
            winners.append(info.id)

    threads = [threading.Thread(target=contend) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    current = seed.current_lock()
    assert current is not None and [current.id] == winners[:1]
    seed.force_unlock(current.id)
    return winners


def test_takeover_is_race_safe(root: Path) -> None:
    """Many contenders see the same stale lock at once; exactly one gets it, every time."""
    for _ in range(3):
        winners = _race_for_stale_lock(root, contenders=8)
        assert len(winners) == 1, winners


def test_test_barrier_holds_the_lock_holder_until_released(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CLOUDORCH_TEST_BARRIER: a process that takes the lock announces itself and waits inside
    the locked section until `release` exists, so race tests need no sleeps (see test_remote_state_cli)."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    monkeypatch.setenv("CLOUDORCH_TEST_BARRIER", str(barrier))
    handles: list[object] = []
    holder = threading.Thread(target=lambda: handles.append(backend.lock(LockInfo.new("cloudorch apply"), 0)))
    holder.start()
    arrived = barrier / f"{os.getpid()}.arrived"
    for _ in range(6000):  # bounded: the lock is taken in well under a minute
        if arrived.exists():
            break
        time.sleep(0.01)
    assert arrived.exists()
    # held at the barrier: the lock is taken, `lock()` has not returned, a competitor is refused
    assert backend.current_lock() is not None and handles == []
    monkeypatch.delenv("CLOUDORCH_TEST_BARRIER")
    with pytest.raises(LockHeldError):
        backend.lock(LockInfo.new("cloudorch plan"), 0)
    (barrier / "release").touch()
    holder.join(timeout=60)
    assert not holder.is_alive() and len(handles) == 1
    handles[0].release()  # type: ignore[attr-defined]
    assert backend.current_lock() is None
