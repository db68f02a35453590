"""The state lock's identity, lease and fencing token, independent of where the lock lives.

`LockInfo` says who holds a lock (id, user, host, pid, command, since, lease expiry, fencing
token); `LockHandle` is what a backend returns from `lock()`: a context manager whose daemon
thread renews the lease every lease/3 until released, and whose `check()` the holder calls before
each operation: it raises `LockLost` once a renewal failed, the lock was taken, or the lease may
have run out (judged on this process's monotonic clock, which keeps running while the process is
stopped) and cannot be renewed now. Backends decide how a lock is stored, taken and judged stale;
this module never touches files or the network, except for the test barrier
(`CLOUDORCH_TEST_BARRIER`) below.
`CLOUDORCH_TEST_HOSTNAME` replaces the host name a lock records: a test seam, so two processes
on one machine can stand for two machines (a live pid on *this* host is never taken over).
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from cloudorch import clock
from cloudorch.errors import StateError, StateLockedError

DEFAULT_LEASE_SECONDS = 60.0
HOSTNAME_ENV = "CLOUDORCH_TEST_HOSTNAME"
#: past this share of the lease since the last confirmed renewal, `check()` renews before answering
CHECK_RENEW_SHARE = 0.6

#: Test seam for race tests, read only by `wait_at_test_barrier`: a directory path.
TEST_BARRIER_ENV = "CLOUDORCH_TEST_BARRIER"
#: How long a process waits at the test barrier before going on without a release.
TEST_BARRIER_SECONDS = 30.0


def _now() -> datetime:
    return clock.now()


def hostname() -> str:
    """This machine's name as locks record it (`CLOUDORCH_TEST_HOSTNAME` in tests)."""
    return os.environ.get(HOSTNAME_ENV) or socket.gethostname()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): fall back to the uid
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def _is_zombie(pid: int) -> bool:
    """A holder killed but not yet reaped by its parent: it still answers signal 0, and can do
    nothing more. Linux shows it in state Z; elsewhere (no /proc) it counts as alive."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    # `pid (command) state ...`: the command may itself hold `) `, so the state follows the last `)`
    end = stat.rfind(b")")
    return end > 0 and stat[end + 2 : end + 3] == b"Z"


@dataclass(frozen=True)
class LockInfo:
    """Who holds (or wants) a state lock. Times are ISO 8601 UTC."""

    id: str
    user: str
    host: str
    pid: int
    command: str
    started_at: str
    expires_at: str | None = None
    #: the lease length the holder renews with (how long a silent lock stays valid)
    lease_seconds: float | None = None
    #: the fencing token of this acquisition: greater than every earlier acquisition's
    fence: int | None = None

    @classmethod
    def new(cls, command: str) -> LockInfo:
        """A fresh lock request for this process: a new uuid id, this user, host and pid, now."""
        return cls(
            id=str(uuid.uuid4()),
            user=current_user(),
            host=hostname(),
            pid=os.getpid(),
            command=command,
            started_at=_iso(_now()),
        )

    def with_lease(self, seconds: float) -> LockInfo:
        """A copy whose lease runs `seconds` from now."""
        return replace(self, expires_at=_iso(_now() + timedelta(seconds=seconds)), lease_seconds=seconds)

    def lease_expired(self, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        try:
            expires = datetime.fromisoformat(self.expires_at)
        except ValueError:
            return True
        return (now or _now()) >= expires

    def holder_is_dead(self) -> bool:
        """True only when we can tell for sure: same host and no such process."""
        if not self.on_this_host() or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, owned by someone else
            return False
        except OSError:  # pragma: no cover - platforms without signal 0
            return False
        return _is_zombie(self.pid)

    def on_this_host(self) -> bool:
        return self.host == hostname()

    def holder_is_alive_here(self) -> bool:
        """True when the holder is a live process on this host: such a lock is never taken over,
        whatever its lease says (a stopped or very slow process still holds it)."""
        if not self.on_this_host() or self.pid <= 0:
            return False
        return not self.holder_is_dead()

    def describe(self) -> str:
        """`ann@build-3 pid 4242 (cloudorch apply) since 2024-05-01T10:00:00.000+00:00`."""
        return f"{self.user}@{self.host} pid {self.pid} ({self.command}) since {self.started_at}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> LockInfo:
        """Parse a stored lock; raises ValueError when it is not a complete lock document."""
        data: Any = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("lock document is not an object")
        try:
            return cls(
                id=str(data["id"]),
                user=str(data["user"]),
                host=str(data["host"]),
                pid=int(data["pid"]),
                command=str(data["command"]),
                started_at=str(data["started_at"]),
                expires_at=None if data.get("expires_at") is None else str(data["expires_at"]),
                lease_seconds=None if data.get("lease_seconds") is None else float(data["lease_seconds"]),
                fence=None if data.get("fence") is None else int(data["fence"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"lock document is incomplete: {exc}") from exc


class LockHeldError(StateLockedError):
    """The lock is held by someone else; `holder` says who (exit code 4)."""

    def __init__(self, what: str, holder: LockInfo) -> None:
        super().__init__(
            f"{what} is locked by {holder.describe()}",
            hint=(
                "Wait for that command to finish. If you are sure it is gone, "
                f"release the lock with: cloudorch force-unlock {holder.id}"
            ),
        )
        self.holder = holder


class LockLost(StateError):
    """The state lock is no longer this process's (taken over, force-unlocked, or its lease could
    not be renewed): it starts no new operation and its state writes are refused."""


class LockHandle:
    """A held lock. Use as a context manager or call `release()`; renews its lease while held.

    `took_over` is the stale lock this one replaced (dead holder or expired lease), so the CLI can
    say so. `fence` is this acquisition's fencing token. `check()` raises `LockLost` once the
    lock is not certainly ours: renewal found it taken (`lost`), a renewal failed
    (`renew_error`), or the lease may have run out and an immediate renewal does not succeed.
    """

    def __init__(
        self,
        info: LockInfo,
        *,
        took_over: LockInfo | None,
        lease_seconds: float,
        renew: Callable[[LockInfo], bool],
        release: Callable[[LockInfo], None],
        fence: int | None = None,
        what: str = "the state",
    ) -> None:
        self._info = info
        self.took_over = took_over
        self.lease_seconds = lease_seconds
        self.fence = fence if fence is not None else info.fence
        self.what = what
        self._renew = renew
        self._release = release
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._released = False
        # when the last successful acquisition or renewal was *sent*: the lease runs from then
        self._confirmed_at = time.monotonic()
        self.lost = False
        self.renewals = 0
        self.renew_error: BaseException | None = None
        self._thread = threading.Thread(target=self._renew_loop, name=f"cloudorch-lease-{info.id[:8]}", daemon=True)
        self._thread.start()
        wait_at_test_barrier()

    @property
    def info(self) -> LockInfo:
        with self._mutex:
            return self._info

    @property
    def released(self) -> bool:
        return self._released

    def check(self) -> None:
        """Raise `LockLost` unless the lock is certainly still ours for a while; call before
        starting each operation and before each write. Cheap while renewals keep up."""
        if self._usable_for() > 0:
            return
        with self._mutex:
            if self._released:
                raise LockLost(f"the lock on {self.what} was released", hint="internal error; please report it")
            if self._usable_for() <= 0 and not self.lost and self.renew_error is None:
                self._renew_locked()
            if self.lost or self.renew_error is not None or self._usable_for() <= 0:
                raise self._loss()

    def _usable_for(self) -> float:
        if self.lost or self.renew_error is not None or self._released:
            return 0.0
        return self.lease_seconds * CHECK_RENEW_SHARE - (time.monotonic() - self._confirmed_at)

    def _loss(self) -> LockLost:
        if self.lost:
            why = "another process holds it now (taken over after its lease ran out, or force-unlocked)"
        elif self.renew_error is not None:
            why = f"renewing its lease failed: {self.renew_error}"
        else:
            why = "its lease may have run out and could not be renewed"
        return LockLost(
            f"lost the lock on {self.what}: {why}; starting no new operation",
            hint="Operations already finished are in the journal; the next command (on any machine) recovers them. "
            "Check the state with `cloudorch plan` before applying again.",
        )

    def renew_now(self) -> bool:
        """Extend the lease immediately; False if the lock is no longer ours or renewing failed."""
        with self._mutex:
            if self._released or self.lost or self.renew_error is not None:
                return False
            return self._renew_locked()

    def _renew_locked(self) -> bool:
        renewed = self._info.with_lease(self.lease_seconds)
        sent = time.monotonic()
        try:
            ok = self._renew(renewed)
        except Exception as exc:  # the holder stops starting work: see check()
            self.renew_error = exc
            return False
        if ok:
            self._info = renewed
            self._confirmed_at = sent
            self.renewals += 1
        else:
            self.lost = True
        return ok

    def release(self) -> None:
        """Stop renewing and remove the lock if it is still ours. Safe to call twice."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=self.lease_seconds)
        with self._mutex:
            if self._released:
                return
            self._released = True
            if not self.lost:
                self._release(self._info)

    def _renew_loop(self) -> None:
        interval = max(self.lease_seconds / 3.0, 0.01)
        while not self._stop.wait(interval):
            if not self.renew_now():
                return

    def __enter__(self) -> LockHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def wait_at_test_barrier() -> None:
    """Hold this process inside its locked section while a race test looks at it.

    Every backend builds a `LockHandle` the moment it holds the lock, so this is the one place
    that runs right after any state lock is taken. With `CLOUDORCH_TEST_BARRIER=<dir>` set, the
    process creates `<dir>/<pid>.arrived` and waits (lease still renewed, at most
    `TEST_BARRIER_SECONDS`) until `<dir>/release` exists. A test can then start a competitor while
    the winner provably holds the lock, instead of sleeping and hoping the two overlap. Unset (as
    for every user), it does nothing.
    """
    directory = os.environ.get(TEST_BARRIER_ENV)
    if not directory:
        return
    barrier = Path(directory)
    (barrier / f"{os.getpid()}.arrived").touch()
    release = barrier / "release"
    deadline = time.monotonic() + TEST_BARRIER_SECONDS
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.005)


def unknown_holder(lock_id: str, started_at: str) -> LockInfo:
    """Stands in for a lock document that cannot be read (being written, or damaged)."""
    return LockInfo(id=lock_id, user="unknown", host="unknown", pid=0, command="unknown", started_at=started_at)


def lock_mismatch(what: str, lock_id: str, current: LockInfo | None) -> StateError:
    if current is None:
        return StateError(f"{what} is not locked; nothing to unlock", hint="No action is needed.")
    return StateError(
        f"lock id {lock_id} does not match the lock on {what} (id {current.id}, held by {current.describe()})",
        hint=f"Check the id; to release that lock run: cloudorch force-unlock {current.id}",
    )
