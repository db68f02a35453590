"""The provider's behaviour beyond one type's lifecycle: error classes, adoption, tags, batching,
drift of local files, rule order, config blocks. All against moto's server over HTTP."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cloudorch.errors import ErrorKind, ProviderError
from cloudorch.provider.contract import ProviderContext, ReadRequest
from cloudorch_aws import AwsConfig, AwsProvider
from cloudorch_aws.faults import CallCounter, Fault


def bucket_type(provider: AwsProvider) -> Any:
    return provider.resource_type("aws.s3_bucket")


def props(rt: Any, **kw: Any) -> Any:
    return rt.Properties.model_validate(kw)


# ----------------------------------------------------------------------------- classify


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (503, "SlowDown", ErrorKind.THROTTLED),
        (400, "Throttling", ErrorKind.THROTTLED),
        (429, "TooManyRequestsException", ErrorKind.THROTTLED),
        (500, "InternalError", ErrorKind.TRANSIENT),
        (503, "ServiceUnavailable", ErrorKind.TRANSIENT),
        (409, "OperationAborted", ErrorKind.CONFLICT),
        (403, "AccessDenied", ErrorKind.FATAL),
        (400, "InvalidBucketName", ErrorKind.FATAL),
    ],
)
def test_s3_errors_are_classified(provider: AwsProvider, status: int, code: str, kind: ErrorKind) -> None:
    fault = Fault("s3", "CreateBucket", status, code, f"injected {code}")
    AwsProvider.client_hooks.append(fault)
    rt = bucket_type(provider)
    with pytest.raises(ProviderError) as info:
        rt.create("web.site", props(rt, name="classified-bucket"))
    err = info.value
    assert err.kind is kind
    assert fault.injected == 1, "botocore must not retry on its own: the engine does, and counts"
    assert err.address == "web.site"
    assert code in err.message and "CreateBucket" in err.message and "web.site" in err.message
    assert provider.classify(err.cause or err, "web.site").kind is kind


@pytest.mark.parametrize(
    ("service", "op", "code", "kind"),
    [
        ("sqs", "CreateQueue", "RequestThrottled", ErrorKind.THROTTLED),
        ("sqs", "CreateQueue", "AccessDenied", ErrorKind.FATAL),
        ("dynamodb", "CreateTable", "ThrottlingException", ErrorKind.THROTTLED),
        ("dynamodb", "CreateTable", "ResourceInUseException", ErrorKind.CONFLICT),
        ("iam", "CreateRole", "Throttling", ErrorKind.THROTTLED),
        ("ec2", "CreateVpc", "RequestLimitExceeded", ErrorKind.THROTTLED),
    ],
)
def test_other_protocols_are_classified(
    provider: AwsProvider, service: str, op: str, code: str, kind: ErrorKind
) -> None:
    AwsProvider.client_hooks.append(Fault(service, op, 400, code, "injected"))
    create = {
        "sqs": ("aws.sqs_queue", {"name": "q"}),
        "dynamodb": ("aws.dynamodb_table", {"name": "tbl", "hash_key": "k", "attributes": {"k": "S"}}),
        "iam": ("aws.iam_role", {"name": "r", "assume_role_policy": {"Version": "2012-10-17", "Statement": []}}),
        "ec2": ("aws.vpc", {"cidr_block": "10.9.0.0/16"}),
    }[service]
    rt = provider.resource_type(create[0])
    with pytest.raises(ProviderError) as info:
        rt.create("x", props(rt, **create[1]))
    assert info.value.kind is kind, info.value.message
    assert code in info.value.message


def test_unreachable_endpoint_is_transient(tmp_path: Path) -> None:
    p = AwsProvider(
        AwsConfig(region="us-east-1", endpoint_url="http://127.0.0.1:9"), "aws", ProviderContext(plan_dir=tmp_path)
    )
    rt = bucket_type(p)
    with pytest.raises(ProviderError) as info:
        rt.read("a", "nowhere", props(rt, name="nowhere"))
    assert info.value.kind is ErrorKind.TRANSIENT


def test_access_denied_has_a_hint(provider: AwsProvider) -> None:
    AwsProvider.client_hooks.append(Fault("s3", "PutBucketTagging", 403, "AccessDenied", "Access Denied"))
    rt = bucket_type(provider)
    with pytest.raises(ProviderError) as info:
        rt.create("site", props(rt, name="denied-bucket"))
    assert info.value.kind is ErrorKind.FATAL
    assert info.value.hint and "PutBucketTagging" in info.value.hint


# ----------------------------------------------------------------------------- crash recovery


def test_bucket_made_by_a_crashed_create_is_found_and_adopted(provider: AwsProvider, aws: Any) -> None:
    rt = bucket_type(provider)
    p = props(rt, name="crashed-bucket", tags={"a": "b"})
    assert rt.find("site", p) is None
    aws("s3").create_bucket(Bucket="crashed-bucket")  # the cloud call happened, the journal line did not
    found = rt.find("site", p)
    assert found is not None and found.id == "crashed-bucket"
    rt.create("site", p)  # BucketAlreadyOwnedByYou (outside us-east-1) or success: adopt, then tag
    tags = aws("s3").get_bucket_tagging(Bucket="crashed-bucket")["TagSet"]
    assert {"Key": "cloudorch:address", "Value": "site"} in tags


def test_adopting_someone_elses_bucket_is_refused(tmp_path: Path, moto_url: str, aws: Any) -> None:
    west = AwsProvider(
        AwsConfig(region="eu-west-1", endpoint_url=moto_url), "aws.west", ProviderContext(plan_dir=tmp_path)
    )
    s3 = west.client("s3")
    s3.create_bucket(Bucket="claimed-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_bucket_tagging(Bucket="claimed-bucket", Tagging={"TagSet": [{"Key": "cloudorch:address", "Value": "other"}]})
    rt = bucket_type(west)
    assert rt.find("site", props(rt, name="claimed-bucket")) is None
    with pytest.raises(ProviderError, match="belongs to other"):
        rt.create("site", props(rt, name="claimed-bucket"))


def test_queue_found_by_name_after_crash(provider: AwsProvider, aws: Any) -> None:
    rt = provider.resource_type("aws.sqs_queue")
    aws("sqs").create_queue(QueueName="orphan")
    found = rt.find("jobs", props(rt, name="orphan"))
    assert found is not None and found.id.endswith("/orphan")


# ----------------------------------------------------------------------------- tags


def test_default_tags_are_applied_and_hidden_but_drift_shows(provider: AwsProvider, aws: Any) -> None:
    rt = bucket_type(provider)
    p = props(rt, name="tagged-bucket", tags={"owner": "web"})
    rt.create("site[eu]", p)
    tags = {t["Key"]: t["Value"] for t in aws("s3").get_bucket_tagging(Bucket="tagged-bucket")["TagSet"]}
    assert tags == {"owner": "web", "team": "web", "cloudorch:address": "site_eu_"}
    seen = rt.read("site[eu]", "tagged-bucket", p)
    assert seen.properties["tags"] == {"owner": "web"}
    assert rt.find("site[eu]", p) is not None

    # someone edits a tag by hand: the plan shows it
    tags["owner"] = "mallory"
    aws("s3").put_bucket_tagging(
        Bucket="tagged-bucket", Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}
    )
    assert rt.read("site[eu]", "tagged-bucket", p).properties["tags"] == {"owner": "mallory"}


# ----------------------------------------------------------------------------- batching


def test_read_many_needs_at_most_two_calls_per_resource(provider: AwsProvider) -> None:
    counter = CallCounter()
    AwsProvider.client_hooks.append(counter)
    buckets, queues = bucket_type(provider), provider.resource_type("aws.sqs_queue")
    breqs, qreqs = [], []
    for i in range(30):
        b = props(buckets, name=f"many-bucket-{i}", tags={"n": str(i)})
        breqs.append(ReadRequest(f"b[{i}]", buckets.create(f"b[{i}]", b).id, b))
        q = props(queues, name=f"many-queue-{i}", tags={"n": str(i)})
        qreqs.append(ReadRequest(f"q[{i}]", queues.create(f"q[{i}]", q).id, q))
    counter.reset()
    seen_b = buckets.read_many(breqs)
    seen_q = queues.read_many(qreqs)
    assert all(
        o is not None and o.properties["tags"] == {"n": r.id.rsplit("-", 1)[1]}
        for o, r in zip(seen_b, breqs, strict=True)
    )
    assert all(o is not None for o in seen_q)
    assert counter.total("s3") <= 2 * len(breqs)
    assert counter.total("sqs") <= 2 * len(qreqs)
    assert counter.counts["s3.ListBuckets"] == 1 and counter.counts["sqs.ListQueues"] == 1


def test_read_many_runs_in_parallel(provider: AwsProvider) -> None:
    import threading
    import time

    rt = bucket_type(provider)
    reqs = []
    for i in range(16):
        p = props(rt, name=f"slow-bucket-{i}")
        reqs.append(ReadRequest(f"b[{i}]", rt.create(f"b[{i}]", p).id, p))
    slow = AwsProvider(provider.config, "aws", provider.context)
    lock = threading.Lock()
    in_flight = [0, 0]  # now, most at once

    def overlap(client: Any) -> None:
        # counts HTTP attempts that are in flight together: parallel reads overlap, serial ones never do
        def before(**_: Any) -> None:
            with lock:
                in_flight[0] += 1
                in_flight[1] = max(in_flight)
            time.sleep(0.05)

        def after(**_: Any) -> None:
            with lock:
                in_flight[0] -= 1

        client.meta.events.register("before-send", before, unique_id="overlap-before")
        client.meta.events.register("after-call", after, unique_id="overlap-after")

    AwsProvider.client_hooks.append(overlap)
    assert all(slow.resource_type("aws.s3_bucket").read_many(reqs))
    assert in_flight[1] > 1


# ----------------------------------------------------------------------------- local files


def test_changed_source_file_plans_an_update(provider: AwsProvider, aws: Any, tmp_path: Path) -> None:
    aws("s3").create_bucket(Bucket="assets")
    (tmp_path / "app.js").write_text("v1")
    rt = provider.resource_type("aws.s3_object")
    p = props(rt, bucket="assets", key="app.js", source="app.js")
    obj = rt.create("js", p)
    assert rt.read("js", obj.id, p).properties["source"] == "app.js"
    (tmp_path / "app.js").write_text("v2")
    assert rt.read("js", obj.id, p).properties["source"] != "app.js"
    rt.update("js", obj.id, p, p)
    assert rt.read("js", obj.id, p).properties["source"] == "app.js"
    assert aws("s3").get_object(Bucket="assets", Key="app.js")["Body"].read() == b"v2"


def test_changed_lambda_code_plans_an_update(provider: AwsProvider, aws: Any, tmp_path: Path) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = aws("iam").create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text("def handler(e, c): return 1\n")
    rt = provider.resource_type("aws.lambda_function")
    p = props(rt, name="fn", role=role, source="fn", handler="app.handler")
    rt.create("fn", p)
    assert rt.read("fn", "fn", p).properties["source"] == "fn"
    (tmp_path / "fn" / "app.py").write_text("def handler(e, c): return 2\n")
    assert rt.read("fn", "fn", p).properties["source"] != "fn"
    rt.update("fn", "fn", p, p)
    assert rt.read("fn", "fn", p).properties["source"] == "fn"


# ----------------------------------------------------------------------------- sets


def test_security_group_rule_order_never_diffs(provider: AwsProvider, aws: Any) -> None:
    vpc = aws("ec2").create_vpc(CidrBlock="10.3.0.0/16")["Vpc"]["VpcId"]
    rt = provider.resource_type("aws.security_group")
    a = props(
        rt,
        name="g",
        vpc_id=vpc,
        ingress=[
            {"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["10.0.0.0/8"]},
            {"protocol": "6", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0", "10.0.0.0/8"]},
        ],
    )
    b = props(
        rt,
        name="g",
        vpc_id=vpc,
        ingress=[
            {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["10.0.0.0/8"]},
            {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"]},
            {"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["10.0.0.0/8"]},
        ],
    )
    assert a.model_dump(mode="json") == b.model_dump(mode="json")
    g = rt.create("g", a)
    seen = rt.read("g", g.id, b)
    assert seen.properties["ingress"] == b.model_dump(mode="json")["ingress"]
    assert seen.properties["egress"] is None  # unmanaged: AWS's default allow-all is left alone


# ----------------------------------------------------------------------------- config


def test_config_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError):
        AwsConfig.model_validate({"region": "us-east-1", "regoin": "x"})


def test_assume_role_is_used_for_every_client(tmp_path: Path, moto_url: str, aws: Any) -> None:
    cfg = AwsConfig.model_validate(
        {
            "region": "us-east-1",
            "endpoint_url": moto_url,
            "assume_role": {"role_arn": "arn:aws:iam::123456789012:role/deployer", "session_name": "ci"},
        }
    )
    p = AwsProvider(cfg, "aws", ProviderContext(plan_dir=tmp_path))
    ident = p.client("sts").get_caller_identity()
    assert ":assumed-role/deployer/ci" in ident["Arn"]


def test_aliases_talk_to_their_own_region(tmp_path: Path, moto_url: str) -> None:
    west = AwsProvider(AwsConfig(region="eu-west-1", endpoint_url=moto_url), "west", ProviderContext(plan_dir=tmp_path))
    rt = west.resource_type("aws.sqs_queue")
    q = rt.create("q", props(rt, name="west-queue"))
    assert q.attributes["arn"].startswith("arn:aws:sqs:eu-west-1:")
    assert west.client("sqs").meta.region_name == "eu-west-1"


def test_endpoint_from_environment(tmp_path: Path, moto_url: str) -> None:
    p = AwsProvider(
        AwsConfig(region="us-east-1"), "aws", ProviderContext(plan_dir=tmp_path, env={"AWS_ENDPOINT_URL": moto_url})
    )
    assert p.endpoint_url == moto_url
    assert os.environ.get("AWS_ACCESS_KEY_ID") == "testing"
