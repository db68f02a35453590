"""`state rekey` on remote state: older object versions not sealed with the new key are listed as
remaining, and deleted only with `--purge-remote-history` (moto, fake-gcs-server, Azurite)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from remote_testkit import CliResult, Remote

from cloudorch.state.backends.remote import ALL_VERSIONS, RemoteBackend
from cloudorch.state.crypto import is_sealed
from cloudorch.state.statefile import HEADER_PEEK

PLAN = """\
version: 1
name: purge
variables:
  owner: {{type: string, default: web}}
backend:
  url: {url}
{extra}resources:
  marker: {{type: core.null, properties: {{values: {{owner: "secret-${{var.owner}}"}}}}}}
"""


def _plan(tmp_path: Path, url: str, extra: str = "") -> Path:
    path = tmp_path / "purge.yaml"
    path.write_text(PLAN.format(url=url, extra=extra))
    return path


def _old_versions(remote: Remote) -> list[bytes]:
    backend = remote.backend("purge")
    assert isinstance(backend, RemoteBackend)
    store, name = backend.store, backend.state_name
    heads = [
        store.get_head(name, HEADER_PEEK, v.version_id) for v in store.versions(name, ALL_VERSIONS) if not v.current
    ]
    return [h.data for h in heads if h is not None]


def test_rekey_lists_then_purges_plaintext_object_versions(
    cli: Callable[..., CliResult], remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEW_KEY", base64.b64encode(os.urandom(32)).decode())
    plan = _plan(tmp_path, remote.url)
    for owner in ("ann", "bob"):
        done = cli("apply", str(plan), "--auto-approve", "--var", f"owner={owner}")
        assert done.returncode == 0, done.stderr
    plan = _plan(tmp_path, remote.url, "  encryption: {key_env: NEW_KEY}\n")

    kept = cli("state", "rekey", str(plan), "--json")
    assert kept.returncode == 0, kept.stderr
    doc: dict[str, Any] = json.loads(kept.stdout)["rekeyed"][0]
    assert doc["changed"] and doc["history_removed"] == []
    assert doc["history_remaining"] and all("plaintext" in why for why in doc["history_remaining"].values())
    assert any(not is_sealed(h) for h in _old_versions(remote))  # nothing was deleted without the flag

    purged = cli("state", "rekey", str(plan), "--purge-remote-history", "--json")
    if remote.scheme == "gs":
        # fake-gcs-server ignores the generation of a delete and removes the live object: the
        # purge notices, puts the current state back and stops (real GCS deletes the version)
        assert purged.returncode == 1 and "put back" in purged.stdout + purged.stderr, purged.stdout
        assert cli("state", "list", str(plan)).returncode == 0
        return
    assert purged.returncode == 0, purged.stderr
    doc = json.loads(purged.stdout)["rekeyed"][0]
    assert doc["history_remaining"] == {} and len(doc["history_removed"]) >= 2
    assert all(is_sealed(h) for h in _old_versions(remote))
    text = cli("state", "rekey", str(plan))
    assert "no older version remains readable without key" in text.stdout, text.stdout
