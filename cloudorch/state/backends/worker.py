"""A remote store's cloud SDK in a process of its own, started before the plan is parsed.

Importing a cloud SDK and building its client costs every CLI process 0.2-0.3 s of CPU
(botocore: ~0.2 s) before its first state request: on a no-change plan of 1,000 resources that
is 40% on top of the same plan with local state. The CLI starts a worker as soon as it sees which
store a plan uses (`cloudorch.cli.prefetch`), so the SDK is imported
on the other core while this process parses the plan. `open_backend` then hosts the store and
its lock slot in the worker (`WorkerStore`, `WorkerSlot`). Compare-and-swap, leases, encryption
and history stay in this process's `RemoteBackend`: the worker only runs the same `ObjectStore`
and `LockSlot` methods it would run here, so both ways share one protocol and one set of tests.

The library never starts a worker by itself: without `prefetch`, stores run in process. The CLI
starts none when its process has loaded that SDK already (`main` called in process), and
`CLOUDORCH_STORE_WORKER=0` turns prefetching off. The protocol is length-prefixed pickles over
the worker's stdin and stdout, between two processes of the same program. Each reply carries its
request's number, so a call abandoned by Ctrl-C leaves a reply the next call skips. The worker
ignores SIGINT, because the parent owns Ctrl-C and still needs the worker to release its lock. It
exits when its stdin closes, so a parent killed with SIGKILL takes it along and its lock lease
runs out as usual.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import signal
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any, NoReturn

from cloudorch.errors import CloudorchError, StateError
from cloudorch.state.backends import SDKS, sdk_installed
from cloudorch.state.backends.store import (
    Acquired,
    LockSlot,
    ObjectStore,
    ObjectVersion,
    PreconditionFailed,
    SeenLock,
    StoredObject,
)
from cloudorch.state.lock import LockInfo

ENV_SWITCH = "CLOUDORCH_STORE_WORKER"

_HEADER = struct.Struct("!I")


def _frame(message: Any) -> bytes:
    """One message as the pipe carries it: its pickle's length, then the pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _unframe(buf: bytearray) -> Any | None:
    """Take the first whole message off `buf`; None (and `buf` untouched) until one has arrived."""
    if len(buf) < _HEADER.size:
        return None
    end = _HEADER.size + _HEADER.unpack_from(buf)[0]
    if len(buf) < end:
        return None
    message = pickle.loads(bytes(buf[_HEADER.size : end]))
    del buf[:end]
    return message


class WorkerGone(StateError):
    """The worker process ended while a call needed it."""


# --------------------------------------------------------------------------- the parent side


class StoreWorker:
    """The worker process for one scheme, and calls to the stores it hosts."""

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (the worker's stderr, read when it dies; closed by close())
        env = dict(os.environ)
        # the worker must import this very cloudorch: from a checkout put on sys.path by hand too
        # (an installed one it finds by itself, and site-packages must not go before the stdlib)
        here = str(Path(__file__).resolve().parents[3])
        if here not in {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", __name__, scheme],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            close_fds=True,
            start_new_session=True,  # a terminal's Ctrl-C reaches us, not the worker: see the module doc
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._in: IO[bytes] = self._proc.stdin
        self._out = self._proc.stdout.fileno()
        self._buf = bytearray()
        self._outbuf = bytearray()
        self._lock = threading.Lock()
        self._sent = 0
        self.calls = 0

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def open(self, parsed: Any, options: Any, state_name: str, lock_name: str, env: Mapping[str, str]) -> int:
        """Build a store and its lock slot in the worker; the handle later calls name.

        The URL and options go as plain fields: unpickling their classes would make the worker
        import pydantic and build the option models (~0.15 s) while the parent waits."""
        fields = (dataclasses.asdict(parsed), options.model_dump())
        handle: int = self.call(0, "open", *fields, state_name, lock_name, dict(env))
        return handle

    def call(self, handle: int, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.calls += 1
            self._sent += 1
            number = self._sent
            self._send(_frame((number, handle, method, args, kwargs)))
            while True:
                number_back, kind, value = self._receive()
                if number_back == number:
                    break  # earlier numbers: answers to calls a Ctrl-C abandoned
        if kind == "ok":
            return value
        raise _rebuild(self.scheme, kind, value)

    def _send(self, message: bytes) -> None:
        # A Ctrl-C can stop a write half way; the rest stays in self._outbuf and goes first with
        # the next call, so the worker always reads whole requests (the abandoned one's answer is
        # skipped by its number). Each write and its bookkeeping are one statement, with no point
        # between them where Python raises KeyboardInterrupt.
        self._outbuf += message
        fd = self._in.fileno()
        try:
            while self._outbuf:
                del self._outbuf[: os.write(fd, self._outbuf)]
        except OSError as exc:
            raise self._gone() from exc

    def _receive(self) -> Any:
        # bytes read stay in self._buf when a Ctrl-C interrupts the wait, so nothing is lost
        while (message := _unframe(self._buf)) is None:
            self._buf += (chunk := os.read(self._out, 1 << 20))
            if not chunk:
                raise self._gone()
        return message

    def _gone(self) -> WorkerGone:
        self._proc.poll()
        self._log.seek(0)
        tail = self._log.read()[-1500:].decode("utf-8", "replace").strip()
        code = self._proc.returncode
        return WorkerGone(
            f"the {self.scheme}:// state backend's worker process stopped"
            + (f" (exit code {code})" if code is not None else "")
            + (f":\n{tail}" if tail else ""),
            hint=f"run the command again; if it keeps failing, set {ENV_SWITCH}=0 to use the backend in "
            "this process, and please report it",
        )

    def close(self) -> None:
        """Stop the worker: after its last answer it holds nothing, so ending it loses nothing."""
        with contextlib.suppress(OSError):
            self._in.close()
        try:
            self._proc.wait(timeout=1.0 if self.calls else 0.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._log.close()


def _rebuild(scheme: str, kind: str, value: Any) -> BaseException:
    if kind == "precondition":
        return PreconditionFailed(value)
    if kind == "cloudorch":
        cls, message, hint, location, exit_code = value
        err: CloudorchError = cls.__new__(cls)
        CloudorchError.__init__(err, message, hint=hint, location=location, exit_code=exit_code)
        return err
    return StateError(
        f"the {scheme}:// state backend failed: {value}",
        hint=f"this is a bug in cloudorch: set {ENV_SWITCH}=0 to see where, and please report it",
    )


class WorkerStore(ObjectStore):
    """An `ObjectStore` hosted in a worker: every call goes there and back."""

    def __init__(self, worker: StoreWorker, handle: int) -> None:
        self.worker = worker
        self.handle = handle
        self._urls: dict[str, str] = {}

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.worker.call(self.handle, "store." + method, *args, **kwargs)

    def url(self, name: str) -> str:
        if name not in self._urls:
            self._urls[name] = str(self._call("url", name))
        return self._urls[name]

    def get(self, name: str) -> StoredObject | None:
        got: StoredObject | None = self._call("get", name)
        return got

    def get_lock(self, name: str) -> StoredObject | None:
        got: StoredObject | None = self._call("get_lock", name)
        return got

    def get_head(self, name: str, n: int, version_id: str | None = None) -> StoredObject | None:
        got: StoredObject | None = self._call("get_head", name, n, version_id)
        return got

    def get_version(self, name: str, version_id: str) -> bytes:
        data: bytes = self._call("get_version", name, version_id)
        return data

    def put(self, name: str, data: bytes, *, if_token: str | None) -> str:
        token: str = self._call("put", name, data, if_token=if_token)
        return token

    def delete(self, name: str, *, if_token: str) -> None:
        self._call("delete", name, if_token=if_token)

    def versions(self, name: str, limit: int) -> list[ObjectVersion]:
        found: list[ObjectVersion] = self._call("versions", name, limit)
        return found

    def require_history(self) -> None:
        self._call("require_history")

    def before_overwrite(self, name: str, token: str) -> None:
        self._call("before_overwrite", name, token)

    def list_names(self, prefix: str) -> list[str]:
        names: list[str] = self._call("list_names", prefix)
        return names

    def delete_many(self, names: list[str]) -> None:
        self._call("delete_many", names)

    def delete_version(self, name: str, version_id: str) -> None:
        self._call("delete_version", name, version_id)


class WorkerSlot(LockSlot):
    """A `LockSlot` hosted in a worker next to its store."""

    def __init__(self, worker: StoreWorker, handle: int) -> None:
        self.worker = worker
        self.handle = handle

    def _call(self, method: str, *args: Any) -> Any:
        return self.worker.call(self.handle, "slot." + method, *args)

    def create(self, info: LockInfo) -> Acquired | None:
        got: Acquired | None = self._call("create", info)
        return got

    def read(self) -> SeenLock | None:
        seen: SeenLock | None = self._call("read")
        return seen

    def take_over(self, info: LockInfo, seen: SeenLock) -> Acquired | None:
        got: Acquired | None = self._call("take_over", info, seen)
        return got

    def renew(self, info: LockInfo, token: str) -> str | None:
        new: str | None = self._call("renew", info, token)
        return new

    def release(self, info: LockInfo, token: str) -> None:
        self._call("release", info, token)

    def remove(self, seen: SeenLock) -> bool:
        return bool(self._call("remove", seen))


# --------------------------------------------------------------------------- the pool

_POOL: dict[str, StoreWorker] = {}
_POOL_LOCK = threading.Lock()


def enabled() -> bool:
    value = os.environ.get(ENV_SWITCH, "1").strip().lower()
    return value not in ("0", "false", "no", "off") and bool(sys.executable)


def prefetch(scheme: str | None) -> StoreWorker | None:
    """Start the worker for `scheme` (once per process) if that store can have one and its SDK
    is installed; None otherwise. Spawning failures are not errors: the store then runs here."""
    if scheme not in SDKS or not enabled():
        return None
    with _POOL_LOCK:
        if scheme in _POOL and _POOL[scheme].alive:
            return _POOL[scheme]
        if not sdk_installed(scheme):
            return None
        try:
            _POOL[scheme] = StoreWorker(scheme)
        except OSError:
            return None
        return _POOL[scheme]


def running(scheme: str) -> StoreWorker | None:
    """The prefetched worker for `scheme`, if one is up."""
    with _POOL_LOCK:
        worker = _POOL.get(scheme)
    return worker if worker is not None and worker.alive else None


def shutdown() -> None:
    """Stop every worker of this process (the CLI calls it when a command ends)."""
    with _POOL_LOCK:
        workers = list(_POOL.values())
        _POOL.clear()
    for worker in workers:
        worker.close()


# --------------------------------------------------------------------------- the worker side


def _serve(scheme: str, inp: int, out: int) -> int:
    from cloudorch.state.backends import store_and_slot, store_class

    store_class(scheme).warm_up()
    hosted: dict[int, tuple[ObjectStore, LockSlot]] = {}
    buf = bytearray()
    while True:
        while (request := _unframe(buf)) is None:
            chunk = os.read(inp, 1 << 20)
            if not chunk:
                return 0  # the parent is done, or gone
            buf += chunk
        number, handle, method, args, kwargs = request
        reply: tuple[int, str, Any]
        try:
            if method == "open":
                url, options, state_name, lock_name, env = args
                plain_url: Any = SimpleNamespace(**url)  # duck-typed BackendURL and options
                hosted[number] = store_and_slot(plain_url, SimpleNamespace(**options), state_name, lock_name, env)
                result: Any = number
            else:
                side, _, name = method.partition(".")
                target = hosted[handle][0] if side == "store" else hosted[handle][1]
                result = getattr(target, name)(*args, **kwargs)
            reply = (number, "ok", result)
        except PreconditionFailed as exc:
            reply = (number, "precondition", str(exc))
        except CloudorchError as exc:
            reply = (number, "cloudorch", (type(exc), exc.message, exc.hint, exc.location, exc.exit_code))
        except Exception as exc:  # a bug: its traceback goes to the log the parent reports
            traceback.print_exc()
            reply = (number, "bug", f"{type(exc).__name__}: {exc}")
        message = memoryview(_frame(reply))
        while message:
            message = message[os.write(out, message) :]


def main(argv: list[str]) -> NoReturn:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # keep the protocol's pipe to ourselves: anything printed goes to the log, not to the parent
    out = os.dup(1)
    os.dup2(2, 1)
    code = _serve(argv[0], 0, out)
    # The parent waits for us to exit, and a normal interpreter exit would spend ~0.1 s tearing
    # down the SDK's modules and objects. Every answer is already written and nothing else is
    # held (the log is flushed here), so skip the teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
