"""How a recorded sandbox rewrites provider blocks: every cloud block points at its emulator, and a
block with no emulator behind it is refused instead of being left aimed at a real cloud."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudorch.errors import ConfigError
from cloudorch.sandbox import Emulator, Sandbox
from cloudorch.sandbox.endpoints import client_env, provider_blocks


def box(tmp_path: Path, *names: str) -> Sandbox:
    urls = {"moto": "http://127.0.0.1:1001", "fake-gcs-server": "http://127.0.0.1:1002",
            "arm": "https://127.0.0.1:1003", "azurite": "http://127.0.0.1:1004/devstoreaccount1",
            "google-apis": "http://127.0.0.1:1005"}  # fmt: skip
    clouds = {"moto": "aws", "fake-gcs-server": "gcp", "arm": "azure", "azurite": "azure", "google-apis": "gcp"}
    emulators = [Emulator(n, clouds[n], 1, 1, urls[n], [n], f"{n}.log") for n in names]
    return Sandbox(tmp_path, emulators, {"azurite": "install Node"}, str(tmp_path / "ca.pem"))


def test_real_cloud_settings_are_replaced_by_the_emulators(tmp_path: Path) -> None:
    blocks = {
        "aws": {"region": "eu-west-1", "profile": "prod", "assume_role": {"role_arn": "arn:aws:iam::1:role/x"}},
        "aws.us": {"region": "us-east-1", "endpoint_url": "https://s3.example"},
        "gcp": {"project": "shop-prod"},
        "azure": {"tenant_id": "t", "arm_endpoint": "https://management.azure.com", "location": "westeurope"},
        "core": {},
    }
    out = provider_blocks(box(tmp_path, "moto", "fake-gcs-server", "arm", "azurite"), blocks)
    assert out["aws"] == {"region": "eu-west-1", "endpoint_url": "http://127.0.0.1:1001"}
    assert out["aws.us"]["endpoint_url"] == "http://127.0.0.1:1001"
    assert out["gcp"] == {"project": "shop-prod", "endpoint": "http://127.0.0.1:1002"}
    az = out["azure"]
    assert az["arm_endpoint"] == "https://127.0.0.1:1003" and az["ca_bundle"] == str(tmp_path / "ca.pem")
    assert "tenant_id" not in az and az["location"] == "westeurope" and az["polling_interval"] == 0
    assert "BlobEndpoint=http://127.0.0.1:1004/devstoreaccount1;" in az["storage_connection_string"]
    assert out["core"] == {}
    assert blocks["aws"]["profile"] == "prod"  # the plan's own blocks are not touched


def test_clouds_without_a_block_get_one_so_defaults_never_reach_a_real_cloud(tmp_path: Path) -> None:
    out = provider_blocks(box(tmp_path, "moto", "arm"), {})
    assert out["aws"]["endpoint_url"] == "http://127.0.0.1:1001"
    assert out["azure"]["storage_connection_string"] is None  # no Azurite: blob types fail, ARM works
    assert "gcp" not in out


def test_a_block_whose_cloud_has_no_emulator_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no emulator for gcp"):
        provider_blocks(box(tmp_path, "moto"), {"gcp": {"project": "p"}})


def test_client_env_names_only_running_emulators(tmp_path: Path) -> None:
    env = client_env(box(tmp_path, "fake-gcs-server"))
    assert env == {"STORAGE_EMULATOR_HOST": "http://127.0.0.1:1002"}


def test_the_google_rest_server_serves_every_google_api_but_storage(tmp_path: Path) -> None:
    out = provider_blocks(box(tmp_path, "fake-gcs-server", "google-apis"), {"gcp": {"project": "shop-prod"}})
    assert out["gcp"] == {"project": "shop-prod", "endpoint": "http://127.0.0.1:1002",
                          "api_endpoint": "http://127.0.0.1:1005", "operation_poll_interval": 0}  # fmt: skip
    env = client_env(box(tmp_path, "fake-gcs-server", "google-apis"))
    assert env == {"STORAGE_EMULATOR_HOST": "http://127.0.0.1:1002", "CLOUDORCH_GCP_API_ENDPOINT": "http://127.0.0.1:1005"}
