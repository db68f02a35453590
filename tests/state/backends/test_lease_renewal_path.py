"""Lease renewal has a path of its own: a store worker busy with a slow upload cannot starve it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from remote_testkit import Remote, make_remote

from cloudorch.state import LockInfo
from cloudorch.state.backends import worker
from cloudorch.state.backends.remote import RemoteBackend


@pytest.fixture
def s3_hosted(servers: Any) -> Iterator[tuple[Remote, worker.StoreWorker]]:
    remote = make_remote("s3", servers("s3"))
    started = worker.prefetch("s3")
    assert started is not None
    yield remote, started
    worker.shutdown()


def test_renewals_go_on_while_the_worker_is_busy(s3_hosted: tuple[Remote, worker.StoreWorker]) -> None:
    remote, started = s3_hosted
    backend = remote.backend(lease_seconds=0.9)
    assert isinstance(backend, RemoteBackend) and isinstance(backend.store, worker.WorkerStore)
    with backend.lock(LockInfo.new("cloudorch apply"), 0) as handle:
        before = handle.renewals
        renewed = threading.Event()
        # the worker answers one call at a time: hold it as an 8 s upload would, for two leases
        with started._lock:
            deadline = threading.Event()
            for _ in range(40):
                if handle.renewals >= before + 3:
                    renewed.set()
                    break
                deadline.wait(0.05)
        assert renewed.is_set(), f"only {handle.renewals - before} renewal(s) while the worker was busy"
        handle.check()  # still certainly ours
        assert not handle.lost and handle.renew_error is None
