"""Where a running sandbox is, said two ways: SDK environment variables, and provider-block overrides.

`client_env` is what `cloudorch sandbox env` prints (for the SDKs and other tools); `provider_blocks`
rewrites a plan's provider blocks so every provider talks to the emulators whatever the plan says
(endpoints, certificates, throwaway credentials), and refuses a block whose cloud has no emulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudorch.errors import ConfigError
from cloudorch.sandbox.emulators import SANDBOX_SUBSCRIPTION, SANDBOX_TOKEN, Sandbox

#: moto accepts any credentials; these keep boto3 from reaching for real ones
AWS_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _connection_string(blob_url: str) -> str:
    from cloudorch.sandbox.processes import azurite_connection_string

    return azurite_connection_string(blob_url)


def client_env(box: Sandbox) -> dict[str, str]:
    """Environment variables that point the cloud SDKs (and cloudorch's providers) at the sandbox."""
    env: dict[str, str] = {}
    moto, gcs, arm, azurite = (box.get(n) for n in ("moto", "fake-gcs-server", "arm", "azurite"))
    google = box.get("google-apis")
    if moto is not None:
        env.update(AWS_CREDENTIALS, AWS_ENDPOINT_URL=moto.url)
    if gcs is not None:
        env["STORAGE_EMULATOR_HOST"] = gcs.url
    if google is not None:
        env["CLOUDORCH_GCP_API_ENDPOINT"] = google.url
    if arm is not None:
        env["AZURE_SUBSCRIPTION_ID"] = SANDBOX_SUBSCRIPTION
        env["CLOUDORCH_AZURE_ACCESS_TOKEN"] = SANDBOX_TOKEN
        env["CLOUDORCH_SANDBOX_ARM_ENDPOINT"] = arm.url
        env["CLOUDORCH_SANDBOX_ARM_CA_BUNDLE"] = str(box.ca_bundle or "")
    if azurite is not None:
        env["AZURE_STORAGE_CONNECTION_STRING"] = _connection_string(azurite.url)
    return env


_MISSING = {"aws": "moto", "gcp": "fake-gcs-server", "azure": "arm"}


def provider_blocks(box: Sandbox, blocks: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The plan's provider blocks pointed at the sandbox, plus a default block per sandboxed cloud.

    A block with no emulator behind it is refused rather than left pointing at a real cloud.
    """
    out: dict[str, dict[str, Any]] = {k: dict(v or {}) for k, v in blocks.items()}
    for cloud in _MISSING:
        if cloud not in out and box.get(_MISSING[cloud]) is not None:
            out[cloud] = {}
    for key, block in out.items():
        cloud = key.partition(".")[0]
        if cloud not in _MISSING:
            continue  # `core` and other local providers need no emulator
        emulator = box.get(_MISSING[cloud])
        if emulator is None:
            raise ConfigError(
                f"provider block {key}: the sandbox has no emulator for {cloud}",
                hint=box.skipped.get(
                    _MISSING[cloud],
                    f"install the cloudorch-{cloud} provider, then `cloudorch sandbox down` and run again",
                ),
            )
        if cloud == "aws":
            block.pop("profile", None)
            block.pop("assume_role", None)
            block["endpoint_url"] = emulator.url
        elif cloud == "gcp":
            block["endpoint"] = emulator.url
            block["project"] = block.get("project") or "cloudorch-sandbox"
            google = box.get("google-apis")
            if google is not None:  # Pub/Sub, Compute, IAM, Cloud Run, gcp.resource
                block["api_endpoint"] = google.url
                block["operation_poll_interval"] = 0
        else:
            block.pop("tenant_id", None)
            block.pop("storage_endpoint", None)
            block["arm_endpoint"] = emulator.url
            block["ca_bundle"] = box.ca_bundle
            block["subscription_id"] = block.get("subscription_id") or SANDBOX_SUBSCRIPTION
            block["polling_interval"] = 0
            azurite = box.get("azurite")
            block["storage_connection_string"] = _connection_string(azurite.url) if azurite else None
    return out
