"""Lock expiry is judged on the store's clock, on every remote store (moto S3, fake-gcs-server, Azurite).

A lock whose holder, on another machine, stopped renewing is stale once the *store* says it is
older than its lease: a command that sees it for the first time takes it over at once, whatever
its own clock says (`CLOUDORCH_TEST_CLOCK_SKEW`, cloudorch/clock.py). The waits below poll the
store's own answer, never this machine's clock.
"""

from __future__ import annotations

import os
import time

import pytest

from cloudorch.state.backends.remote import STORE_CLOCK_RESOLUTION, RemoteBackend
from cloudorch.state.lock import HOSTNAME_ENV, LockInfo
from tests.state.backends.remote_testkit import Remote

LEASE = 1.0


@pytest.mark.parametrize("skew", ["-120", "120"])
def test_a_dead_foreign_holder_is_stale_by_the_stores_clock_at_first_sight(
    remote: Remote, monkeypatch: pytest.MonkeyPatch, skew: str
) -> None:
    holder = remote.backend(lease_seconds=LEASE)
    assert isinstance(holder, RemoteBackend)
    monkeypatch.setenv(HOSTNAME_ENV, "machine-a")
    # a holder on machine A that took the lock and died: nobody renews it
    assert holder.slot.create(LockInfo.new("cloudorch apply").with_lease(LEASE)) is not None
    monkeypatch.delenv(HOSTNAME_ENV)

    deadline = time.monotonic() + 30
    while True:
        seen = holder.slot.read()
        assert seen is not None and seen.modified is not None and seen.server_now is not None, (
            f"{remote.scheme}: a lock read must carry the store's clock (last write and response time)"
        )
        if (seen.server_now - seen.modified).total_seconds() >= LEASE + STORE_CLOCK_RESOLUTION:
            break
        assert time.monotonic() < deadline, "the store's clock did not move"
        time.sleep(0.1)

    # machine B, seeing this lock for the first time, its clock 2 minutes behind or ahead
    monkeypatch.setenv("CLOUDORCH_TEST_CLOCK_SKEW", skew)
    other = remote.backend(lease_seconds=LEASE)
    with other.lock(LockInfo.new("cloudorch apply"), 0) as handle:
        assert handle.took_over is not None and handle.took_over.host == "machine-a"
        assert handle.info.pid == os.getpid()
