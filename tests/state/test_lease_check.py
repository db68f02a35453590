"""`LockHandle.check()`: the holder stops starting work once its lock is not certainly its own."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cloudorch.state import LocalBackend, LockInfo
from cloudorch.state.journal import Journal, StateBinding
from cloudorch.state.lock import LockHandle, LockLost


def _handle(renew: object, lease: float = 30.0) -> LockHandle:
    return LockHandle(
        LockInfo.new("cloudorch apply"),
        took_over=None,
        lease_seconds=lease,
        renew=renew,  # type: ignore[arg-type]
        release=lambda _info: None,
        fence=7,
    )


def test_a_failed_renewal_stops_work_and_is_not_swallowed() -> None:
    def broken(_info: LockInfo) -> bool:
        raise OSError("connection reset by peer")

    handle = _handle(broken)
    handle.check()  # fresh lease: fine
    assert handle.renew_now() is False
    with pytest.raises(LockLost, match="renewing its lease failed: connection reset by peer"):
        handle.check()
    handle.release()


def test_a_lock_found_taken_stops_work() -> None:
    handle = _handle(lambda _info: False)
    assert handle.renew_now() is False and handle.lost
    with pytest.raises(LockLost, match="another process holds it now"):
        handle.check()
    handle.release()


def test_an_overdue_lease_is_renewed_before_answering() -> None:
    calls: list[LockInfo] = []
    gate = threading.Event()

    def renew(info: LockInfo) -> bool:
        calls.append(info)
        return not gate.is_set()

    handle = _handle(renew, lease=30.0)
    handle._confirmed_at -= 60  # as if the process had been stopped for a minute
    handle.check()
    assert len(calls) == 1 and handle.renewals == 1
    handle._confirmed_at -= 60
    gate.set()  # meanwhile another process took the lock
    with pytest.raises(LockLost):
        handle.check()
    handle.release()


def test_journal_refuses_to_start_an_operation_without_the_lock(tmp_path: Path) -> None:
    handle = _handle(lambda _info: False)
    journal = Journal.start(tmp_path / "j.jsonl", {}, binding=StateBinding("L", 0, None), lease=handle)
    handle.renew_now()
    with pytest.raises(LockLost):
        journal.started({"op": "a", "address": "a", "action": "create"})
    journal.abandon()
    handle.release()


def test_a_force_unlocked_local_holder_cannot_write(tmp_path: Path) -> None:
    from cloudorch.state import State

    backend = LocalBackend(tmp_path / ".cloudorch", "shop")
    backend.write(State(plan_name="shop"), None)
    first = backend.lock(LockInfo.new("cloudorch apply"), 0)
    state = backend.read()
    assert state is not None
    other = LocalBackend(tmp_path / ".cloudorch", "shop")
    other.force_unlock(first.info.id)
    with other.lock(LockInfo.new("cloudorch apply"), 0) as newer:
        assert newer.fence is not None and first.fence is not None and newer.fence > first.fence
        before = backend.state_path.read_bytes()
        with pytest.raises(LockLost, match="fencing token"):
            backend.write_next(state)
        assert backend.state_path.read_bytes() == before
    first.release()


def test_a_live_process_on_this_host_is_never_taken_over(tmp_path: Path) -> None:
    from dataclasses import replace

    from cloudorch.state.lock import LockHeldError

    backend = LocalBackend(tmp_path / ".cloudorch", "shop", lease_seconds=0.2)
    backend._ensure_dirs()
    alive = replace(LockInfo.new("cloudorch apply"), pid=1).with_lease(-100)  # long expired, pid 1 lives
    backend.lock_path.write_text(alive.to_json())
    with pytest.raises(LockHeldError):
        backend.lock(LockInfo.new("cloudorch apply"), 0.3)
