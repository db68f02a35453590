"""Where a fleet's stacks run: a local process pool (default) or a Dask distributed cluster.

Both hand back `concurrent.futures.Future`s of `StackResult`, so the fleet's run loop is one.
A Dask cluster on other machines cannot reach state kept on this disk: such stacks are refused.
"""

from __future__ import annotations

import concurrent.futures as cf
import ipaddress
import multiprocessing
import os
import signal
import socket
import uuid
from typing import Any, Protocol
from urllib.parse import urlparse

from cloudorch.errors import ConfigError
from cloudorch.fleet.task import StackResult, StackTask, run_stack, run_stack_bounded

ENV_EXECUTOR = "CLOUDORCH_EXECUTOR"


class Executor(Protocol):
    #: whether workers may run on other machines (then state on this disk cannot be used)
    remote: bool

    @property
    def slots(self) -> int:
        """Stacks that can run at once: the run loop hands out no more, so an interrupt finds the
        rest still in its own queue (not in the executor's, where it could not take them back)."""
        ...

    def describe(self) -> str: ...

    def submit(self, task: StackTask) -> cf.Future[StackResult]: ...

    def shutdown(self, *, kill: bool = False) -> None: ...


def warm() -> None:
    """Import what every stack task needs once, before the pool forks: each worker starts with it."""
    import cloudorch.provider.core
    import cloudorch.run.apply
    import cloudorch.run.drift
    import cloudorch.run.plan  # noqa: F401


def _worker_init() -> None:
    # Ctrl-C goes to the whole process group: the coordinator decides what stops, and a worker
    # mid-apply finishes the stack it runs (a second Ctrl-C kills it; the journal recovers that)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalExecutor:
    """A pool of worker processes on this machine, forked so each starts with cloudorch imported."""

    remote = False

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 2)
        warm()
        ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        self._pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_worker_init)

    @property
    def slots(self) -> int:
        return self.workers

    def describe(self) -> str:
        return f"local pool of {self.workers} processes"

    def submit(self, task: StackTask) -> cf.Future[StackResult]:
        return self._pool.submit(run_stack, task)

    def shutdown(self, *, kill: bool = False) -> None:
        if kill:
            # the pool has no public way to stop a running task; its processes are ours to end
            for proc in list(getattr(self._pool, "_processes", {}).values()):
                proc.kill()
        self._pool.shutdown(wait=not kill, cancel_futures=True)


class DaskExecutor:
    """One task per stack on a Dask distributed scheduler (`dask scheduler` + `dask worker`s).

    A worker that dies mid-task has its stack run again on another worker by the scheduler; the
    stack's state lock (taken over from a dead holder) and journal make that rerun safe."""

    def __init__(self, address: str, *, client: Any = None) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise ConfigError(
                "--executor dask:// needs Dask distributed, which is not installed",
                hint="pip install 'cloudorch[cluster]'",
            ) from None
        self.address = address
        if client is None:
            try:
                client = Client(address, timeout="10s")  # type: ignore[no-untyped-call]
            except (OSError, TimeoutError) as exc:
                raise ConfigError(
                    f"cannot reach the Dask scheduler at {address}: {exc}",
                    hint="start one with `dask scheduler`, or check --executor / CLOUDORCH_EXECUTOR",
                ) from None
        self.client = client
        self.remote = not _is_this_machine(address)
        self._keep: dict[str, Any] = {}

    @property
    def slots(self) -> int:
        workers = self.client.scheduler_info().get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    def describe(self) -> str:
        workers = len(self.client.scheduler_info().get("workers", {}))
        return f"Dask cluster {self.address} ({workers} workers)"

    def submit(self, task: StackTask) -> cf.Future[StackResult]:
        key = f"cloudorch-{task.command}-{task.name}-{uuid.uuid4().hex[:8]}"
        fut = self.client.submit(run_stack_bounded, task, key=key, pure=False)
        self._keep[key] = fut  # Dask forgets a task whose future is dropped
        out: cf.Future[StackResult] = cf.Future()

        def done(f: Any) -> None:
            self._keep.pop(key, None)
            try:
                out.set_result(f.result())
            except BaseException as exc:  # KilledWorker after the scheduler's retries, cancellation
                out.set_exception(exc)

        fut.add_done_callback(done)
        return out

    def shutdown(self, *, kill: bool = False) -> None:
        if kill:
            for fut in list(self._keep.values()):
                fut.cancel()
        self.client.close()


def _is_this_machine(address: str) -> bool:
    host = urlparse(address if "://" in address else f"tcp://{address}").hostname or ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    if host in ("localhost", socket.gethostname(), socket.getfqdn()):
        return True
    try:
        mine = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
        return host in mine
    except OSError:
        return False


def open_executor(spec: str | None, *, workers: int | None = None) -> Executor:
    """`local` (default) or `dask://HOST:PORT` (also `tcp://HOST:PORT`), from --executor or CLOUDORCH_EXECUTOR."""
    spec = spec or os.environ.get(ENV_EXECUTOR) or "local"
    if spec == "local":
        return LocalExecutor(workers)
    if spec.startswith(("dask://", "tcp://")):
        address = "tcp://" + spec.split("://", 1)[1]
        return DaskExecutor(address)
    raise ConfigError(f"--executor {spec}: unknown executor", hint="use `local` or `dask://HOST:PORT`")
