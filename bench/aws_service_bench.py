#!/usr/bin/env python3
"""AWS service types benchmark: 300 resources spread over the service types, against moto's server.

Run:  .venv/bin/python bench/aws_service_bench.py  [--resources 300 --latency 0.05]

Real AWS answers in tens of milliseconds and moto in about one, so every HTTP attempt, in
cloudorch and in the baselines alike, first sleeps `--latency` seconds (a botocore `before-send`
handler registered through `AwsProvider.client_hooks`). The resources are spread evenly over the
rows of `TYPES`, a table of (type, properties factory): adding a type is one line there.

- apply: one plan applied by cloudorch (default flags), against a sequential boto3 loop making
  the very same calls. The baseline is not written by hand: every call cloudorch made is
  recorded (operation, parameters, answer) and replayed one after another by plain boto3
  clients on a reset moto, each id the cloud chose (a KMS key id, a secret's ARN) translated to
  the one the replay got. Target: at least 8x faster.
- no-change plan of the same resources: AWS calls per resource at refresh (counted from botocore
  events, by service), and wall time against a sequential replay of the same reads.
  Targets: at most 2 calls per resource, at least 8x faster.

The replay's own time (the second row) is what moto and boto3 spend beyond the added latency:
moto makes an RSA-2048 private key for every KMS key, symmetric ones too (about 0.1 s of its CPU
each), and cloudorch's apply, which waits on the same server, pays that CPU too.

Prints one table; exits 1 if a target fails.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from cloudorch.sandbox.processes import start_moto

REGION = "us-east-1"
Props = Callable[[int], dict[str, Any]]


def ref(type_name: str, i: int, attribute: str) -> str:
    """A reference to attribute `attribute` of resource number `i` of `type_name` in the bench plan."""
    return "${resources." + address(type_name, i) + "." + attribute + "}"


def address(type_name: str, i: int) -> str:
    return f"{type_name.replace('.', '_')}_{i}"


TAGS = {"bench": "aws-service"}

#: (type, properties of resource number i): the resources are spread evenly over these rows; a
#: row may refer to the resource with the same number of an earlier row (`ref`)
TYPES: list[tuple[str, Props]] = [
    ("aws.kms_key", lambda i: {"description": f"bench key {i}", "deletion_window_in_days": 7, "tags": TAGS}),
    ("aws.kms_alias", lambda i: {"name": f"alias/bench-{i}", "target_key_id": ref("aws.kms_key", i, "key_id")}),
    ("aws.secretsmanager_secret", lambda i: {"name": f"bench/secret-{i}", "secret_string": f"s3cret-{i}",
                                             "recovery_window_in_days": 0, "tags": TAGS}),
    ("aws.ssm_parameter", lambda i: {"name": f"/bench/param-{i}", "type": "SecureString", "value": f"v{i}",
                                     "key_id": ref("aws.kms_key", i, "arn"), "tags": TAGS}),
    ("aws.cloudwatch_log_group", lambda i: {"name": f"/bench/logs-{i}", "retention_in_days": 14, "tags": TAGS}),
    ("aws.ecr_repository", lambda i: {"name": f"bench/repo-{i}", "scan_on_push": True, "tags": TAGS}),
    # networking, load balancing, containers and events; the VPC row only holds what they refer to
    ("aws.vpc", lambda i: {"cidr_block": f"10.{i % 250}.0.0/16", "tags": TAGS}),
    ("aws.internet_gateway", lambda i: {"vpc_id": ref("aws.vpc", i, "id"), "tags": TAGS}),
    ("aws.route_table", lambda i: {"vpc_id": ref("aws.vpc", i, "id"), "tags": TAGS, "routes": [
        {"destination_cidr_block": "0.0.0.0/0", "gateway_id": ref("aws.internet_gateway", i, "id")}]}),
    ("aws.lb_target_group", lambda i: {"name": f"bench-tg-{i}", "port": 80, "protocol": "HTTP",
                                       "vpc_id": ref("aws.vpc", i, "id"), "tags": TAGS}),
    ("aws.ecs_cluster", lambda i: {"name": f"bench-{i}", "tags": TAGS}),
    ("aws.ecs_task_definition", lambda i: {"family": f"bench-{i}", "tags": TAGS, "container_definitions": [
        {"name": "web", "image": "nginx:1.27", "memory": 256}]}),
    ("aws.eventbridge_rule", lambda i: {"name": f"bench-{i}", "schedule_expression": "rate(5 minutes)",
                                        "tags": TAGS}),
]  # fmt: skip


def counts(total: int) -> list[int]:
    """How many resources of each row: `total` spread evenly, the first rows taking the remainder."""
    base, extra = divmod(total, len(TYPES))
    return [base + (1 if k < extra else 0) for k in range(len(TYPES))]


def plan_file(directory: Path, total: int) -> Path:
    resources: dict[str, Any] = {}
    for (type_name, props), n in zip(TYPES, counts(total), strict=True):
        for i in range(n):
            resources[address(type_name, i)] = {"type": type_name, "properties": props(i)}
    doc = {"version": 1, "name": "aws-service-bench", "providers": {"aws": {"region": REGION}}, "resources": resources}
    path = directory / "aws-service-bench.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def reset(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).read()


# --------------------------------------------------------------------------- the recorded calls


class Recorder:
    """A client hook recording every API call, in the order they were made, with its answer."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, client: Any) -> None:
        service = client.meta.service_model.service_name

        def before(event_name: str, params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
            entry = {"service": service, "op": event_name.rsplit(".", 1)[-1], "params": copy.deepcopy(params)}
            context["bench_entry"] = entry
            with self._lock:
                self.calls.append(entry)

        def after(parsed: Any, context: dict[str, Any], **kwargs: Any) -> None:
            entry = context.get("bench_entry")
            if entry is not None:
                entry["answer"] = parsed

        client.meta.events.register("before-parameter-build", before, unique_id=f"bench-before-{id(self)}")
        client.meta.events.register("after-call", after, unique_id=f"bench-after-{id(self)}")

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            calls, self.calls = self.calls, []
        return calls


def _learn(ids: dict[str, str], recorded: Any, replayed: Any) -> None:
    """Map each string of a recorded answer to the one at the same place in the replayed answer."""
    if isinstance(recorded, Mapping) and isinstance(replayed, Mapping):
        for k, v in recorded.items():
            if k != "ResponseMetadata" and k in replayed:
                _learn(ids, v, replayed[k])
    elif isinstance(recorded, list) and isinstance(replayed, list):
        for a, b in zip(recorded, replayed, strict=False):
            _learn(ids, a, b)
    elif isinstance(recorded, str) and isinstance(replayed, str) and recorded != replayed:
        ids[recorded] = replayed


def _translate(value: Any, ids: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return ids.get(value, value)
    if isinstance(value, Mapping):
        return {k: _translate(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_translate(v, ids) for v in value]
    return value


def replay(calls: list[dict[str, Any]], clients: Callable[[str], Any]) -> float:
    """Make `calls` again, one after another, translating ids; the seconds it took (the added
    latency included: subtract `len(calls) * latency` for the emulator's and the client's own time)."""
    from botocore.exceptions import ClientError

    ids: dict[str, str] = {}
    started = time.perf_counter()
    for call in calls:
        client = clients(call["service"])
        method = getattr(client, _snake(client, call["op"]))
        try:
            answer = method(**_translate(call["params"], ids))
        except ClientError:
            continue  # the same refusal cloudorch met (a `find` of what does not exist yet)
        _learn(ids, call.get("answer"), answer)
    return time.perf_counter() - started


def _snake(client: Any, op: str) -> str:
    for method, api in client.meta.method_to_api_mapping.items():
        if api == op:
            return str(method)
    raise KeyError(op)


def plain_clients(hooks: list[Any]) -> Callable[[str], Any]:
    import boto3
    from botocore.config import Config

    cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"})
    made: dict[str, Any] = {}

    def get(service: str) -> Any:
        if service not in made:
            made[service] = boto3.client(service, region_name=REGION, config=cfg)
            for hook in hooks:
                hook(made[service])
        return made[service]

    return get


def warm(clients: Callable[[str], Any], services: list[str]) -> None:
    """moto's first call to a service costs up to a second: pay it before any clock runs."""
    first = {"kms": "list_keys", "secretsmanager": "list_secrets", "ssm": "describe_parameters",
             "logs": "describe_log_groups", "ecr": "describe_repositories", "sts": "get_caller_identity"}  # fmt: skip
    for service in services:
        op = first.get(service)
        client = clients(service)
        if op is None:
            op = next(m for m in client.meta.method_to_api_mapping if m.startswith(("list_", "describe_")))
        with contextlib.suppress(Exception):  # an operation that wants parameters still loads the service
            getattr(client, op)()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every AWS call")
    args = parser.parse_args(argv)

    for key in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[key]
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )  # fmt: skip
    from cloudorch_aws import AwsProvider
    from cloudorch_aws.faults import latency

    from cloudorch import api

    services = sorted({AwsProvider.type_class(t).service for t, _ in TYPES})  # type: ignore[union-attr]
    per_service: Counter[str] = Counter()
    for (type_name, _), n in zip(TYPES, counts(args.resources), strict=True):
        per_service[AwsProvider.type_class(type_name).service] += n  # type: ignore[union-attr]

    # moto in its own process, as AWS is: in-process it would share our GIL with 32 client threads
    server = start_moto()
    os.environ["AWS_ENDPOINT_URL"] = server.url
    try:
        slow = latency(args.latency)
        recorder = Recorder()
        clients = plain_clients([slow])
        warm(clients, services)
        AwsProvider.client_hooks[:] = [slow, recorder]
        with tempfile.TemporaryDirectory(prefix="aws-service-bench-") as tmp:
            opts = api.RunOptions(plan_file=plan_file(Path(tmp), args.resources))
            # ------------------------------------------------------------ cloudorch apply
            started = time.perf_counter()
            result = api.apply(opts)
            co_apply = time.perf_counter() - started
            assert result is not None and result.ok, result and result.failed
            applied = recorder.take()

            # ------------------------------------------------------------ no-change plan
            started = time.perf_counter()
            cs = api.plan(opts)
            co_plan = time.perf_counter() - started
            assert not cs.has_changes, [c.address for c in cs.changes if c.is_change]
            refreshed = recorder.take()

            # ------------------------------------------------------------ baselines
            base_plan = replay(refreshed, clients)  # the reads, on the objects cloudorch made
            AwsProvider.client_hooks[:] = [slow]
            api.destroy(opts)
        reset(server.url)
        warm(clients, services)
        base_apply = replay(applied, clients)
    finally:
        AwsProvider.client_hooks[:] = []
        server.stop()

    by_service = Counter(c["service"] for c in refreshed)
    per_resource = len(refreshed) / max(1, args.resources)
    own = base_apply - len(applied) * args.latency
    rows: list[tuple[str, str, str, bool | None]] = [
        ("apply: sequential boto3 replay", f"{base_apply:.2f} s ({len(applied)} calls)", "", None),
        ("  of which moto's and boto3's own work", f"{own:.2f} s", "", None),
        ("apply: cloudorch", f"{co_apply:.2f} s", "", None),
        # moto answers one call at a time (one process, one GIL): its own work bounds any client
        ("  cloudorch / moto's own work", f"{co_apply / max(own, 1e-9):.2f}", "", None),
        ("apply speed-up", f"{base_apply / co_apply:.1f}x", ">= 8x", base_apply / co_apply >= 8),
        ("re-plan: sequential boto3 replay", f"{base_plan:.2f} s ({len(refreshed)} calls)", "", None),
        ("re-plan: cloudorch (no changes)", f"{co_plan:.2f} s", "", None),
        ("re-plan speed-up", f"{base_plan / co_plan:.1f}x", ">= 8x", base_plan / co_plan >= 8),
    ]
    for service in services:
        n = per_service[service]
        figure = f"{by_service[service] / max(1, n):.2f} ({n})"
        rows.append((f"re-plan calls / resource on {service}", figure, "", None))
    rows.append(("re-plan calls / resource", f"{per_resource:.2f}", "<= 2", per_resource <= 2))
    width = max(len(r[0]) for r in rows)
    kinds = ", ".join(f"{n} {t}" for (t, _), n in zip(TYPES, counts(args.resources), strict=True))
    print(f"aws service bench: {kinds}; +{args.latency * 1000:.0f} ms per call (moto)")
    print(f"{'figure':<{width}}  {'measured':<26} {'target':<7} result")
    for name, value, target, ok in rows:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{name:<{width}}  {value:<26} {target:<7} {verdict}")
    detail = Counter(f"{c['service']}.{c['op']}" for c in refreshed)
    print("re-plan calls: " + ", ".join(f"{k} {v}" for k, v in sorted(detail.items())))
    return 0 if all(ok is not False for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
