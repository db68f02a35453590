"""The conformance kit on the AWS service types: KMS key and alias, Secrets Manager secret, SSM
parameter, CloudWatch Logs log group and ECR repository, against moto.

Faults go through the same `WriteFaults` seam as test_aws_conformance.py; censuses and drifts use
plain boto3 clients, never the type under test. moto has no AssociateKmsKey/DisassociateKmsKey
for log groups, so changing a log group's `kms_key_id` in place is not among the updates here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import pytest
from test_aws_conformance import SEAM, Made

from cloudorch.provider.contract import Observed, ResourceType
from cloudorch.testing.conformance import ConformanceEnv, ConformanceExample, ConformanceSuite
from cloudorch_aws import AwsProvider
from cloudorch_aws.resource import ADDRESS_TAG

REGION = "us-east-1"
PROVIDER = {"region": REGION}


@functools.cache
def _client(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION)


# --------------------------------------------------------------------------- censuses


def _keys(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    kms = _client("kms")
    n = 0
    for key in kms.list_keys()["Keys"]:
        meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
        # a key has no name: the address tag and the spec asked tell the old key of a replace from the new
        if meta["KeyState"] == "PendingDeletion" or meta["KeySpec"] != props.get("key_spec", "SYMMETRIC_DEFAULT"):
            continue
        tags = kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]
        n += any(t["TagKey"] == ADDRESS_TAG and t["TagValue"] == address for t in tags)
    return n


def _aliases(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    return sum(a["AliasName"] == props["name"] for a in _client("kms").list_aliases()["Aliases"])


def _secrets(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    got = _client("secretsmanager").list_secrets(Filters=[{"Key": "name", "Values": [props["name"]]}])
    return sum(s["Name"] == props["name"] and not s.get("DeletedDate") for s in got["SecretList"])


def _parameters(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    got = _client("ssm").describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [props["name"]]}]
    )
    return len(got["Parameters"])


def _log_groups(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    got = _client("logs").describe_log_groups(logGroupNamePrefix=props["name"])["logGroups"]
    return sum(g["logGroupName"] == props["name"] for g in got)


def _repositories(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    return sum(r["repositoryName"] == props["name"] for r in _client("ecr").describe_repositories()["repositories"])


# --------------------------------------------------------------------------- out-of-band changes


def _drift_key(rt: ResourceType[Any], seen: Observed) -> None:
    _client("kms").update_key_description(KeyId=seen.id, Description="changed by hand")


def _drift_alias(rt: ResourceType[Any], seen: Observed) -> None:
    other = _client("kms").create_key(Description="elsewhere")["KeyMetadata"]["KeyId"]
    _client("kms").update_alias(AliasName=seen.id, TargetKeyId=other)


def _drift_secret(rt: ResourceType[Any], seen: Observed) -> None:
    _client("secretsmanager").put_secret_value(SecretId=seen.id, SecretString="changed by hand")


def _drift_parameter(rt: ResourceType[Any], seen: Observed) -> None:
    _client("ssm").put_parameter(Name=seen.id, Value="changed by hand", Type="SecureString", Overwrite=True)


def _drift_log_group(rt: ResourceType[Any], seen: Observed) -> None:
    _client("logs").put_retention_policy(logGroupName=seen.id, retentionInDays=1)


def _drift_repository(rt: ResourceType[Any], seen: Observed) -> None:
    _client("ecr").put_image_tag_mutability(repositoryName=seen.id, imageTagMutability="MUTABLE")


def _key(description: str) -> Mapping[str, str]:
    return _client("kms").create_key(Description=description)["KeyMetadata"]  # type: ignore[no-any-return]


#: what the examples refer to, made on first use in each test (moto is reset before every test)
def _values() -> Made:
    return Made(
        {
            "key_id": lambda: str(_key("conformance target")["KeyId"]),
            "key_id2": lambda: str(_key("conformance other target")["KeyId"]),
            "key_arn": lambda: str(_key("conformance encryption")["Arn"]),
        }
    )


SERVICE_EXAMPLES = (
    ConformanceExample(
        type="aws.kms_key",
        minimal={"deletion_window_in_days": 7},
        full={"description": "key {run}", "enable_key_rotation": False, "deletion_window_in_days": 7,
              "tags": {"owner": "web"}},
        updates={"description": "key v2 {run}", "enable_key_rotation": True, "enabled": False,
                 "tags": {"owner": "data"}},
        force_new={"key_spec": "RSA_2048"},
        drift=_drift_key,
        census=_keys,
        provider_config=PROVIDER,
    ),
    ConformanceExample(
        type="aws.kms_alias",
        minimal={"name": "alias/a-{run}", "target_key_id": "{key_id}"},
        updates={"target_key_id": "{key_id2}"},
        force_new={"name": "alias/b-{run}"},
        drift=_drift_alias,
        census=_aliases,
        provider_config=PROVIDER,
    ),
    ConformanceExample(
        type="aws.secretsmanager_secret",
        minimal={"name": "s-{run}", "secret_string": "hunter2-{run}", "recovery_window_in_days": 0},
        full={"name": "app/s-{run}", "secret_string": "hunter2-{run}", "description": "db password",
              "kms_key_id": "{key_arn}", "recovery_window_in_days": 0, "tags": {"owner": "web"}},
        updates={"secret_string": "swordfish-{run}", "description": "db password v2", "tags": {"owner": "data"}},
        force_new={"name": "app/s2-{run}"},
        drift=_drift_secret,
        census=_secrets,
        provider_config=PROVIDER,
    ),
    ConformanceExample(
        type="aws.ssm_parameter",
        minimal={"name": "/cf/{run}/plain", "insecure_value": "plain"},
        full={"name": "/cf/{run}/secure", "type": "SecureString", "value": "s3cret-{run}", "key_id": "{key_arn}",
              "description": "api token", "tags": {"owner": "web"}},
        updates={"value": "s3cret2-{run}", "description": "api token v2", "tags": {"owner": "data"}},
        force_new={"name": "/cf/{run}/secure2"},
        drift=_drift_parameter,
        census=_parameters,
        provider_config=PROVIDER,
    ),
    ConformanceExample(
        type="aws.cloudwatch_log_group",
        minimal={"name": "/cf/{run}"},
        full={"name": "/cf/{run}/app", "retention_in_days": 14, "kms_key_id": "{key_arn}", "tags": {"owner": "web"}},
        updates={"retention_in_days": 30, "tags": {"owner": "data"}},
        force_new={"name": "/cf/{run}/app2"},
        drift=_drift_log_group,
        census=_log_groups,
        provider_config=PROVIDER,
    ),
    ConformanceExample(
        type="aws.ecr_repository",
        minimal={"name": "cf-{run}"},
        full={"name": "team/cf-{run}", "image_tag_mutability": "IMMUTABLE", "scan_on_push": True,
              "tags": {"owner": "web"}},
        updates={"image_tag_mutability": "MUTABLE", "scan_on_push": False, "tags": {"owner": "data"}},
        force_new={"name": "team/cf2-{run}"},
        drift=_drift_repository,
        census=_repositories,
        provider_config=PROVIDER,
    ),
)


@pytest.fixture
def conformance_env(moto_url: str) -> ConformanceEnv:
    """The seam on every client, and the KMS keys the examples refer to."""
    AwsProvider.client_hooks.append(SEAM)  # conftest's fixture restores the list after the test
    return ConformanceEnv(seam=SEAM, values=_values())


class TestAwsServiceConformance(ConformanceSuite):
    # the last mutating call of each operation only (the one whose effect a retry most easily
    # repeats), to keep six types within the suite's time; `--conformance-max-calls 0` hits every call
    max_calls = 1
    examples = SERVICE_EXAMPLES
