"""`cloudorch sandbox up|status|env|down` and `--sandbox` runs, through the real CLI in subprocesses.

The emulators are started once for the module (by `sandbox up`, as a user would) and must be
gone after `sandbox down`. Commands run as subprocesses: the emulators then belong to no test
process, exactly as when a user runs them, and `--sandbox`'s process-wide AWS credentials stay
out of the test process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudorch.sandbox import Emulator, Sandbox, down

MULTI_CLOUD = Path(__file__).parents[2] / "plans" / "multi-cloud.yaml"
SERVERS = {"moto", "fake-gcs-server", "google-apis", "arm", "azurite"}


def _env(sandbox_dir: Path, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE_", "GOOGLE_", "STORAGE_"))}
    return {**clean, "CLOUDORCH_SANDBOX_DIR": str(sandbox_dir), "NO_COLOR": "1", "CI": "true", **extra}


def run(sandbox_dir: Path, *args: str, cwd: Path | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudorch", *args],
        cwd=cwd or sandbox_dir.parents[1],
        env=_env(sandbox_dir, **extra),
        capture_output=True,
        text=True,
        timeout=180,
    )


def gone(pid: int) -> bool:
    """No process runs under `pid` (a zombie waiting for init to reap it runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    directory = tmp_path_factory.mktemp("sbx") / ".cloudorch" / "sandbox"
    started = run(directory, "sandbox", "up", "--json")
    assert started.returncode == 0, started.stdout + started.stderr
    yield directory, json.loads(started.stdout)
    run(directory, "sandbox", "down")


def test_up_starts_every_emulator_on_its_own_port_and_records_it(sandbox: tuple[Path, dict[str, Any]]) -> None:
    directory, doc = sandbox
    assert doc["started"] is True
    assert {s["name"] for s in doc["servers"]} == SERVERS
    assert len({s["port"] for s in doc["servers"]}) == len(SERVERS)
    record = json.loads((directory / "servers.json").read_text())
    assert {(e["name"], e["pid"], e["port"]) for e in record["emulators"]} == {
        (s["name"], s["pid"], s["port"]) for s in doc["servers"]
    }
    assert all((directory / f"{name}.log").exists() for name in SERVERS)


def test_status_json_lists_name_pid_port_and_health(sandbox: tuple[Path, dict[str, Any]]) -> None:
    directory, doc = sandbox
    status = run(directory, "sandbox", "status", "--json")
    assert status.returncode == 0, status.stderr
    servers = {s["name"]: s for s in json.loads(status.stdout)["servers"]}
    assert set(servers) == SERVERS
    for s in doc["servers"]:
        assert servers[s["name"]]["pid"] == s["pid"] and servers[s["name"]]["port"] == s["port"]
        assert servers[s["name"]]["healthy"] is True


def test_up_again_reuses_the_running_emulators(sandbox: tuple[Path, dict[str, Any]]) -> None:
    directory, doc = sandbox
    again = run(directory, "sandbox", "up", "--json")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["started"] is False
    assert {s["pid"] for s in second["servers"]} == {s["pid"] for s in doc["servers"]}


def test_env_points_the_sdks_at_the_emulators(sandbox: tuple[Path, dict[str, Any]]) -> None:
    import boto3

    directory, doc = sandbox
    env = json.loads(run(directory, "sandbox", "env", "--json").stdout)["env"]
    urls = {s["name"]: s["url"] for s in doc["servers"]}
    assert env["AWS_ENDPOINT_URL"] == urls["moto"]
    assert env["STORAGE_EMULATOR_HOST"] == urls["fake-gcs-server"]
    assert f"BlobEndpoint={urls['azurite']};" in env["AZURE_STORAGE_CONNECTION_STRING"]
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket="env-check")
    assert "env-check" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.delete_bucket(Bucket="env-check")
    shell = run(directory, "sandbox", "env")
    assert f"export AWS_ENDPOINT_URL={urls['moto']}" in shell.stdout.splitlines()


def test_multi_cloud_plan_releases_through_two_stages_in_the_sandbox(
    sandbox: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    import boto3
    from azure.storage.blob import BlobServiceClient

    directory, _ = sandbox
    plan = tmp_path / "multi-cloud.yaml"
    shutil.copy(MULTI_CLOUD, plan)
    env = json.loads(run(directory, "sandbox", "env", "--json").stdout)["env"]

    # a profile this machine does not have must not matter: the sandbox never reads real credentials
    deployed = run(directory, "release", "deploy", str(plan), "--stage", "dev", "--version", "1.0.0",
                   "--sandbox", "--auto-approve", "--json", cwd=tmp_path, AWS_PROFILE="prod-admin")  # fmt: skip
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    doc = json.loads(deployed.stdout)
    assert doc["sandbox"] is True and doc["applied"] is True and doc["stage"] == "dev"

    # the objects are in the emulators, and the cross-cloud references landed
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x")  # fmt: skip
    outputs = json.loads(run(directory, "output", str(plan), "--stage", "dev", "--sandbox", "--json",
                             cwd=tmp_path).stdout)  # fmt: skip
    assert outputs["mirror_bucket"] == "cloudorch-demo-dev-site-mirror"
    pointer = s3.get_object(Bucket="cloudorch-demo-dev-site", Key="azure-assets.txt")["Body"].read().decode()
    assert pointer == outputs["assets_url"]
    blobs = BlobServiceClient.from_connection_string(env["AZURE_STORAGE_CONNECTION_STRING"])
    note = blobs.get_blob_client("cloudorch-demo-dev-assets", "aws-site.txt").download_blob().readall()
    assert note == b"arn:aws:s3:::cloudorch-demo-dev-site"

    promoted = run(directory, "release", "promote", str(plan), "--to", "staging", "--sandbox", "--auto-approve",
                   "--json", cwd=tmp_path)  # fmt: skip
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    doc = json.loads(promoted.stdout)
    assert doc["version"] == "1.0.0" and [g["gate"] for g in doc["gates"]] == ["policy"]
    release = s3.get_object(Bucket="cloudorch-demo-staging-site", Key="RELEASE")["Body"].read()
    assert release == b"1.0.0"

    # sandbox state is its own namespace: nothing in the real state directory
    assert (tmp_path / ".cloudorch" / "sandbox" / "state" / "multi-cloud.staging.json").exists()
    assert not (tmp_path / ".cloudorch" / "state").exists()
    real = run(directory, "state", "list", str(plan), "--stage", "dev", "--json", cwd=tmp_path)
    assert json.loads(real.stdout) == {"resources": []}

    replanned = run(directory, "plan", str(plan), "--stage", "staging", "--var", "version=1.0.0", "--sandbox",
                    "--detailed-exitcode", cwd=tmp_path)  # fmt: skip
    assert replanned.returncode == 0, replanned.stdout + replanned.stderr
    assert "SANDBOX" in replanned.stderr.splitlines()[0]
    assert "No changes." in replanned.stdout

    for stage in ("staging", "dev"):
        destroyed = run(directory, "destroy", str(plan), "--stage", stage, "--sandbox", "--auto-approve",
                        cwd=tmp_path)  # fmt: skip
        assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
        assert "SANDBOX" in destroyed.stderr
    assert s3.list_buckets()["Buckets"] == []


def test_resource_manager_objects_round_trip_through_the_sandbox_arm_server(
    sandbox: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    directory, _ = sandbox
    plan = tmp_path / "arm_only.yaml"
    shutil.copy(Path(__file__).parents[1] / "fixtures" / "sandbox" / "arm_only.yaml", plan)
    applied = run(directory, "apply", str(plan), "--sandbox", "--auto-approve", "--json", cwd=tmp_path)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    vnet_id = json.loads(applied.stdout)["outputs"]["vnet_id"]
    assert vnet_id.lower().endswith(
        "/resourcegroups/sandbox-rg/providers/microsoft.network/virtualnetworks/sandbox-vnet"
    )
    # the tags and properties came back as written: a re-plan finds nothing to do
    replanned = run(directory, "plan", str(plan), "--sandbox", "--detailed-exitcode", cwd=tmp_path)
    assert replanned.returncode == 0, replanned.stdout + replanned.stderr
    destroyed = run(directory, "destroy", str(plan), "--sandbox", "--auto-approve", cwd=tmp_path)
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    gone_now = run(directory, "plan", str(plan), "--sandbox", "--json", cwd=tmp_path)
    assert {c["action"] for c in json.loads(gone_now.stdout)["changes"]} == {"create"}


def test_google_apis_round_trip_through_the_sandbox_google_server(
    sandbox: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    directory, _ = sandbox
    plan = tmp_path / "google_only.yaml"
    shutil.copy(Path(__file__).parents[1] / "fixtures" / "sandbox" / "google_only.yaml", plan)
    applied = run(directory, "apply", str(plan), "--sandbox", "--auto-approve", "--json", cwd=tmp_path)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    outputs = json.loads(applied.stdout)["outputs"]
    assert outputs["topic"] == "projects/cloudorch-sandbox/topics/sandbox-events"
    assert outputs["network"].endswith("/compute/v1/projects/cloudorch-sandbox/global/networks/sandbox-net")
    replanned = run(directory, "plan", str(plan), "--sandbox", "--detailed-exitcode", cwd=tmp_path)
    assert replanned.returncode == 0, replanned.stdout + replanned.stderr
    destroyed = run(directory, "destroy", str(plan), "--sandbox", "--auto-approve", cwd=tmp_path)
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    gone_now = run(directory, "plan", str(plan), "--sandbox", "--json", cwd=tmp_path)
    assert {c["action"] for c in json.loads(gone_now.stdout)["changes"]} == {"create"}


def test_down_stops_only_a_pid_still_running_the_recorded_command(tmp_path: Path) -> None:
    # a recorded pid that now belongs to another program (pid reuse) must survive `down`
    other = subprocess.Popen(["sleep", "30"])
    try:
        box = Sandbox(tmp_path)
        box.emulators.append(Emulator("moto", "aws", other.pid, 1, "http://127.0.0.1:1", ["moto_server"], "x.log"))
        box.save()
        results = down(tmp_path)
        assert [(r.emulator.pid, r.stopped) for r in results] == [(other.pid, False)]
        assert "command line" in results[0].reason
        assert other.poll() is None
        assert not (tmp_path / "servers.json").exists()
    finally:
        other.kill()
        other.wait()


def test_down_leaves_no_recorded_process_behind(sandbox: tuple[Path, dict[str, Any]]) -> None:
    directory, doc = sandbox
    pids = {s["name"]: s["pid"] for s in doc["servers"]}
    stopped = run(directory, "sandbox", "down", "--json")
    assert stopped.returncode == 0, stopped.stderr
    assert {s["name"] for s in json.loads(stopped.stdout)["stopped"]} == SERVERS
    deadline = time.monotonic() + 5
    while not all(gone(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [n for n, p in pids.items() if not gone(p)] == []
    status = run(directory, "sandbox", "status", "--json")
    assert json.loads(status.stdout)["running"] is False


def test_without_node_the_sandbox_says_how_to_get_azurite_and_carries_on(tmp_path: Path) -> None:
    directory = tmp_path / ".cloudorch" / "sandbox"
    up = run(directory, "sandbox", "up", cwd=tmp_path, PATH=str(tmp_path / "no-node"))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "azurite" in up.stdout and "install Node" in up.stdout
        status = json.loads(run(directory, "sandbox", "status", "--json", cwd=tmp_path).stdout)
        assert {s["name"] for s in status["servers"]} == SERVERS - {"azurite"}
        assert "Node" in status["skipped"]["azurite"]
    finally:
        assert run(directory, "sandbox", "down", cwd=tmp_path).returncode == 0
