#!/usr/bin/env python3
"""GCP service benchmark: 200 Google resources beyond storage on the Google REST test server.

Run:  .venv/bin/python bench/gcp_service_bench.py  [--latency 0.05] [--scale 1.0]

The Google REST test server (`cloudorch_gcp.testserver`) runs as its own process, as Google
does (in-process it would share our GIL with the provider's 32 threads), and sleeps `--latency`
seconds in every call. By default: 80 gcp.pubsub_topic, 60 gcp.pubsub_subscription and 60
gcp.resource (Artifact Registry repositories: a google.longrunning operation per create).
Measured in one run:

- apply: one plan applied by cloudorch (default flags) against a sequential googleapiclient loop
  making each object's create (and, for an operation, awaiting it). Target: at least 8x faster.
- no-change plan: calls per resource by type (counted by the server) and wall time against a
  sequential loop reading each object once. Targets: at most 2 calls per resource, at least 8x.

Types are rows of `KINDS`: a new type adds one `Kind` (its count, its plan properties, the
server's method ids it uses, and its baseline create and read) and gets its own table line.
Prints one table; exits 1 if a target fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT = "bench"
LOCATION = "europe-west1"


#: each type's count in this run (after --scale): a kind whose objects refer to another's reads it
COUNTS: dict[str, int] = {}


def _topic_of(i: int) -> int:
    return i % COUNTS["gcp.pubsub_topic"]


@dataclass(frozen=True)
class Kind:
    """One resource type of the bench: `count` objects, built and read as a user's loop would."""

    type: str
    count: int
    props: Callable[[int], dict[str, Any]]
    #: server method ids whose calls belong to this type (the table's calls per resource)
    methods: tuple[str, ...]
    create: Callable[[Any, int], None]  # the baseline's create of object i (awaiting any operation)
    read: Callable[[Any, int], None]  # the baseline's read of object i


def _services(url: str) -> dict[str, Any]:
    import httplib2
    from googleapiclient.discovery import build

    def svc(api: str, version: str, service_path: str = "") -> Any:
        options = {"api_endpoint": f"{url}/{api}/{service_path}"}
        return build(api, version, static_discovery=True, http=httplib2.Http(), client_options=options)

    return {"pubsub": svc("pubsub", "v1"), "artifactregistry": svc("artifactregistry", "v1"),
            "compute": svc("compute", "v1", "compute/v1/"), "iam": svc("iam", "v1"),
            "cloudresourcemanager": svc("cloudresourcemanager", "v1"), "run": svc("run", "v2")}  # fmt: skip


def _await_longrunning(svc: Any, op: dict[str, Any]) -> None:
    while not op.get("done"):
        op = svc.projects().locations().operations().get(name=op["name"]).execute()


def _repo_create(s: dict[str, Any], i: int) -> None:
    svc = s["artifactregistry"]
    body = {"format": "DOCKER", "labels": {"bench": "gcp", "cloudorch-address": f"repo_{i}"}}
    op = svc.projects().locations().repositories().create(
        parent=f"projects/{PROJECT}/locations/{LOCATION}", repositoryId=f"repo-{i:04d}", body=body
    ).execute()
    _await_longrunning(svc, op)


KINDS: list[Kind] = [
    Kind(
        type="gcp.pubsub_topic",
        count=80,
        props=lambda i: {"name": f"topic-{i:04d}", "labels": {"bench": "gcp"},
                         "message_retention_duration": "600s"},
        methods=("pubsub.projects.topics.",),
        create=lambda s, i: s["pubsub"].projects().topics().create(
            name=f"projects/{PROJECT}/topics/topic-{i:04d}",
            body={"labels": {"bench": "gcp", "cloudorch-address": f"topic_{i}"}, "messageRetentionDuration": "600s"},
        ).execute(),
        read=lambda s, i: s["pubsub"].projects().topics().get(
            topic=f"projects/{PROJECT}/topics/topic-{i:04d}"
        ).execute(),
    ),
    Kind(
        type="gcp.pubsub_subscription",
        count=60,
        props=lambda i: {"name": f"sub-{i:04d}", "topic": f"${{resources.topic_{_topic_of(i)}.name}}",
                         "ack_deadline_seconds": 30},
        methods=("pubsub.projects.subscriptions.",),
        create=lambda s, i: s["pubsub"].projects().subscriptions().create(
            name=f"projects/{PROJECT}/subscriptions/sub-{i:04d}",
            body={"topic": f"projects/{PROJECT}/topics/topic-{_topic_of(i):04d}", "ackDeadlineSeconds": 30,
                  "labels": {"cloudorch-address": f"subscription_{i}"}},
        ).execute(),
        read=lambda s, i: s["pubsub"].projects().subscriptions().get(
            subscription=f"projects/{PROJECT}/subscriptions/sub-{i:04d}"
        ).execute(),
    ),
    Kind(
        type="gcp.resource",
        count=60,
        props=lambda i: {"api": "artifactregistry/v1", "collection": "projects.locations.repositories",
                         "parent": f"projects/{PROJECT}/locations/{LOCATION}", "name": f"repo-{i:04d}",
                         "body": {"format": "DOCKER"}, "labels": {"bench": "gcp"}},
        methods=("artifactregistry.",),
        create=_repo_create,
        read=lambda s, i: s["artifactregistry"].projects().locations().repositories().get(
            name=f"projects/{PROJECT}/locations/{LOCATION}/repositories/repo-{i:04d}"
        ).execute(),
    ),
    # compute, IAM and Cloud Run (cloudorch_gcp.compute, .iam, .run): ten of each
    Kind(
        type="gcp.compute_network",
        count=10,
        props=lambda i: {"name": f"net-{i:04d}", "auto_create_subnetworks": False, "routing_mode": "GLOBAL"},
        methods=("compute.networks.", "compute.globalOperations."),
        create=lambda s, i: s["compute"].networks().insert(project=PROJECT, body={
            "name": f"net-{i:04d}", "autoCreateSubnetworks": False,
            "routingConfig": {"routingMode": "GLOBAL"}}).execute(),
        read=lambda s, i: s["compute"].networks().get(project=PROJECT, network=f"net-{i:04d}").execute(),
    ),
    Kind(
        type="gcp.compute_subnetwork",
        count=10,
        props=lambda i: {"name": f"sub-{i:04d}", "region": LOCATION, "network": "${resources.compute_network_0.id}",
                         "ip_cidr_range": f"10.{i % 250}.0.0/24"},
        methods=("compute.subnetworks.", "compute.regionOperations."),
        create=lambda s, i: s["compute"].subnetworks().insert(project=PROJECT, region=LOCATION, body={
            "name": f"sub-{i:04d}", "network": f"projects/{PROJECT}/global/networks/net-0000",
            "ipCidrRange": f"10.{i % 250}.0.0/24"}).execute(),
        read=lambda s, i: s["compute"].subnetworks().get(project=PROJECT, region=LOCATION,
                                                         subnetwork=f"sub-{i:04d}").execute(),
    ),
    Kind(
        type="gcp.compute_firewall",
        count=10,
        props=lambda i: {"name": f"fw-{i:04d}", "network": "${resources.compute_network_0.id}",
                         "allow": [{"protocol": "tcp", "ports": [str(8000 + i)]}], "target_tags": ["web"]},
        methods=("compute.firewalls.",),
        create=lambda s, i: s["compute"].firewalls().insert(project=PROJECT, body={
            "name": f"fw-{i:04d}", "network": f"projects/{PROJECT}/global/networks/net-0000",
            "allowed": [{"IPProtocol": "tcp", "ports": [str(8000 + i)]}], "targetTags": ["web"]}).execute(),
        read=lambda s, i: s["compute"].firewalls().get(project=PROJECT, firewall=f"fw-{i:04d}").execute(),
    ),
    Kind(
        type="gcp.service_account",
        count=10,
        props=lambda i: {"account_id": f"bench-sa-{i:04d}", "display_name": f"bench {i}"},
        methods=("iam.projects.serviceAccounts.",),
        create=lambda s, i: s["iam"].projects().serviceAccounts().create(name=f"projects/{PROJECT}", body={
            "accountId": f"bench-sa-{i:04d}", "serviceAccount": {"displayName": f"bench {i}"}}).execute(),
        read=lambda s, i: s["iam"].projects().serviceAccounts().get(
            name=f"projects/{PROJECT}/serviceAccounts/bench-sa-{i:04d}@{PROJECT}.iam.gserviceaccount.com").execute(),
    ),
    Kind(
        type="gcp.project_iam_member",
        count=10,
        props=lambda i: {"role": "roles/viewer", "member": f"user:bench-{i:04d}@example.com"},
        methods=("cloudresourcemanager.projects.",),
        create=lambda s, i: _grant(s, i),
        read=lambda s, i: s["cloudresourcemanager"].projects().getIamPolicy(resource=PROJECT, body={}).execute(),
    ),
    Kind(
        type="gcp.cloud_run_service",
        count=10,
        props=lambda i: {"name": f"svc-{i:04d}", "location": LOCATION,
                         "containers": [{"image": f"europe-docker.pkg.dev/{PROJECT}/apps/web:{i}"}]},
        methods=("run.projects.locations.",),
        create=lambda s, i: _await_longrunning(s["run"], s["run"].projects().locations().services().create(
            parent=f"projects/{PROJECT}/locations/{LOCATION}", serviceId=f"svc-{i:04d}", body={
                "template": {"containers": [{"image": f"europe-docker.pkg.dev/{PROJECT}/apps/web:{i}"}]}}).execute()),
        read=lambda s, i: s["run"].projects().locations().services().get(
            name=f"projects/{PROJECT}/locations/{LOCATION}/services/svc-{i:04d}").execute(),
    ),
]

#: the plan's resource name prefix per type
PREFIX = {"gcp.pubsub_topic": "topic", "gcp.pubsub_subscription": "subscription", "gcp.resource": "repo"}


def control(url: str, what: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body or {}).encode() if body is not None or what != "calls" else None
    method = "GET" if what == "calls" else "POST"
    request = urllib.request.Request(f"{url}/_testserver/{what}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        doc: dict[str, Any] = json.loads(response.read() or b"{}")
        return doc


def plan_file(directory: Path, url: str, kinds: list[Kind]) -> Path:
    resources: dict[str, Any] = {}
    for kind in kinds:
        for i in range(kind.count):
            resources[f"{PREFIX.get(kind.type, kind.type.split('.')[-1])}_{i}"] = {"type": kind.type,
                                                                               "properties": kind.props(i)}  # fmt: skip
    doc = {"version": 1, "name": "gcp-bench", "resources": resources,
           "providers": {"gcp": {"project": PROJECT, "api_endpoint": url, "operation_poll_interval": 0}}}  # fmt: skip
    path = directory / "gcp-bench.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def calls_of(counts: dict[str, int], kind: Kind) -> int:
    return sum(n for method, n in counts.items() if method.startswith(kind.methods))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the server adds to every call")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every type's count (0.1 for a quick run)")
    args = parser.parse_args(argv)
    kinds = [Kind(k.type, max(1, round(k.count * args.scale)), k.props, k.methods, k.create, k.read) for k in KINDS]
    COUNTS.update({k.type: k.count for k in kinds})

    from cloudorch import api
    from cloudorch.sandbox.processes import free_port, google_argv, start_process

    port = free_port()
    server = start_process("google-apis", google_argv(sys.executable, port), port)
    url = server.url
    n = sum(k.count for k in kinds)
    rows: list[tuple[str, str, str, bool | None]] = []
    try:
        control(url, "config", {"latency_ms": args.latency * 1000})
        # ------------------------------------------------------------ baseline apply
        services = _services(url)
        started = time.perf_counter()
        for kind in kinds:
            for i in range(kind.count):
                kind.create(services, i)
        base_apply = time.perf_counter() - started
        started = time.perf_counter()
        for kind in kinds:
            for i in range(kind.count):
                kind.read(services, i)
        base_plan = time.perf_counter() - started
        control(url, "reset")
        control(url, "config", {"latency_ms": args.latency * 1000})

        with tempfile.TemporaryDirectory(prefix="gcp-bench-") as tmp:
            # warm-up: one of each type applied and destroyed, so imports and .pyc files are warm
            warm = plan_file(Path(tmp), url, [Kind(k.type, 1, k.props, k.methods, k.create, k.read) for k in kinds])
            api.apply(api.RunOptions(plan_file=warm))
            api.destroy(api.RunOptions(plan_file=warm))
            control(url, "calls/reset")
            plan = plan_file(Path(tmp), url, kinds)
            opts = api.RunOptions(plan_file=plan)
            # -------------------------------------------------------- cloudorch apply
            started = time.perf_counter()
            result = api.apply(opts)
            co_apply = time.perf_counter() - started
            assert result is not None and result.ok, result and result.failed
            apply_calls = sum(control(url, "calls")["calls"].values())
            # -------------------------------------------------------- no-change plan
            control(url, "calls/reset")
            started = time.perf_counter()
            cs = api.plan(opts)
            co_plan = time.perf_counter() - started
            assert not cs.has_changes, [c.address for c in cs.changes if c.is_change]
            counts: dict[str, int] = control(url, "calls")["calls"]
            control(url, "config", {"latency_ms": 0})
            api.destroy(opts)
    finally:
        server.stop()

    plan_calls = sum(counts.values())
    rows += [
        ("apply: sequential googleapiclient loop", f"{base_apply:.2f} s", "", None),
        ("apply: cloudorch", f"{co_apply:.2f} s ({apply_calls} calls)", "", None),
        ("apply speed-up", f"{base_apply / co_apply:.1f}x", ">= 8x", base_apply / co_apply >= 8),
        ("re-plan: sequential reads", f"{base_plan:.2f} s", "", None),
        ("re-plan: cloudorch (no changes)", f"{co_plan:.2f} s", "", None),
        ("re-plan speed-up", f"{base_plan / co_plan:.1f}x", ">= 8x", base_plan / co_plan >= 8),
    ]
    for kind in kinds:
        per = calls_of(counts, kind) / kind.count
        rows.append((f"re-plan calls / {kind.type} ({kind.count})", f"{per:.2f}", "<= 2", per <= 2))
    rows.append(("re-plan calls / resource", f"{plan_calls / n:.2f}", "<= 2", plan_calls / n <= 2))
    width = max(len(r[0]) for r in rows)
    shape = " + ".join(f"{k.count} {k.type}" for k in kinds)
    print(f"gcp service bench: {shape}, +{args.latency * 1000:.0f} ms per call (Google REST test server)")
    print(f"{'figure':<{width}}  {'measured':<24} {'target':<7} result")
    for name, value, target, ok in rows:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{name:<{width}}  {value:<24} {target:<7} {verdict}")
    print("re-plan calls: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0 if all(ok is not False for *_, ok in rows) else 1


def _grant(s: dict[str, Any], i: int) -> None:
    """A user's loop adding one member: read the project's policy, add, write it back."""
    projects = s["cloudresourcemanager"].projects()
    policy = projects.getIamPolicy(resource=PROJECT, body={}).execute()
    policy.setdefault("bindings", []).append({"role": "roles/viewer", "members": [f"user:bench-{i:04d}@example.com"]})
    projects.setIamPolicy(resource=PROJECT, body={"policy": policy}).execute()


def _sub_create(s: dict[str, Any], i: int, topics: int) -> None:
    s["pubsub"].projects().subscriptions().create(
        name=f"projects/{PROJECT}/subscriptions/sub-{i:04d}",
        body={"topic": f"projects/{PROJECT}/topics/topic-{i % topics:04d}", "ackDeadlineSeconds": 30,
              "labels": {"cloudorch-address": f"subscription_{i}"}},
    ).execute()


if __name__ == "__main__":
    sys.exit(main())
