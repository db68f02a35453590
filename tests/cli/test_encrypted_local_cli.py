"""Encrypted local state through the CLI: apply, plan, history, a wrong key, rekey, migrate to S3."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudorch.state.backends import open_backend
from cloudorch.state.crypto import StateKey, WrongKeyError

SECRET = b"tok-4f1b9c-not-for-disk"


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _key_id(env_name: str) -> str:
    return StateKey.from_env(env_name).key_id


def _tree(root: Path) -> dict[str, bytes]:
    # the run history (`runs/`) records every command, a refused one too
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "runs"
    }


def _set_encryption(plan: Path, encryption: dict[str, Any]) -> None:
    doc = yaml.safe_load(plan.read_text())
    doc["backend"] = {"encryption": encryption}
    plan.write_text(yaml.safe_dump(doc))


@pytest.fixture
def sealed_plan(cli: Any, fixture_plan: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """encrypted_local.yaml applied twice (serials 1 and 2) with CLOUDORCH_STATE_KEY set."""
    monkeypatch.setenv("CLOUDORCH_STATE_KEY", _key())
    plan: Path = fixture_plan("encrypted_local.yaml")
    for owner in ("ann", "ben"):
        r = cli("apply", str(plan), "--auto-approve", "--var", f"owner={owner}")
        assert r.code == 0, r.err
    return plan


def test_apply_plan_and_history_on_encrypted_local_state(cli: Any, sealed_plan: Path) -> None:
    state_file = sealed_plan.parent / ".cloudorch" / "state" / "vault.json"
    raw = state_file.read_bytes()
    assert b'"ciphertext"' in raw and SECRET not in raw and b"ben" not in raw
    for old in (sealed_plan.parent / ".cloudorch" / "history" / "vault").iterdir():
        assert SECRET not in old.read_bytes()

    clean = cli("plan", str(sealed_plan), "--var", "owner=ben", "--detailed-exitcode")
    assert clean.code == 0, clean.out + clean.err
    shown = cli("state", "show", str(sealed_plan), "secret", "--json")
    assert shown.code == 0 and shown.json()["properties"]["values"]["owner"] == "ben"
    history = cli("state", "history", str(sealed_plan), "--json")
    assert history.code == 0, history.err
    assert [e["serial"] for e in history.json()["history"]] == [2, 1]


def test_wrong_key_is_a_clear_error_and_changes_nothing(
    cli: Any, sealed_plan: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = sealed_plan.parent / ".cloudorch"
    before = _tree(root)
    monkeypatch.setenv("CLOUDORCH_STATE_KEY", _key())
    r = cli("apply", str(sealed_plan), "--auto-approve", "--var", "owner=eve")
    assert r.code == 1
    assert "vault.json is encrypted with key" in r.err and "old_keys" in r.err and "Traceback" not in r.err
    assert _tree(root) == before

    monkeypatch.delenv("CLOUDORCH_STATE_KEY")
    r = cli("plan", str(sealed_plan))
    assert r.code == 1 and "CLOUDORCH_STATE_KEY is not set" in r.err
    assert "encrypted_local.yaml:" in r.err  # located at the plan's backend block
    assert _tree(root) == before


def test_rekey_with_old_keys(cli: Any, sealed_plan: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLD_STATE_KEY", os.environ["CLOUDORCH_STATE_KEY"])
    monkeypatch.setenv("CLOUDORCH_STATE_KEY", _key())
    _set_encryption(sealed_plan, {"key_env": "CLOUDORCH_STATE_KEY", "old_keys": [{"key_env": "OLD_STATE_KEY"}]})

    done = cli("state", "rekey", str(sealed_plan), "--json")
    assert done.code == 0, done.err
    rekeyed = done.json()["rekeyed"][0]
    assert rekeyed["changed"] is True and rekeyed["from_key"] != rekeyed["to_key"] and rekeyed["serial"] == 3
    assert cli("plan", str(sealed_plan), "--var", "owner=ben", "--detailed-exitcode").code == 0
    raw = (sealed_plan.parent / ".cloudorch" / "state" / "vault.json").read_bytes()
    assert _key_id("CLOUDORCH_STATE_KEY").encode() in raw

    # serial 2 was re-sealed with the new key: readable with it alone, refused with only the old one
    assert rekeyed["history_resealed"] == [1, 2] and rekeyed["history_remaining"] == {}
    root = sealed_plan.parent / ".cloudorch"
    only_new = open_backend(None, {"encryption": {"key_env": "CLOUDORCH_STATE_KEY"}}, key="vault", local_root=root)
    assert only_new.read_version(2).resources["secret"].properties["values"]["owner"] == "ben"
    only_old = open_backend(None, {"encryption": {"key_env": "OLD_STATE_KEY"}}, key="vault", local_root=root)
    with pytest.raises(WrongKeyError):
        only_old.read_version(2)

    # without old_keys the current state opens, and every version is still listed by its header
    _set_encryption(sealed_plan, {"key_env": "CLOUDORCH_STATE_KEY"})
    assert cli("plan", str(sealed_plan), "--var", "owner=ben", "--detailed-exitcode").code == 0
    history = cli("state", "history", str(sealed_plan), "--json").json()["history"]
    assert [e["serial"] for e in history] == [3, 2, 1]
    again = cli("state", "rekey", str(sealed_plan), "--json")
    assert again.code == 0 and again.json()["rekeyed"][0]["changed"] is False


def test_migrate_encrypted_local_state_to_s3_keeps_it_encrypted(
    cli: Any, sealed_plan: Path, moto: str
) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1")
    s3.create_bucket(Bucket="sealed-local")
    s3.put_bucket_versioning(Bucket="sealed-local", VersioningConfiguration={"Status": "Enabled"})

    r = cli("state", "migrate", str(sealed_plan), "--to", "s3://sealed-local/moved", "--json")
    assert r.code == 0, r.err
    assert r.json()["switched"] is True
    backend = yaml.safe_load(sealed_plan.read_text())["backend"]
    assert backend == {"url": "s3://sealed-local/moved", "encryption": {"key_env": "CLOUDORCH_STATE_KEY"}}
    raw = s3.get_object(Bucket="sealed-local", Key="moved/vault.json")["Body"].read()
    assert b'"ciphertext"' in raw and SECRET not in raw
    history = cli("state", "history", str(sealed_plan), "--json")
    assert history.code == 0 and [e["serial"] for e in history.json()["history"]] == [2, 1]
    assert cli("plan", str(sealed_plan), "--var", "owner=ben", "--detailed-exitcode").code == 0
