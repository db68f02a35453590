#!/usr/bin/env python3
"""AWS provider benchmark: 200 aws.s3_bucket + 200 aws.sqs_queue against moto's server.

Run:  .venv/bin/python bench/aws_bench.py  [--buckets 200 --queues 200 --latency 0.05]

Real AWS answers in tens of milliseconds and moto in about one, so every HTTP attempt, in
cloudorch and in the baselines alike, first sleeps `--latency` seconds (a botocore `before-send`
handler registered through `AwsProvider.client_hooks`). Measured in one run:

- apply: one plan applied by cloudorch (default flags) against a plain sequential boto3 loop
  making the same calls (CreateBucket + PutBucketTagging; CreateQueue with tags).
  Target: at least 8x faster.
- no-change plan of the same 400: AWS calls per resource by type (counted from botocore events)
  and wall time against a sequential loop making the same reads (GetBucketTagging, ListQueueTags).
  Targets: at most 2 calls per resource on average, at least 8x faster.

Prints one table; exits 1 if a target fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from cloudorch.sandbox.processes import start_moto

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"


def reset(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).read()


def plan_file(directory: Path, buckets: int, queues: int) -> Path:
    resources: dict[str, Any] = {}
    for i in range(buckets):
        resources[f"bucket_{i}"] = {
            "type": "aws.s3_bucket",
            "properties": {"name": f"bench-bucket-{i:04d}", "tags": {"bench": "aws", "n": str(i)}},
        }
    for i in range(queues):
        resources[f"queue_{i}"] = {
            "type": "aws.sqs_queue",
            "properties": {"name": f"bench-queue-{i:04d}", "tags": {"bench": "aws", "n": str(i)}},
        }
    doc = {"version": 1, "name": "aws-bench", "providers": {"aws": {"region": REGION}}, "resources": resources}
    path = directory / "aws-bench.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def plain_clients(url: str, hooks: list[Any]) -> tuple[Any, Any]:
    import boto3
    from botocore.config import Config

    cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"})
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=url, config=cfg)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=url, config=cfg)
    for hook in hooks:
        hook(s3)
        hook(sqs)
    return s3, sqs


def sequential_create(s3: Any, sqs: Any, buckets: int, queues: int) -> float:
    started = time.perf_counter()
    for i in range(buckets):
        name = f"bench-bucket-{i:04d}"
        s3.create_bucket(Bucket=name)
        tags = {"bench": "aws", "n": str(i), "cloudorch:address": f"bucket_{i}"}
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})
    for i in range(queues):
        tags = {"bench": "aws", "n": str(i), "cloudorch:address": f"queue_{i}"}
        sqs.create_queue(QueueName=f"bench-queue-{i:04d}", tags=tags)
    return time.perf_counter() - started


def sequential_read(s3: Any, sqs: Any, buckets: int, queue_urls: list[str]) -> float:
    started = time.perf_counter()
    for i in range(buckets):
        s3.get_bucket_tagging(Bucket=f"bench-bucket-{i:04d}")
    for url in queue_urls:
        sqs.list_queue_tags(QueueUrl=url)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buckets", type=int, default=200)
    parser.add_argument("--queues", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every AWS call")
    args = parser.parse_args(argv)

    for key in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[key]
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )  # fmt: skip
    from cloudorch_aws import AwsProvider
    from cloudorch_aws.faults import CallCounter, latency

    from cloudorch import api

    # moto in its own process, as AWS is: in-process it would share our GIL with 32 client threads
    server = start_moto()
    url = server.url
    os.environ["AWS_ENDPOINT_URL"] = url
    n = args.buckets + args.queues
    rows: list[tuple[str, str, str, bool | None]] = []
    try:
        slow = latency(args.latency)
        # ------------------------------------------------------------ baseline apply
        s3, sqs = plain_clients(url, [slow])
        s3.list_buckets(), sqs.list_queues()  # warm both services, as cloudorch's first calls would
        base_apply = sequential_create(s3, sqs, args.buckets, args.queues)
        reset(url)

        # ------------------------------------------------------------ cloudorch apply
        counter = CallCounter()
        AwsProvider.client_hooks[:] = [slow, counter]
        with tempfile.TemporaryDirectory(prefix="aws-bench-") as tmp:
            plan = plan_file(Path(tmp), args.buckets, args.queues)
            opts = api.RunOptions(plan_file=plan)
            started = time.perf_counter()
            result = api.apply(opts)
            co_apply = time.perf_counter() - started
            assert result is not None and result.ok, result and result.failed
            apply_calls = counter.total()

            # -------------------------------------------------------- no-change plan
            counter.reset()
            started = time.perf_counter()
            cs = api.plan(opts)
            co_plan = time.perf_counter() - started
            assert not cs.has_changes, [c.address for c in cs.changes if c.is_change]
            s3_calls, sqs_calls = counter.total("s3"), counter.total("sqs")
            detail = ", ".join(f"{k} {v}" for k, v in sorted(counter.counts.items()))

            # -------------------------------------------------------- baseline reads
            queue_urls = sqs.list_queues(MaxResults=1000).get("QueueUrls", [])
            base_plan = sequential_read(s3, sqs, args.buckets, queue_urls)
            api.destroy(opts)
    finally:
        AwsProvider.client_hooks[:] = []
        server.stop()

    per_bucket = s3_calls / max(1, args.buckets)
    per_queue = sqs_calls / max(1, args.queues)
    per_resource = (s3_calls + sqs_calls) / n
    rows += [
        ("apply: sequential boto3 loop", f"{base_apply:.2f} s", "", None),
        ("apply: cloudorch", f"{co_apply:.2f} s ({apply_calls} calls)", "", None),
        ("apply speed-up", f"{base_apply / co_apply:.1f}x", ">= 8x", base_apply / co_apply >= 8),
        ("re-plan: sequential reads", f"{base_plan:.2f} s", "", None),
        ("re-plan: cloudorch (no changes)", f"{co_plan:.2f} s", "", None),
        ("re-plan speed-up", f"{base_plan / co_plan:.1f}x", ">= 8x", base_plan / co_plan >= 8),
        ("re-plan calls / aws.s3_bucket", f"{per_bucket:.2f}", "", None),
        ("re-plan calls / aws.sqs_queue", f"{per_queue:.2f}", "", None),
        ("re-plan calls / resource", f"{per_resource:.2f}", "<= 2", per_resource <= 2),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"aws bench: {args.buckets} buckets + {args.queues} queues, +{args.latency * 1000:.0f} ms per call (moto)")
    print(f"{'figure':<{width}}  {'measured':<24} {'target':<7} result")
    for name, value, target, ok in rows:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{name:<{width}}  {value:<24} {target:<7} {verdict}")
    print(f"re-plan calls: {detail}")
    return 0 if all(ok is not False for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
