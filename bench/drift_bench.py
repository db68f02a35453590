#!/usr/bin/env python3
"""Drift benchmark: `drift` over 1,000 core.file resources and over 300 moto-backed AWS resources.

Run:  .venv/bin/python bench/drift_bench.py  [--files 1000 --buckets 150 --queues 150 --latency 0.05]

Both cases apply a generated plan, change part of it behind cloudorch's back, then run
`api.drift` (the library call the CLI makes) and, for comparison in the same run, a no-change
`api.plan` before the tampering. Every AWS HTTP attempt first sleeps `--latency` seconds (a
botocore `before-send` handler through `AwsProvider.client_hooks`) and is counted.

- core.file: 10% edited, 5% deleted, 5% chmod-ed. Figures: drift wall time, reads per resource,
  and drift time relative to the re-plan. Target: drift at most 1.5x the re-plan's time.
- AWS: 10% of the buckets re-tagged and 10% of the queues deleted with boto3. Figures: wall time,
  AWS calls per resource (counted), against a sequential boto3 loop doing the same reads.
  Targets: at most 2 calls per resource, at least 8x faster than the sequential loop.

Prints one table; exits 1 if a target fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from cloudorch.sandbox.processes import start_moto

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
Row = tuple[str, str, str, "bool | None"]


def write_plan(directory: Path, name: str, resources: dict[str, Any], providers: dict[str, Any]) -> Path:
    path = directory / f"{name}.yaml"
    doc = {"version": 1, "name": name, "providers": providers, "resources": resources}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# --------------------------------------------------------------------------- core.file


def bench_files(n: int) -> list[Row]:
    from cloudorch import api

    with tempfile.TemporaryDirectory(prefix="drift-bench-files-") as tmp:
        root = Path(tmp)
        resources = {
            f"f{i:04d}": {
                "type": "core.file",
                "properties": {"path": f"out/f{i:04d}.txt", "content": f"file {i}\n", "mode": "0644"},
            }
            for i in range(n)
        }
        opts = api.RunOptions(plan_file=write_plan(root, "drift-files", resources, {}))
        result = api.apply(opts)
        assert result is not None and result.ok
        started = time.perf_counter()
        assert not api.plan(opts).has_changes
        replan = time.perf_counter() - started
        edited, deleted = range(0, n // 10), range(n // 10, n // 10 + n // 20)
        chmodded = range(n // 5 - n // 20, n // 5)
        for i in edited:
            (root / "out" / f"f{i:04d}.txt").write_text("edited\n")
        for i in deleted:
            (root / "out" / f"f{i:04d}.txt").unlink()
        for i in chmodded:
            os.chmod(root / "out" / f"f{i:04d}.txt", 0o600)
        started = time.perf_counter()
        report = api.drift(opts)
        seconds = time.perf_counter() - started
        counts = report.counts()
        assert counts["deleted"] == len(deleted) and counts["changed"] == len(edited) + len(chmodded), counts
        ratio = seconds / replan
        return [
            (f"core.file x{n}: re-plan (no changes)", f"{replan:.2f} s", "", None),
            (f"core.file x{n}: drift ({len(report.resources)} drifted)", f"{seconds:.2f} s", "", None),
            ("core.file: drift / re-plan time", f"{ratio:.2f}", "<= 1.5", ratio <= 1.5),
            ("core.file: read calls / resource", f"{report.refresh_calls / n:.2f}", "", None),
        ]


# --------------------------------------------------------------------------- AWS (moto)


def bench_aws(buckets: int, queues: int, latency_s: float) -> list[Row]:
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[key]
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )  # fmt: skip
    import boto3
    from botocore.config import Config
    from cloudorch_aws import AwsProvider
    from cloudorch_aws.faults import CallCounter, latency

    from cloudorch import api

    # moto in its own process, as AWS is: in-process it would share our GIL with the client threads
    server = start_moto()
    url = server.url
    n = buckets + queues
    try:
        os.environ["AWS_ENDPOINT_URL"] = url
        slow, counter = latency(latency_s), CallCounter()
        cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"})
        s3 = boto3.client("s3", region_name=REGION, endpoint_url=url, config=cfg)
        sqs = boto3.client("sqs", region_name=REGION, endpoint_url=url, config=cfg)
        resources: dict[str, Any] = {}
        for i in range(buckets):
            resources[f"bucket_{i}"] = {
                "type": "aws.s3_bucket",
                "properties": {"name": f"drift-bench-{i:04d}", "tags": {"bench": "drift", "n": str(i)}},
            }
        for i in range(queues):
            resources[f"queue_{i}"] = {
                "type": "aws.sqs_queue",
                "properties": {"name": f"drift-bench-{i:04d}", "tags": {"bench": "drift", "n": str(i)}},
            }
        with tempfile.TemporaryDirectory(prefix="drift-bench-aws-") as tmp:
            opts = api.RunOptions(plan_file=write_plan(Path(tmp), "drift-aws", resources, {"aws": {"region": REGION}}))
            result = api.apply(opts)  # no latency while setting up
            assert result is not None and result.ok, result and result.failed
            AwsProvider.client_hooks[:] = [slow, counter]
            started = time.perf_counter()
            assert not api.plan(opts).has_changes
            replan = time.perf_counter() - started
            for i in range(buckets // 10):
                s3.put_bucket_tagging(
                    Bucket=f"drift-bench-{i:04d}", Tagging={"TagSet": [{"Key": "bench", "Value": "changed"}]}
                )
            queue_urls = sorted(sqs.list_queues(MaxResults=1000).get("QueueUrls", []))
            for url_ in queue_urls[: queues // 10]:
                sqs.delete_queue(QueueUrl=url_)
            counter.reset()
            started = time.perf_counter()
            report = api.drift(opts)
            seconds = time.perf_counter() - started
            calls = counter.total()
            detail = ", ".join(f"{k} {v}" for k, v in sorted(counter.counts.items()))
            counts = report.counts()
            assert counts == {"changed": buckets // 10, "deleted": queues // 10, "created_outside": 0}, counts
            AwsProvider.client_hooks[:] = []
            # the same reads one after another, each with the same latency
            slow(s3), slow(sqs)
            live = sorted(sqs.list_queues(MaxResults=1000).get("QueueUrls", []))
            started = time.perf_counter()
            for i in range(buckets):
                s3.get_bucket_tagging(Bucket=f"drift-bench-{i:04d}")
            for url_ in live:
                sqs.list_queue_tags(QueueUrl=url_)
            sequential = time.perf_counter() - started
    finally:
        AwsProvider.client_hooks[:] = []
        server.stop()
    per = calls / n
    speedup = sequential / seconds
    print(f"aws drift calls: {detail}")
    return [
        (f"aws x{n}: re-plan (no changes)", f"{replan:.2f} s", "", None),
        (f"aws x{n}: drift ({len(report.resources)} drifted)", f"{seconds:.2f} s ({calls} calls)", "", None),
        ("aws: sequential boto3 reads", f"{sequential:.2f} s", "", None),
        ("aws: drift speed-up over sequential", f"{speedup:.1f}x", ">= 8x", speedup >= 8),
        ("aws: calls / resource", f"{per:.2f}", "<= 2", per <= 2),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--buckets", type=int, default=150)
    parser.add_argument("--queues", type=int, default=150)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every AWS call")
    args = parser.parse_args(argv)
    rows = bench_files(args.files) + bench_aws(args.buckets, args.queues, args.latency)
    width = max(len(r[0]) for r in rows)
    print(f"drift bench: {args.files} core.file; {args.buckets} buckets + {args.queues} queues, "
          f"+{args.latency * 1000:.0f} ms per AWS call (moto)")  # fmt: skip
    print(f"{'figure':<{width}}  {'measured':<24} {'target':<7} result")
    for name, value, target, ok in rows:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{name:<{width}}  {value:<24} {target:<7} {verdict}")
    return 0 if all(ok is not False for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
