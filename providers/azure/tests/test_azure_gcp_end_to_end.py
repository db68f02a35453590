"""tests/fixtures/azure-gcp.yaml through the real CLI: Azurite, fake-gcs-server and the ARM test
server at once; apply, clean re-plan, destroy; and two ARM 429s absorbed by the engine's retries.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cloudorch_azure.provider import TOKEN_ENV

from cloudorch.testing import RunningServer
from cloudorch.testing.arm import ArmServer

PLAN = Path(__file__).parent / "fixtures" / "azure-gcp.yaml"
ADDRESSES = {"mirror", "rg", "assets", "manifest", "pointer"}


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    target = tmp_path / "azure-gcp.yaml"
    shutil.copy(PLAN, target)
    return target


def cli(
    plan: Path, arm: ArmServer, azurite: RunningServer, gcs: RunningServer, *args: str
) -> subprocess.CompletedProcess[str]:
    variables = {
        "arm_endpoint": arm.url,
        "ca_bundle": str(arm.ca_bundle),
        "storage_connection_string": azurite.extra["connection_string"],
        "gcs_endpoint": gcs.url,
    }
    flags = [f"--var={k}={v}" for k, v in variables.items()]
    env = {**os.environ, TOKEN_ENV: "e2e-token"}
    return subprocess.run(
        [sys.executable, "-m", "cloudorch", *args, str(plan), *flags],
        cwd=plan.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_apply_replan_destroy(plan: Path, arm: ArmServer, azurite: RunningServer, fake_gcs: RunningServer) -> None:
    from azure.storage.blob import BlobServiceClient

    applied = cli(plan, arm, azurite, fake_gcs, "apply", "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr

    blobs = BlobServiceClient.from_connection_string(azurite.extra["connection_string"])
    manifest = blobs.get_blob_client("cloudorch-e2e-assets", "manifest.txt")
    assert manifest.download_blob().readall() == b"mirror bucket: cloudorch-e2e-mirror"  # GCS -> Azure
    assert arm.state.groups["cloudorch-e2e-rg"]["tags"] == {
        "managed-by": "cloudorch",
        "owner": "web",
        "cloudorch:address": "rg",
    }
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    gcs = storage.Client(project="x", credentials=AnonymousCredentials(), client_options={"api_endpoint": fake_gcs.url})
    pointer = gcs.bucket("cloudorch-e2e-mirror").blob("azure-assets.txt").download_as_bytes().decode()
    assert pointer.endswith("/devstoreaccount1/cloudorch-e2e-assets")  # Azure -> GCS

    replanned = cli(plan, arm, azurite, fake_gcs, "plan", "--detailed-exitcode")
    assert replanned.returncode == 0, replanned.stdout + replanned.stderr
    as_json = cli(plan, arm, azurite, fake_gcs, "plan", "--json")
    doc = json.loads(as_json.stdout)
    assert {c["address"] for c in doc["changes"]} == ADDRESSES
    assert {c["action"] for c in doc["changes"]} == {"no-op"}

    destroyed = cli(plan, arm, azurite, fake_gcs, "destroy", "--auto-approve")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert "cloudorch-e2e-rg" not in arm.state.groups
    assert not blobs.get_container_client("cloudorch-e2e-assets").exists()
    assert gcs.lookup_bucket("cloudorch-e2e-mirror") is None


def test_two_429s_then_success(plan: Path, arm: ArmServer, azurite: RunningServer, fake_gcs: RunningServer) -> None:
    arm.inject_throttle(2, retry_after="1", method="PUT", path_contains="/resourcegroups/")
    applied = cli(plan, arm, azurite, fake_gcs, "apply", "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    statuses = [s for m, p, s in arm.requests("PUT") if "/resourcegroups/" in p.lower()]
    assert statuses[:3] == [429, 429, 201]
    assert "cloudorch-e2e-rg" in arm.state.groups
    destroyed = cli(plan, arm, azurite, fake_gcs, "destroy", "--auto-approve")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
