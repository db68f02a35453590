"""plans/multi-cloud.yaml through the real CLI with all three clouds' local servers at once:
moto (AWS), fake-gcs-server (GCS), the Google REST test server (Pub/Sub, Compute), Azurite (Azure
Blob) and the ARM test server. It applies, re-plans clean and destroys, and the cross-cloud
references land where the plan says.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
from cloudorch_azure.provider import TOKEN_ENV
from cloudorch_gcp.testserver import GoogleServer

from cloudorch.testing import RunningServer
from cloudorch.testing.arm import ArmServer

PLAN = Path(__file__).parents[3] / "plans" / "multi-cloud.yaml"
ADDRESSES = {
    *("site", "mirror", "rg", "assets", "arn_note", "azure_pointer", "release_note"),
    *("vpc", "app_subnet[a]", "app_subnet[b]", "app_sg", "gcp_net", "gcp_subnet", "vnet", "vnet_app"),
    *("cluster", "task", "web", "events_queue", "deploys", "forward", "events_topic", "events_reader", "vault"),
}
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def test_three_clouds_apply_replan_destroy(
    tmp_path: Path, arm: ArmServer, azurite: RunningServer, fake_gcs: RunningServer, moto: str
) -> None:
    google = GoogleServer().start()
    try:
        _three_clouds(tmp_path, arm, azurite, fake_gcs, moto, google)
    finally:
        google.stop()


def _three_clouds(
    tmp_path: Path, arm: ArmServer, azurite: RunningServer, fake_gcs: RunningServer, moto: str, google: GoogleServer
) -> None:
    plan = tmp_path / "multi-cloud.yaml"
    shutil.copy(PLAN, plan)
    variables = {
        "aws_endpoint": moto,
        "gcs_endpoint": fake_gcs.url,
        "gcp_api_endpoint": google.url,
        "arm_endpoint": arm.url,
        "ca_bundle": str(arm.ca_bundle),
        "storage_connection_string": azurite.extra["connection_string"],
        "arm_polling_interval": "0",
    }
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **AWS_ENV, TOKEN_ENV: "e2e-token"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cloudorch", *args, str(plan), "--stage", "dev",
             *[f"--var={k}={v}" for k, v in variables.items()]],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
        )

    applied = cli("apply", "--auto-approve", "--json")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    outputs = json.loads(applied.stdout)["outputs"]
    assert outputs["mirror_bucket"] == "cloudorch-demo-dev-site-mirror"  # S3 -> GCS

    from azure.storage.blob import BlobServiceClient

    blobs = BlobServiceClient.from_connection_string(azurite.extra["connection_string"])
    note = blobs.get_blob_client("cloudorch-demo-dev-assets", "aws-site.txt").download_blob().readall()
    assert note == b"arn:aws:s3:::cloudorch-demo-dev-site"  # AWS -> Azure
    s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    pointer = s3.get_object(Bucket="cloudorch-demo-dev-site", Key="azure-assets.txt")["Body"].read().decode()
    assert pointer == outputs["assets_url"] and pointer.endswith("/cloudorch-demo-dev-assets")  # Azure -> AWS

    # the service runs in the VPC, and the Google topic is named after the EventBridge target
    ecs = boto3.client("ecs", endpoint_url=moto, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    service = ecs.describe_services(cluster="cloudorch-demo-dev", services=["web"])["services"][0]
    assert service["taskDefinition"].endswith("task-definition/cloudorch-demo-dev-web:1")
    assert outputs["events_topic"] == "projects/cloudorch-demo/topics/cloudorch-demo-dev-deploy-events"
    targets = boto3.client("events", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing").list_targets_by_rule(Rule="cloudorch-demo-dev-deploys")
    assert [t["Id"] for t in targets["Targets"]] == ["deploy-events"]
    assert outputs["vault_uri"].startswith("https://cloudorch-dev-kv.")

    replanned = cli("plan", "--json", "--detailed-exitcode")
    assert replanned.returncode == 0, replanned.stdout + replanned.stderr
    changes = json.loads(replanned.stdout)["changes"]
    assert {c["address"] for c in changes} == ADDRESSES
    assert {c["action"] for c in changes} == {"no-op"}

    destroyed = cli("destroy", "--auto-approve")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert "cloudorch-demo-dev-rg" not in arm.state.groups
    assert s3.list_buckets()["Buckets"] == []
