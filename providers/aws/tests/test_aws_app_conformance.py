"""The conformance kit on the AWS types that live on another object: an S3 object (in a bucket),
an SNS subscription (of a queue to a topic), a Route 53 record (in a zone), a Lambda function (with
its role and a source folder), and the IAM role. Against moto; the seam and the plain clients are
those of test_aws_conformance.py, and what the examples refer to is made by plain boto3 clients.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from test_aws_conformance import PROVIDER, SEAM, Made, _client

from cloudorch.provider.contract import Observed, ResourceType
from cloudorch.testing.conformance import ConformanceEnv, ConformanceExample, ConformanceSuite
from cloudorch_aws import AwsProvider

TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
}
READ_ALL = {**READ_ONLY, "Statement": [{**READ_ONLY["Statement"][0], "Action": "s3:*"}]}


# -- what the examples refer to


def _bucket() -> str:
    _client("s3").create_bucket(Bucket="conformance-objects")
    return "conformance-objects"


def _queue_arn(name: str) -> str:
    url = _client("sqs").create_queue(QueueName=name)["QueueUrl"]
    got = _client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(got["Attributes"]["QueueArn"])


def _topic_arn() -> str:
    return str(_client("sns").create_topic(Name="conformance-topic")["TopicArn"])


def _zone_id() -> str:
    got = _client("route53").create_hosted_zone(Name="conformance.example.com", CallerReference="conformance")
    return str(got["HostedZone"]["Id"]).rsplit("/", 1)[-1]


def _role_arn() -> str:
    got = _client("iam").create_role(RoleName="conformance-lambda", AssumeRolePolicyDocument=json.dumps(TRUST))
    return str(got["Role"]["Arn"])


def _policy_arn() -> str:
    got = _client("iam").create_policy(PolicyName="conformance-read", PolicyDocument=json.dumps(READ_ONLY))
    return str(got["Policy"]["Arn"])


# -- censuses: plain boto3 listings, never the type under test


def _objects(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    got = _client("s3").list_objects_v2(Bucket=props["bucket"], Prefix=props["key"]).get("Contents", [])
    return sum(o["Key"] == props["key"] for o in got)


def _subscriptions(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    subs = _client("sns").list_subscriptions_by_topic(TopicArn=props["topic_arn"])["Subscriptions"]
    return sum(s["Protocol"] == props["protocol"] and s["Endpoint"] == props["endpoint"] for s in subs)


def _records(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    got = _client("route53").list_resource_record_sets(HostedZoneId=props["zone_id"])["ResourceRecordSets"]
    name = props["name"].rstrip(".").lower() + "."
    return sum(r["Name"] == name and r["Type"] == props["type"] for r in got)


def _functions(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    return sum(f["FunctionName"] == props["name"] for f in _client("lambda").list_functions()["Functions"])


def _roles(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    return sum(r["RoleName"] == props["name"] for r in _client("iam").list_roles()["Roles"])


# -- out-of-band changes through the SDK


def _drift_object(rt: ResourceType[Any], seen: Observed) -> None:
    bucket, _, key = seen.id.partition("/")
    _client("s3").put_object(Bucket=bucket, Key=key, Body=b"changed out of band")


def _drift_subscription(rt: ResourceType[Any], seen: Observed) -> None:
    _client("sns").set_subscription_attributes(
        SubscriptionArn=seen.id, AttributeName="RawMessageDelivery", AttributeValue="false"
    )


def _drift_record(rt: ResourceType[Any], seen: Observed) -> None:
    zone_id, name, rtype = seen.properties["zone_id"], seen.properties["name"], seen.properties["type"]
    _client("route53").change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
            "Name": name + ".", "Type": rtype, "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.99"}],
        }}]},
    )  # fmt: skip


def _drift_function(rt: ResourceType[Any], seen: Observed) -> None:
    _client("lambda").update_function_configuration(FunctionName=seen.id, Timeout=99)


def _drift_role(rt: ResourceType[Any], seen: Observed) -> None:
    _client("iam").update_role(RoleName=seen.id, Description="changed out of band")


class TestAwsAppConformance(ConformanceSuite):
    max_calls = 2
    examples = (
        ConformanceExample(
            type="aws.s3_object",
            minimal={"bucket": "{bucket}", "key": "k-{run}.txt", "content": "hello"},
            full={"bucket": "{bucket}", "key": "k-{run}.txt", "content": "hello", "content_type": "text/plain",
                  "metadata": {"owner": "web"}, "tags": {"owner": "web"}},
            updates={"content": "hello again", "metadata": {"owner": "data"}, "tags": {"owner": "data"}},
            force_new={"key": "k2-{run}.txt"},
            drift=_drift_object,
            census=_objects,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="aws.iam_role",
            minimal={"name": "r-{run}", "assume_role_policy": TRUST},
            full={"name": "r-{run}", "assume_role_policy": TRUST, "description": "conformance",
                  "max_session_duration": 7200, "inline_policies": {"read": READ_ONLY},
                  "managed_policy_arns": ["{policy_arn}"], "tags": {"owner": "web"}},
            updates={
                "description": "conformance v2",
                "max_session_duration": 3600,
                "inline_policies": {"read": READ_ALL},
                "managed_policy_arns": [],
                "tags": {"owner": "data"},
            },
            force_new={"name": "r2-{run}"},
            drift=_drift_role,
            census=_roles,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="aws.sns_subscription",
            minimal={"topic_arn": "{topic_arn}", "protocol": "sqs", "endpoint": "{queue_arn}"},
            full={"topic_arn": "{topic_arn}", "protocol": "sqs", "endpoint": "{queue_arn}",
                  "raw_message_delivery": True, "filter_policy": {"kind": ["order"]}},
            updates={"raw_message_delivery": False, "filter_policy": {"kind": ["refund"]}},
            force_new={"endpoint": "{queue2_arn}"},
            drift=_drift_subscription,
            census=_subscriptions,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="aws.route53_record",
            minimal={"zone_id": "{zone_id}", "name": "w-{run}.conformance.example.com", "type": "A",
                     "records": ["192.0.2.1"]},
            full={"zone_id": "{zone_id}", "name": "w-{run}.conformance.example.com", "type": "A", "ttl": 120,
                  "records": ["192.0.2.1", "192.0.2.2"]},
            updates={"ttl": 600, "records": ["192.0.2.3"]},
            force_new={"name": "w2-{run}.conformance.example.com"},
            drift=_drift_record,
            census=_records,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="aws.lambda_function",
            minimal={"name": "f-{run}", "role": "{role_arn}", "source": "{lambda_src}", "handler": "app.handler"},
            full={"name": "f-{run}", "role": "{role_arn}", "source": "{lambda_src}", "handler": "app.handler",
                  "memory_size": 256, "timeout": 10, "description": "conformance",
                  "environment": {"API_TOKEN": "s3cr3t-{run}"}, "tags": {"owner": "web"}},
            updates={"handler": "app.other", "memory_size": 512, "timeout": 20, "description": "conformance v2",
                     "environment": {"API_TOKEN": "s3cr3t-v2-{run}"}, "tags": {"owner": "data"}},
            force_new={"name": "f2-{run}"},
            drift=_drift_function,
            census=_functions,
            import_ignore=("source",),  # a deployed package does not say which local folder it came from
            provider_config=PROVIDER,
        ),
    )


@pytest.fixture
def conformance_env(moto_url: str, tmp_path: Path) -> ConformanceEnv:
    """The seam on every client, and what the examples refer to, made on first use."""
    AwsProvider.client_hooks.append(SEAM)  # conftest's `moto_url` restores the list after the test

    def lambda_src() -> str:
        src = tmp_path / "lambda-src"
        src.mkdir(exist_ok=True)
        (src / "app.py").write_text("def handler(event, context):\n    return 'ok'\n\nother = handler\n")
        return str(src)

    return ConformanceEnv(
        seam=SEAM,
        values=Made({
            "bucket": _bucket,
            "topic_arn": _topic_arn,
            "queue_arn": lambda: _queue_arn("conformance-sub"),
            "queue2_arn": lambda: _queue_arn("conformance-sub2"),
            "zone_id": _zone_id,
            "role_arn": _role_arn,
            "policy_arn": _policy_arn,
            "lambda_src": lambda_src,
        }),
    )  # fmt: skip
