"""The remote backends against real emulators: CAS, history, locks, takeover, forged writes, encryption."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from remote_testkit import Remote, make_remote

from cloudorch.errors import ConfigError, StateError, StateLockedError
from cloudorch.state import LockHeldError, LockInfo, ResourceRecord, State
from cloudorch.state.backends.remote import RemoteBackend

REPO_ROOT = Path(__file__).resolve().parents[3]


def _state(serial: int = 1, n: int = 2) -> State:
    state = State(plan_name="shop", serial=serial)
    for i in range(n):
        a = f"r{i}"
        state.resources[a] = ResourceRecord(address=a, type="core.null", provider="core", id=f"id-{i}")
    return state


def _write_serials(backend: Any, last: int) -> State:
    state = _state(1)
    backend.write(state, None)
    for serial in range(2, last + 1):
        current = backend.read()
        assert current is not None
        current.resources[f"added{serial}"] = ResourceRecord(
            address=f"added{serial}", type="core.null", provider="core", id=f"x{serial}"
        )
        current.serial = serial
        backend.write(current, serial - 1)
    final = backend.read()
    assert final is not None
    return final


def _name(remote: Remote, suffix: str = ".json") -> str:
    return f"team/shop/shop{suffix}"


def test_write_read_history_and_older_versions(remote: Remote) -> None:
    backend = remote.backend()
    assert backend.read() is None
    final = _write_serials(backend, 4)
    assert final.serial == 4

    entries = backend.history()
    assert [(e.serial, e.current) for e in entries] == [(4, True), (3, False), (2, False), (1, False)]
    assert [e.resource_count for e in entries] == [5, 4, 3, 2]
    older = backend.read_version(2)
    assert older.serial == 2 and "added2" in older.resources and "added3" not in older.resources
    assert backend.read_version(4).resources == final.resources
    with pytest.raises(StateError, match="no version with serial 9"):
        backend.read_version(9)
    # found by binary search over the versions, whichever the serial
    _write_serials(remote.backend(key="many"), 7)
    many = remote.backend(key="many")
    assert [many.read_version(n).serial for n in range(1, 8)] == list(range(1, 8))
    # another process (a fresh backend) sees the same thing
    assert remote.backend().read() == final
    assert remote.backend().journal_path() == Path(".cloudorch/journal/shop.jsonl")


def test_stale_serial_is_refused(remote: Remote) -> None:
    backend = remote.backend()
    _write_serials(backend, 2)
    state = _state(5)
    with pytest.raises(StateError, match="expected serial 1, but it is at serial 2"):
        remote.backend().write(state, 1)
    with pytest.raises(StateError, match="expected no state yet"):
        remote.backend().write(_state(1), None)
    assert backend.read() is not None and backend.read().serial == 2  # type: ignore[union-attr]


def test_forged_write_between_read_and_write_is_refused_not_overwritten(remote: Remote) -> None:
    backend = remote.backend()
    _write_serials(backend, 2)
    mine = backend.read()
    assert mine is not None
    # another client rewrites the object with the same serial (a broken lock, a hand edit)
    forged = remote.backend(key="forger")
    other = _state(2)
    other.lineage = mine.lineage
    forged.write(other, None)
    forged_bytes = remote.raw_get(_name(remote).replace("shop.json", "forger.json"))
    remote.raw_put(_name(remote), forged_bytes)

    mine.serial = 3
    with pytest.raises(StateError, match=r"changed since it was read.*nothing was overwritten"):
        backend.write(mine, 2)
    assert remote.raw_get(_name(remote)) == forged_bytes


def test_lock_names_the_holder_and_is_exclusive(remote: Remote) -> None:
    first = remote.backend()
    with first.lock(LockInfo.new("cloudorch apply"), 0) as handle:
        with pytest.raises(LockHeldError) as err:
            remote.backend().lock(LockInfo.new("cloudorch plan"), 0.3)
        assert err.value.holder.id == handle.info.id
        assert f"pid {os.getpid()} (cloudorch apply)" in str(err.value)
        assert err.value.exit_code == 4
        assert remote.scheme in str(err.value)
        held = remote.backend().current_lock()
        assert held is not None and held.id == handle.info.id
    assert remote.backend().current_lock() is None
    with remote.backend().lock(LockInfo.new("again"), 0) as again:
        assert again.took_over is None


def test_lease_is_renewed_while_held(remote: Remote) -> None:
    backend = remote.backend(lease_seconds=0.6)
    with backend.lock(LockInfo.new("long"), 0) as handle:
        time.sleep(1.0)
        assert handle.renewals >= 1 and not handle.lost
        with pytest.raises(StateLockedError):
            remote.backend(lease_seconds=0.6).lock(LockInfo.new("other"), 0)


def test_force_unlock_by_id(remote: Remote) -> None:
    holder = remote.backend().lock(LockInfo.new("stuck"), 0)
    other = remote.backend()
    with pytest.raises(StateError, match="does not match"):
        other.force_unlock("not-the-id")
    other.force_unlock(holder.info.id)
    assert other.current_lock() is None
    with other.lock(LockInfo.new("after"), 0):
        pass
    holder.release()  # the old holder notices nothing is left to release


_HOLD = """
import sys, time
sys.path.insert(0, sys.argv[4])
from cloudorch.state.backends import open_backend
from cloudorch.state import LockInfo
from pathlib import Path
b = open_backend(sys.argv[1], {"lease_seconds": float(sys.argv[2])}, key="shop", local_root=Path(sys.argv[3]))
h = b.lock(LockInfo.new("cloudorch apply"), 0)
print(h.info.id, flush=True)
time.sleep(60)
"""


def _holder(remote: Remote, lease: float, tmp_path: Path, host: str | None = None) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, **remote.env}
    if host is not None:
        env["CLOUDORCH_TEST_HOSTNAME"] = host  # stands for another machine: a live pid here is never taken over
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, remote.url, str(lease), str(tmp_path / ".cloudorch"), str(REPO_ROOT)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    lock_id = child.stdout.readline().strip()
    assert lock_id, "the holder did not take the lock"
    return child, lock_id


def test_frozen_holder_loses_the_lock_when_its_lease_expires(remote: Remote, tmp_path: Path) -> None:
    """A holder on another machine that is alive but stops renewing (SIGSTOP: a hung runner) is taken
    over once its lease ran out on the store's clock."""
    child, lock_id = _holder(remote, 2.0, tmp_path, host="runner-a")
    try:
        child.send_signal(signal.SIGSTOP)
        frozen = remote.backend().current_lock()
        assert frozen is not None and frozen.id == lock_id
        # before its lease runs out the frozen holder still owns the lock; checked only while at
        # least 1 s of it is left, since a loaded machine may have starved its renewals already
        if not frozen.lease_expired(datetime.now(UTC) + timedelta(seconds=1)):
            with pytest.raises(LockHeldError):
                remote.backend().lock(LockInfo.new("early"), 0)
        with remote.backend(lease_seconds=1.0).lock(LockInfo.new("next"), 10.0) as handle:
            assert handle.took_over is not None and handle.took_over.id == lock_id
            assert remote.backend().current_lock().id == handle.info.id  # type: ignore[union-attr]
    finally:
        child.kill()
        child.wait()


def test_killed_holder_is_taken_over(remote: Remote, tmp_path: Path) -> None:
    child, lock_id = _holder(remote, 30.0, tmp_path)
    child.kill()
    child.wait()
    with remote.backend().lock(LockInfo.new("next"), 2.0) as handle:
        assert handle.took_over is not None and handle.took_over.id == lock_id


def test_versioning_off_is_refused_clearly(servers: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for scheme in ("s3", "gs"):
        r = make_remote(scheme, servers(scheme), versioning=False)
        backend = r.backend()
        with pytest.raises(StateError, match="versioning") as err:
            backend.write(_state(1), None)
        assert err.value.hint and "versioning" in err.value.hint
        assert backend.read() is None  # nothing was written


def test_dynamodb_lock_table(servers: Any) -> None:
    import boto3

    server = servers("s3")["s3"]
    r = make_remote("s3", {"s3": server})
    ddb = boto3.client("dynamodb", endpoint_url=server.url, region_name="us-east-1", **_keys())
    table = f"locks-{r.bucket}"
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    backend = r.backend(lock_table=table)
    with backend.lock(LockInfo.new("cloudorch apply"), 0) as handle:
        item = ddb.get_item(TableName=table, Key={"LockID": {"S": f"{r.bucket}/team/shop/shop.json"}})["Item"]
        assert handle.info.id in item["Info"]["S"]
        with pytest.raises(LockHeldError, match=r"cloudorch apply"):
            r.backend(lock_table=table).lock(LockInfo.new("other"), 0.2)
        backend.write(_state(1), None)
    assert r.backend(lock_table=table).current_lock() is None
    # the lock object path is not used when a table is configured
    with pytest.raises(Exception, match=r"NoSuchKey|Not Found|404"):
        r.raw.get_object(Bucket=r.bucket, Key="team/shop/shop.lock")


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


# --------------------------------------------------------------------------- encryption


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_encrypted_state_round_trips_and_hides_content(remote: Remote, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_KEY", _key())
    remote.env["STATE_KEY"] = os.environ["STATE_KEY"]
    backend = remote.backend(encryption={"key_env": "STATE_KEY"})
    assert isinstance(backend, RemoteBackend)
    final = _write_serials(backend, 3)
    raw = remote.raw_get(_name(remote))
    assert b"added3" not in raw and b"id-0" not in raw and b'"ciphertext"' in raw
    again = remote.backend(encryption={"key_env": "STATE_KEY"})
    assert again.read() == final
    assert [e.serial for e in again.history()] == [3, 2, 1]
    assert "added2" in again.read_version(2).resources
    assert "encrypted" in again.describe()


def test_wrong_key_fails_clearly_and_overwrites_nothing(remote: Remote, monkeypatch: pytest.MonkeyPatch) -> None:
    remote.env.update(GOOD=_key(), BAD=_key())
    _write_serials(remote.backend(encryption={"key_env": "GOOD"}), 2)
    before = remote.raw_get(_name(remote))
    wrong = remote.backend(encryption={"key_env": "BAD"})
    with pytest.raises(StateError, match=r"encrypted with key .* but the configured key is") as err:
        wrong.read()
    assert err.value.hint and "old_keys" in err.value.hint
    with pytest.raises(StateError, match=r"is encrypted .* no key is configured"):
        remote.backend().read()
    # a tampered header fails authentication, it is never read as another serial
    tampered = before.replace(b'"serial":2', b'"serial":7')
    remote.raw_put(_name(remote), tampered)
    with pytest.raises(StateError, match="could not be decrypted"):
        remote.backend(encryption={"key_env": "GOOD"}).read()
    remote.raw_put(_name(remote), before)
    assert remote.raw_get(_name(remote)) == before


def test_bad_key_material_is_a_config_error(remote: Remote) -> None:
    remote.env["SHORT"] = base64.b64encode(b"too short").decode()
    with pytest.raises(ConfigError, match="not 32 bytes"):
        remote.backend(encryption={"key_env": "SHORT"})
    with pytest.raises(ConfigError, match="MISSING is not set"):
        remote.backend(encryption={"key_env": "MISSING"})


def test_rekey_turns_encryption_on_for_a_plaintext_state(servers: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudorch.state.migrate import rekey_document

    r = make_remote("gs", servers("gs"))
    _write_serials(r.backend(), 2)
    r.env["KEY"] = _key()
    backend = r.backend(encryption={"key_env": "KEY"})
    assert backend.read() is not None  # a plaintext state stays readable once a key is configured
    done = rekey_document(backend, key="shop", command="state rekey", lock_timeout=0, actor="ann", old_keys=[])
    assert done is not None and done.changed and done.from_key is None and done.serial == 3
    assert b'"ciphertext"' in r.raw_get(_name(r))
    again = rekey_document(
        r.backend(encryption={"key_env": "KEY"}), key="shop", command="x", lock_timeout=0, actor="ann", old_keys=[]
    )
    assert again is not None and not again.changed and again.serial == 3
    state = r.backend(encryption={"key_env": "KEY"}).read()
    assert state is not None and state.events[-1].kind == "rekey" and state.events[-1].actor == "ann"


def test_s3_server_side_encryption_with_a_kms_key(servers: Any) -> None:
    import boto3

    server = servers("s3")["s3"]
    r = make_remote("s3", {"s3": server})
    kms = boto3.client("kms", endpoint_url=server.url, region_name="us-east-1", **_keys())
    key_id = kms.create_key(Description="state")["KeyMetadata"]["KeyId"]
    backend = r.backend(kms_key_id=key_id)
    _write_serials(backend, 2)
    head = r.raw.head_object(Bucket=r.bucket, Key=_name(r))
    assert head["ServerSideEncryption"] == "aws:kms"
    assert key_id in head["SSEKMSKeyId"]
    assert backend.read_version(1).serial == 1
