"""The conformance kit (`cloudorch.testing.conformance`) on the AWS types, against moto.

Each type is driven through the engine on a generated plan file; faults go through
`cloudorch_aws.faults.WriteFaults` (botocore `before-call`/`after-call` hooks on every client of
the provider) and the crash check's subprocess reads `CLOUDORCH_AWS_KILL_AFTER_CALLS`. Censuses
count objects with plain boto3 clients, never through the type under test.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from cloudorch.provider.contract import Observed, ResourceType
from cloudorch.testing.conformance import ConformanceEnv, ConformanceExample, ConformanceSuite
from cloudorch_aws import AwsProvider
from cloudorch_aws.faults import WriteFaults
from cloudorch_aws.resource import ADDRESS_TAG

REGION = "us-east-1"
SEAM = WriteFaults()
PROVIDER = {"region": REGION}

@functools.cache
def _client(service: str) -> Any:
    """A plain boto3 client (made once: the moto server's URL is the same for the whole session)."""
    import boto3

    return boto3.client(service, region_name=REGION)


def _tagged(tags: list[dict[str, str]] | None, address: str) -> bool:
    return any(t["Key"] == ADDRESS_TAG and t["Value"].endswith(address) for t in tags or [])


def _queues(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    urls = _client("sqs").list_queues(QueueNamePrefix=props["name"]).get("QueueUrls", [])
    return sum(u.rstrip("/").rsplit("/", 1)[-1] == props["name"] for u in urls)


def _buckets(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    return sum(b["Name"] == props["name"] for b in _client("s3").list_buckets()["Buckets"])


def _topics(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    arns = [t["TopicArn"] for t in _client("sns").list_topics()["Topics"]]
    return sum(a.rsplit(":", 1)[-1] == props["name"] for a in arns)


def _vpcs(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    vpcs = _client("ec2").describe_vpcs(Filters=[{"Name": "cidr", "Values": [props["cidr_block"]]}])["Vpcs"]
    return sum(_tagged(v.get("Tags"), address) for v in vpcs)


def _subnets(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    got = _client("ec2").describe_subnets(Filters=[{"Name": "vpc-id", "Values": [props["vpc_id"]]}])["Subnets"]
    return sum(s["CidrBlock"] == props["cidr_block"] for s in got)


def _groups(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    got = _client("ec2").describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [props["vpc_id"]]}, {"Name": "group-name", "Values": [props["name"]]}]
    )["SecurityGroups"]
    return len(got)


def _alarms(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    return len(_client("cloudwatch").describe_alarms(AlarmNames=[props["name"]])["MetricAlarms"])


def _zones(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    name = props["name"].rstrip(".") + "."
    return sum(z["Name"] == name for z in _client("route53").list_hosted_zones()["HostedZones"])


def _tables(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    return sum(n == props["name"] for n in _client("dynamodb").list_tables()["TableNames"])


def _policies(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    return sum(p["PolicyName"] == props["name"] for p in _client("iam").list_policies(Scope="Local")["Policies"])


def _drift_queue(rt: ResourceType[Any], seen: Observed) -> None:
    _client("sqs").set_queue_attributes(QueueUrl=seen.id, Attributes={"VisibilityTimeout": "99"})


def _drift_vpc(rt: ResourceType[Any], seen: Observed) -> None:
    _client("ec2").modify_vpc_attribute(VpcId=seen.id, EnableDnsHostnames={"Value": False})


def _drift_topic(rt: ResourceType[Any], seen: Observed) -> None:
    _client("sns").set_topic_attributes(TopicArn=seen.id, AttributeName="DisplayName", AttributeValue="changed")


def _tags_only(drop: str) -> Callable[[str, Any], Any]:
    """Compare tags as the user's own (the provider adds its defaults and the address tag)."""

    def norm(prop: str, value: Any) -> Any:
        if prop == "tags" and isinstance(value, dict):
            return {k: v for k, v in value.items() if k != drop}
        return value

    return norm


POLICY_DOC = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
}


#: the EC2 types, run by test_aws_ec2_conformance.py (a file of their own, so a parallel run
#: can give them a worker of their own: moto's EC2 is the slowest part)
EC2_EXAMPLES = (
    ConformanceExample(
        type="aws.vpc",
        minimal={"cidr_block": "10.42.0.0/16"},
        full={"cidr_block": "10.42.0.0/16", "enable_dns_hostnames": True, "tags": {"Name": "v-{run}"}},
        updates={"enable_dns_hostnames": False, "tags": {"Name": "v2-{run}"}},
        force_new={"cidr_block": "10.43.0.0/16"},
        drift=_drift_vpc,
        census=_vpcs,
        provider_config=PROVIDER,
    ),
    ConformanceExample(
        type="aws.subnet",
        minimal={"vpc_id": "{vpc_id}", "cidr_block": "10.7.1.0/24"},
        full={"vpc_id": "{vpc_id}", "cidr_block": "10.7.1.0/24", "map_public_ip_on_launch": True,
              "tags": {"Name": "s-{run}"}},
        updates={"map_public_ip_on_launch": False, "tags": {"Name": "s2-{run}"}},
        force_new={"cidr_block": "10.7.2.0/24"},
        census=_subnets,
        provider_config=PROVIDER,
    ),
    ConformanceExample(
        type="aws.security_group",
        minimal={"name": "g-{run}", "vpc_id": "{vpc_id}"},
        full={
            "name": "g-{run}", "vpc_id": "{vpc_id}", "description": "web",
            "ingress": [{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["10.0.0.0/8"]}],
            "tags": {"owner": "web"},
        },
        updates={
            "ingress": [{"protocol": "tcp", "from_port": 80, "to_port": 80, "cidr_blocks": ["10.0.0.0/8"]}],
            "tags": {"owner": "data"},
        },
        force_new={"name": "g2-{run}"},
        census=_groups,
        provider_config=PROVIDER,
    ),
)


class TestAwsConformance(ConformanceSuite):
    # a seeded sample of two mutating calls per operation (always with the last) keeps CI short;
    # every run draws another, and `--conformance-max-calls 0` hits every call
    max_calls = 2
    examples = (
        ConformanceExample(
            type="aws.sqs_queue",
            minimal={"name": "q-{run}"},
            full={
                "name": "q-{run}",
                "visibility_timeout": 40,
                "delay_seconds": 2,
                "redrive_policy": {"dead_letter_target_arn": "{dlq_arn}", "max_receive_count": 3},
                "tags": {"owner": "web"},
            },
            updates={"visibility_timeout": 50, "delay_seconds": 5, "tags": {"owner": "data"}},
            force_new={"name": "q2-{run}"},
            drift=_drift_queue,
            census=_queues,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="aws.s3_bucket",
            minimal={"name": "b-{run}"},
            full={"name": "b-{run}", "versioning": True, "tags": {"owner": "web"}},
            updates={"versioning": False, "tags": {"owner": "data"}},
            force_new={"name": "b2-{run}"},
            census=_buckets,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="aws.sns_topic",
            minimal={"name": "t-{run}"},
            full={"name": "t-{run}", "display_name": "Orders", "tags": {"owner": "web"}},
            updates={"display_name": "Orders v2", "tags": {"owner": "data"}},
            force_new={"name": "t2-{run}"},
            drift=_drift_topic,
            census=_topics,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="aws.cloudwatch_alarm",
            minimal={"name": "a-{run}", "namespace": "AWS/SQS", "metric_name": "NumberOfMessagesSent",
                     "threshold": 10},
            full={"name": "a-{run}", "namespace": "AWS/SQS", "metric_name": "NumberOfMessagesSent",
                  "threshold": 10, "period": 120, "description": "too many", "tags": {"owner": "web"}},
            updates={"threshold": 20, "period": 300, "description": "far too many", "tags": {"owner": "data"}},
            force_new={"name": "a2-{run}"},
            census=_alarms,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="aws.route53_zone",
            minimal={"name": "z-{run}.example.com"},
            full={"name": "z-{run}.example.com", "comment": "conformance", "tags": {"owner": "web"}},
            updates={"comment": "conformance v2", "tags": {"owner": "data"}},
            force_new={"name": "z2-{run}.example.com"},
            census=_zones,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="aws.dynamodb_table",
            minimal={"name": "d-{run}", "hash_key": "id", "attributes": {"id": "S"}},
            full={"name": "d-{run}", "hash_key": "id", "attributes": {"id": "S"}, "tags": {"owner": "web"}},
            updates={"tags": {"owner": "data"}},
            force_new={"name": "d2-{run}"},
            census=_tables,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="aws.iam_policy",
            minimal={"name": "p-{run}", "document": POLICY_DOC},
            full={"name": "p-{run}", "document": POLICY_DOC, "tags": {"owner": "web"}},
            updates={"document": {**POLICY_DOC, "Statement": [{**POLICY_DOC["Statement"][0], "Action": "s3:*"}]},
                     "tags": {"owner": "data"}},
            force_new={"name": "p2-{run}"},
            census=_policies,
            provider_config=PROVIDER,
        ),
    )


def _dlq_arn() -> str:
    url = _client("sqs").create_queue(QueueName="conformance-dlq")["QueueUrl"]
    got = _client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(got["Attributes"]["QueueArn"])


def _vpc_id() -> str:
    return str(_client("ec2").create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"])


class Made(Mapping[str, str]):
    """What the examples refer to (`{NAME}`), each made on first use only (a VPC costs moto seconds)."""

    def __init__(self, makers: Mapping[str, Callable[[], str]]) -> None:
        self._makers = makers
        self._made: dict[str, str] = {}

    def __getitem__(self, key: str) -> str:
        if key not in self._made:
            self._made[key] = self._makers[key]()
        return self._made[key]

    def __contains__(self, key: object) -> bool:
        return key in self._makers

    def __iter__(self) -> Iterator[str]:
        return iter(self._makers)

    def __len__(self) -> int:
        return len(self._makers)


@pytest.fixture
def conformance_env(moto_url: str) -> ConformanceEnv:
    """The seam on every client, and what the examples refer to: a dead-letter queue and a VPC."""
    AwsProvider.client_hooks.append(SEAM)  # conftest's `_reset` restores the list after the test
    return ConformanceEnv(seam=SEAM, values=Made({"dlq_arn": _dlq_arn, "vpc_id": _vpc_id}))
