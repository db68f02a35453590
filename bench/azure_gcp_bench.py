#!/usr/bin/env python3
"""Azure + GCP provider benchmark: 100 azure.storage_blob + 100 gcp.storage_object.

Run:  .venv/bin/python bench/azure_gcp_bench.py  [--blobs 100 --objects 100 --latency 0.05]

Azurite and fake-gcs-server answer in about a millisecond and the real services in tens, so
every HTTP call, in cloudorch and in the baseline alike, first sleeps `--latency` seconds on the
client side: an azure-core pipeline policy (`AzureProvider.extra_policies`) and a wrapper around
the google-cloud-storage HTTP session (`GcpProvider.session_wrapper`). Measured in one run:

- apply: one plan (a container, a bucket, and the blobs and objects in them) applied by
  cloudorch with default flags, in process through `cloudorch.api`, against a plain sequential
  loop of SDK calls making the same uploads (container/bucket create + one upload per object).
  Target: at least 8x faster.
- no-change plan of the same plan: wall time (reported, no target).
- `cloudorch --help`: median of 5 fresh processes with every provider installed, and whether
  any azure or google module was imported (must not be).

Prints one table; exits 1 if a target fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloudorch.sandbox.processes import RunningServer, start_azurite, start_fake_gcs  # noqa: E402

SPEEDUP_TARGET = 8.0


def latency_policy(seconds: float) -> Any:
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    class Latency(SansIOHTTPPolicy):  # type: ignore[type-arg]
        def on_request(self, request: Any) -> None:
            time.sleep(seconds)

    return Latency()


def latency_session(seconds: float) -> Any:
    def wrap(session: Any) -> Any:
        send = session.request

        def request(*args: Any, **kwargs: Any) -> Any:
            time.sleep(seconds)
            return send(*args, **kwargs)

        session.request = request
        return session

    return wrap


def plan_file(directory: Path, azurite: RunningServer, gcs: RunningServer, blobs: int, objects: int) -> Path:
    resources: dict[str, Any] = {
        "container": {"type": "azure.storage_container", "properties": {"name": "bench-cloudorch"}},
        "bucket": {"type": "gcp.storage_bucket", "properties": {"name": "bench-cloudorch", "force_destroy": True}},
    }
    for i in range(blobs):
        resources[f"blob_{i}"] = {
            "type": "azure.storage_blob",
            "properties": {
                "container": "${resources.container.name}",
                "name": f"b/{i:04d}.txt",
                "content": f"blob {i}\n",
            },
        }
    for i in range(objects):
        resources[f"object_{i}"] = {
            "type": "gcp.storage_object",
            "properties": {"bucket": "${resources.bucket.name}", "name": f"o/{i:04d}.txt", "content": f"object {i}\n"},
        }
    doc = {
        "version": 1,
        "name": "azure-gcp-bench",
        "providers": {
            "azure": {"storage_connection_string": azurite.extra["connection_string"]},
            "gcp": {"project": "bench", "endpoint": gcs.url},
        },
        "resources": resources,
    }
    path = directory / "azure-gcp-bench.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def sequential_baseline(azurite: RunningServer, gcs: RunningServer, blobs: int, objects: int, latency: float) -> float:
    """The same uploads, one after another, with plain SDK clients and the same added latency."""
    from azure.storage.blob import BlobServiceClient
    from google.auth.credentials import AnonymousCredentials
    from google.auth.transport.requests import AuthorizedSession
    from google.cloud import storage

    blob_service = BlobServiceClient.from_connection_string(
        azurite.extra["connection_string"], _additional_pipeline_policies=[latency_policy(latency)]
    )
    creds = AnonymousCredentials()
    session = latency_session(latency)(AuthorizedSession(creds))
    gcs_client = storage.Client(
        project="bench", credentials=creds, _http=session, client_options={"api_endpoint": gcs.url}
    )
    started = time.perf_counter()
    container = blob_service.create_container("bench-baseline")
    for i in range(blobs):
        container.upload_blob(f"b/{i:04d}.txt", f"blob {i}\n".encode())
    bucket = gcs_client.create_bucket("bench-baseline")
    for i in range(objects):
        bucket.blob(f"o/{i:04d}.txt").upload_from_string(f"object {i}\n".encode(), if_generation_match=0)
    return time.perf_counter() - started


def cloudorch_apply(plan: Path, latency: float) -> tuple[float, float, int]:
    from cloudorch_azure import AzureProvider
    from cloudorch_gcp import GcpProvider

    from cloudorch import api

    AzureProvider.extra_policies = [latency_policy(latency)]
    GcpProvider.session_wrapper = latency_session(latency)
    opts = api.RunOptions(plan_file=plan)
    started = time.perf_counter()
    result = api.apply(opts)
    apply_s = time.perf_counter() - started
    assert result is not None
    if result.failed:
        raise SystemExit(f"apply failed: {result.failed}")
    started = time.perf_counter()
    changes = api.plan(opts)
    plan_s = time.perf_counter() - started
    pending = sum(1 for c in changes.changes if str(getattr(c.action, "value", c.action)) != "no-op")
    return apply_s, plan_s, pending


def help_time() -> tuple[float, bool]:
    times = []
    imported_sdk = False
    for _ in range(5):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "cloudorch", "--help"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        times.append(time.perf_counter() - started)
        imported_sdk |= any(
            part.strip().startswith(("azure", "google"))
            for line in done.stderr.splitlines()
            if "|" in line
            for part in [line.rsplit("|", 1)[1]]
        )
    return statistics.median(times), imported_sdk


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blobs", type=int, default=100)
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every HTTP call")
    args = parser.parse_args()

    for name in ("STORAGE_EMULATOR_HOST", "AZURE_STORAGE_CONNECTION_STRING"):
        os.environ.pop(name, None)
    with start_azurite() as azurite, start_fake_gcs() as gcs, tempfile.TemporaryDirectory() as tmp:
        baseline = sequential_baseline(azurite, gcs, args.blobs, args.objects, args.latency)
        plan = plan_file(Path(tmp), azurite, gcs, args.blobs, args.objects)
        apply_s, replan_s, pending = cloudorch_apply(plan, args.latency)
    help_s, sdk_on_help = help_time()

    speedup = baseline / apply_s
    rows = [
        ("sequential SDK loop", f"{baseline:.2f} s", ""),
        ("cloudorch apply", f"{apply_s:.2f} s", ""),
        (
            "apply speed-up",
            f"{speedup:.1f}x",
            f">= {SPEEDUP_TARGET:.0f}x  {'PASS' if speedup >= SPEEDUP_TARGET else 'FAIL'}",
        ),
        ("no-change plan", f"{replan_s:.2f} s", f"0 pending  {'PASS' if pending == 0 else 'FAIL'} ({pending})"),
        ("cloudorch --help", f"{help_s * 1000:.0f} ms", f"no SDK import  {'FAIL' if sdk_on_help else 'PASS'}"),
    ]
    total = args.blobs + args.objects + 2
    print(
        f"azure+gcp bench: {args.blobs} azure.storage_blob + {args.objects} gcp.storage_object "
        f"(+2 containers), {args.latency * 1000:.0f} ms added per HTTP call, {total} resources"
    )
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"  {name:<{width}}  {value:>10}  {target}")
    ok = speedup >= SPEEDUP_TARGET and pending == 0 and not sdk_on_help
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
