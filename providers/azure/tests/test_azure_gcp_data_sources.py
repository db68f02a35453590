"""Data sources on azure.resource_group, azure.resource and gcp.storage_bucket, through the CLI.

The objects are made "outside cloudorch" with the real SDK clients (azure-mgmt-resource against the
ARM test server, google-cloud-storage against fake-gcs-server); the CLI then reads them through
each type's `lookup`, in this process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from azure_testkit import SUBSCRIPTION, provider_config
from cloudorch_azure import AzureProvider
from cloudorch_azure.provider import TOKEN_ENV

from cloudorch.testing import RunningServer
from cloudorch.testing.arm import ArmServer

ACCOUNT = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/shared-rg/providers/Microsoft.Storage/storageAccounts/sharedacct"
)


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, Any, str]:
    from cloudorch.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    try:
        doc = json.loads(captured.out)
    except json.JSONDecodeError:
        doc = None
    return code, doc, captured.out + captured.err


def _outside(azure: AzureProvider, fake_gcs: RunningServer) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage  # type: ignore[import-untyped,unused-ignore]

    arm = azure.resources  # the real azure-mgmt-resource client, pointed at the ARM test server
    arm.resource_groups.create_or_update("shared-rg", {"location": "westeurope", "tags": {"team": "core"}})
    arm.resource_groups.create_or_update("other-rg", {"location": "northeurope", "tags": {"team": "apps"}})
    body = {"location": "westeurope", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "tags": {"tier": "gold"}}
    arm.resources.begin_create_or_update_by_id(ACCOUNT, body, api_version="2023-05-01", polling_interval=0).result()
    gcs = storage.Client(project="p", credentials=AnonymousCredentials(), client_options={"api_endpoint": fake_gcs.url})
    gcs.create_bucket("shared-assets")
    gcs.create_bucket("other-assets")


def test_data_sources_on_azure_and_gcp(
    tmp_path: Path,
    azure: AzureProvider,
    arm: ArmServer,
    azurite: RunningServer,
    fake_gcs: RunningServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _outside(azure, fake_gcs)
    monkeypatch.setenv(TOKEN_ENV, "test-token")
    providers = {"azure": provider_config(arm, azurite), "gcp": {"project": "p", "endpoint": fake_gcs.url}}
    data = {
        "rg": {"type": "azure.resource_group", "filter": {"tags": {"team": "core"}}},
        "rg_by_id": {"type": "azure.resource_group", "id": "other-rg"},
        "acct": {
            "type": "azure.resource",
            "filter": {"resource_group": "shared-rg", "tags": {"tier": "gold"}, "api_version": "2023-05-01"},
        },
        "acct_by_id": {"type": "azure.resource", "id": ACCOUNT + "?api-version=2023-05-01"},
        "bucket": {"type": "gcp.storage_bucket", "filter": {"name": "shared-assets"}},
        "bucket_by_id": {"type": "gcp.storage_bucket", "id": "gs://other-assets"},
        "gone": {"type": "gcp.storage_bucket", "id": "not-there", "optional": True},
    }
    plan = tmp_path / "plan.yaml"
    plan.write_text(json.dumps({"version": 1, "name": "lookups", "providers": providers, "data": data}))
    code, doc, text = cli(capsys, "plan", plan, "--json")
    assert code == 0, text
    got = doc["data"]
    assert got["rg"]["name"] == "shared-rg" and got["rg"]["location"] == "westeurope"
    assert got["rg_by_id"]["id"].endswith("/resourceGroups/other-rg")
    assert got["acct"]["id"].lower() == ACCOUNT.lower() and got["acct"]["kind"] == "StorageV2"
    assert got["acct_by_id"]["id"].lower() == ACCOUNT.lower()
    assert got["bucket"]["url"] == "gs://shared-assets" and got["bucket_by_id"]["name"] == "other-assets"
    assert got["gone"] is None

    # a filter both groups answer (an empty tag subset) is an error naming them
    data["rg"] = {"type": "azure.resource_group", "filter": {"tags": {}}}
    plan.write_text(json.dumps({"version": 1, "name": "lookups", "providers": providers, "data": data}))
    code, _, text = cli(capsys, "plan", plan)
    assert code == 1 and "2 objects of type azure.resource_group match" in text, text
    assert "other-rg" in text and "shared-rg" in text
