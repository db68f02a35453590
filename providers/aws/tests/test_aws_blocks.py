"""`data:`, `moved:`, `imports:` and `--generate-config-out` through the CLI, on moto.

Objects "made outside cloudorch" are made with plain boto3 clients; the CLI runs in this process
and its provider's real boto3 clients talk HTTP to the session's moto server. Cloud calls are
counted with the provider's `CallCounter` client hook.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudorch_aws import AwsProvider
from cloudorch_aws.faults import CallCounter

HEAD = "version: 1\nname: blocks\nproviders:\n  aws: {region: us-east-1}\n"


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, Any, str]:
    from cloudorch.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    try:
        doc = json.loads(captured.out)
    except json.JSONDecodeError:
        doc = None
    return code, doc, captured.out + captured.err


def _vpc(aws: Any, cidr: str, name: str) -> str:
    ec2 = aws("ec2")
    vpc_id = str(ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"])
    ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "Name", "Value": name}])
    return vpc_id


def _ids(capsys: pytest.CaptureFixture[str], plan: Path) -> dict[str, str]:
    code, doc, text = cli(capsys, "state", "list", plan, "--json")
    assert code == 0, text
    return {r["address"]: r["id"] for r in doc["resources"]}


def _write(tmp_path: Path, body: str) -> Path:
    plan = tmp_path / "plan.yaml"
    plan.write_text(HEAD + body)
    return plan


@pytest.fixture
def calls() -> CallCounter:
    counter = CallCounter()
    AwsProvider.client_hooks.append(counter)  # the conftest's moto_url fixture restores the hooks
    return counter


_WRITES = ("Create", "Put", "Delete", "Modify", "Update", "Attach", "Detach", "Tag", "Untag", "Authorize", "Revoke")


def _writes(counter: CallCounter) -> list[str]:
    return sorted(k for k in counter.counts if k.split(".", 1)[1].startswith(_WRITES))


# --------------------------------------------------------------------------- data sources


def test_data_source_reads_a_vpc_made_outside_and_a_subnet_is_planned_into_it(
    tmp_path: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = _vpc(aws, "10.40.0.0/16", "shared")
    _vpc(aws, "10.41.0.0/16", "other")
    plan = _write(
        tmp_path,
        """
data:
  net: {type: aws.vpc, filter: {tags: {Name: shared}}}
  by_id: {type: aws.vpc, id: "@VPC@"}
resources:
  app:
    type: aws.subnet
    properties:
      vpc_id: "${data.net.id}"
      cidr_block: "${data.by_id.cidr_block}"
      # a CEL expression reading data sources, as much as a plain reference
      tags: {Name: "in-${data.net.tags.Name}", kind: "${data.net.cidr_block == '10.40.0.0/16' ? 'shared' : 'x'}"}
  label:  # reads a data source only inside an expression
    type: core.null
    properties: {values: {size: "${size(data.net.cidr_block) > 3 ? 'named ' + data.net.tags.Name : 'none'}"}}
outputs:
  vpc: "${data.net.id}"
""".replace("@VPC@", shared),
    )
    code, doc, text = cli(capsys, "plan", plan, "--json")
    assert code == 0, text
    assert doc["data"]["net"]["id"] == shared and doc["data"]["by_id"]["cidr_block"] == "10.40.0.0/16"
    change, label = sorted(doc["changes"], key=lambda c: c["address"] != "app")
    assert label["after"]["values"] == {"size": "named shared"}
    assert change["action"] == "create"
    assert change["after"]["vpc_id"] == shared and change["after"]["cidr_block"] == "10.40.0.0/16"
    assert change["after"]["tags"] == {"Name": "in-shared", "kind": "shared"}
    code, _, text = cli(capsys, "apply", plan, "--auto-approve")
    assert code == 0, text
    subnets = aws("ec2").describe_subnets(Filters=[{"Name": "vpc-id", "Values": [shared]}])["Subnets"]
    assert [s["CidrBlock"] for s in subnets] == ["10.40.0.0/16"]
    code, doc, text = cli(capsys, "output", plan, "--json")
    assert code == 0 and doc["vpc"] == shared, text
    code, doc, text = cli(capsys, "plan", plan, "--json")
    assert code == 0 and doc["summary"]["has_changes"] is False, text
    code, doc, text = cli(capsys, "drift", plan, "--json")  # drift reads data sources too
    assert code == 0 and doc["resources"] == [], text


def test_optional_data_is_null_and_a_required_one_is_a_located_error(
    tmp_path: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _write(
        tmp_path,
        """
data:
  maybe: {type: aws.vpc, filter: {tags: {Name: nowhere}}, optional: true}
resources:
  note:
    type: core.null
    properties: {triggers: {vpc: "${data.maybe.id}"}}
""",
    )
    code, doc, text = cli(capsys, "plan", plan, "--json")
    assert code == 0, text
    assert doc["data"] == {"maybe": None}
    assert doc["changes"][0]["after"]["triggers"] == {"vpc": None}

    plan.write_text(plan.read_text().replace(", optional: true", ""))
    code, _, text = cli(capsys, "plan", plan)
    assert code == 1
    assert "data source `maybe`: no aws.vpc matches filter" in text
    assert "plan.yaml:7:3 (data.maybe)" in text  # the data entry's line
    assert "Traceback" not in text


def test_several_matches_is_an_error_naming_them(tmp_path: Path, aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _vpc(aws, "10.50.0.0/16", "twin"), _vpc(aws, "10.51.0.0/16", "twin")
    plan = _write(tmp_path, "data:\n  net: {type: aws.vpc, filter: {tags: {Name: twin}}}\n")
    code, _, text = cli(capsys, "plan", plan)
    assert code == 1
    assert "2 objects of type aws.vpc match" in text and a in text and b in text
    assert "narrow the filter" in text


def test_data_lookup_of_other_aws_types(tmp_path: Path, aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    vpc_id = _vpc(aws, "10.60.0.0/16", "lookups")
    ec2 = aws("ec2")
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.60.1.0/24")["Subnet"]["SubnetId"]
    ec2.create_tags(Resources=[subnet], Tags=[{"Key": "tier", "Value": "web"}])
    group = ec2.create_security_group(GroupName="web-sg", Description="web", VpcId=vpc_id)["GroupId"]
    zone = aws("route53").create_hosted_zone(Name="lookup.example.com", CallerReference="x")["HostedZone"]["Id"]
    aws("iam").create_role(RoleName="reader", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"}))
    aws("s3").create_bucket(Bucket="looked-up-bucket")
    aws("s3").put_bucket_tagging(Bucket="looked-up-bucket", Tagging={"TagSet": [{"Key": "team", "Value": "data"}]})
    plan = _write(
        tmp_path,
        """
data:
  subnet: {type: aws.subnet, filter: {vpc_id: "@VPC@", tags: {tier: web}}}
  sg: {type: aws.security_group, filter: {name: web-sg, vpc_id: "@VPC@"}}
  zone: {type: aws.route53_zone, filter: {name: "lookup.example.com."}}
  role: {type: aws.iam_role, id: reader}
  bucket: {type: aws.s3_bucket, filter: {tags: {team: data}}}
  nobucket: {type: aws.s3_bucket, id: no-such-bucket-here, optional: true}
""".replace("@VPC@", vpc_id),
    )
    code, doc, text = cli(capsys, "plan", plan, "--json")
    assert code == 0, text
    data = doc["data"]
    assert data["subnet"]["id"] == subnet and data["subnet"]["cidr_block"] == "10.60.1.0/24"
    assert data["sg"]["id"] == group
    assert zone.endswith(data["zone"]["zone_id"]) and data["zone"]["name"] == "lookup.example.com"
    assert data["role"]["name"] == "reader" and data["role"]["arn"].endswith(":role/reader")
    assert data["bucket"]["name"] == "looked-up-bucket"
    assert data["nobucket"] is None


def test_a_type_without_lookup_is_a_located_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _write(tmp_path, "data:\n  q: {type: aws.sqs_queue, id: some-queue}\n")
    code, _, text = cli(capsys, "plan", plan)
    assert code == 1 and "aws.sqs_queue does not support lookup" in text and "plan.yaml:6" in text, text


# --------------------------------------------------------------------------- moved


def test_moved_across_for_each_keys_applies_with_no_write_calls(
    tmp_path: Path, aws: Any, calls: CallCounter, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _write(
        tmp_path,
        """
resources:
  logs:
    type: aws.s3_bucket
    for_each: {eu: blocks-logs-eu, us: blocks-logs-us}
    properties: {name: "${each.value}", tags: {owner: ops}}
""",
    )
    code, _, text = cli(capsys, "apply", plan, "--auto-approve")
    assert code == 0, text
    assert _ids(capsys, plan) == {"logs[eu]": "blocks-logs-eu", "logs[us]": "blocks-logs-us"}

    # the keys are renamed (eu -> europe) and the whole resource too (logs -> archive)
    plan.write_text(
        HEAD
        + """
moved:
  - {from: "logs[eu]", to: "logs[europe]"}
  - {from: logs, to: archive}
resources:
  archive:
    type: aws.s3_bucket
    for_each: {europe: blocks-logs-eu, us: blocks-logs-us}
    properties: {name: "${each.value}", tags: {owner: ops}}
"""
    )
    code, doc, text = cli(capsys, "plan", plan, "--json", "-o", tmp_path / "saved.json")
    assert code == 0, text
    assert doc["moves"] == [
        {"from": "logs[eu]", "to": "archive[europe]"},
        {"from": "logs[us]", "to": "archive[us]"},
    ]
    assert {c["address"]: (c["action"], c["moved_from"]) for c in doc["changes"]} == {
        "archive[europe]": ("no-op", "logs[eu]"),
        "archive[us]": ("no-op", "logs[us]"),
    }
    assert doc["summary"]["has_changes"] is True
    code, _, text = cli(capsys, "plan", plan)
    assert "archive[europe] (aws.s3_bucket) move from logs[eu]" in text, text
    assert "2 to move" in text

    calls.reset()
    code, _, text = cli(capsys, "apply", tmp_path / "saved.json", "--auto-approve")
    assert code == 0, text
    assert calls.total() == 0  # a saved plan's moves need no cloud call at all
    assert _ids(capsys, plan) == {"archive[europe]": "blocks-logs-eu", "archive[us]": "blocks-logs-us"}
    # moved again: its source is gone, so it is a no-op with a note
    code, doc, text = cli(capsys, "plan", plan, "--json")
    assert code == 0 and doc["summary"]["has_changes"] is False, text
    assert doc["moves"] == [] and any("nothing at logs[eu] in state" in n for n in doc["notes"])


def test_moving_onto_an_address_that_exists_is_an_error(
    tmp_path: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _write(
        tmp_path,
        """
resources:
  a: {type: aws.s3_bucket, properties: {name: blocks-move-a}}
  b: {type: aws.s3_bucket, properties: {name: blocks-move-b}}
""",
    )
    assert cli(capsys, "apply", plan, "--auto-approve")[0] == 0
    plan.write_text(
        HEAD
        + "moved:\n  - {from: a, to: b}\n"
        + "resources:\n  b: {type: aws.s3_bucket, properties: {name: blocks-move-b}}\n"
    )
    code, _, text = cli(capsys, "plan", plan)
    assert code == 1
    assert "cannot move a to b: b already exists in state" in text and "plan.yaml:6" in text, text

    c_block = "  c: {type: aws.s3_bucket, properties: {name: blocks-move-a}}\n"
    plan.write_text(plan.read_text().replace("to: b}", "to: c}") + c_block)
    calls = CallCounter()
    AwsProvider.client_hooks.append(calls)
    code, _, text = cli(capsys, "apply", plan, "--auto-approve")
    assert code == 0, text
    assert calls.counts["s3.GetBucketTagging"] >= 2 and _writes(calls) == []  # read, never written
    assert _ids(capsys, plan) == {"b": "blocks-move-b", "c": "blocks-move-a"}


# --------------------------------------------------------------------------- imports


def test_bulk_import_of_20_buckets_with_generated_config(
    tmp_path: Path, aws: Any, calls: CallCounter, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = aws("s3")
    names = [f"adopt-me-{i:02d}" for i in range(20)]
    for i, name in enumerate(names):
        s3.create_bucket(Bucket=name)
        tags = [{"Key": "n", "Value": str(i)}, {"Key": "team", "Value": "x"}]
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tags})
        if i % 2:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    keys = {name.removeprefix("adopt-me-"): name for name in names}
    imports = (
        f"variables:\n  buckets: {{type: map, default: {json.dumps(keys)}}}\n"
        "imports:\n"
        '  - {for_each: "${var.buckets}", to: "legacy[${each.key}]", id: "${each.value}", type: aws.s3_bucket}\n'
    )
    plan = _write(tmp_path, imports)
    code, _, text = cli(capsys, "plan", plan)
    assert code == 1 and "cannot import to legacy[" in text and "--generate-config-out" in text, text

    generated = tmp_path / "generated.yaml"
    code, doc, text = cli(capsys, "plan", plan, "--generate-config-out", generated, "--json")
    assert code == 0, text
    blocks = yaml.safe_load(generated.read_text())["resources"]
    legacy = blocks["legacy"]
    assert legacy["type"] == "aws.s3_bucket" and sorted(legacy["for_each"]) == sorted(keys)
    assert legacy["for_each"]["03"]["tags"] == {"n": "3", "team": "x"}
    assert legacy["properties"]["name"] == "${each.value.name}"
    code, _, text = cli(capsys, "plan", plan, "--generate-config-out", generated)
    assert code == 1 and "never overwrites" in text

    plan.write_text(HEAD + imports + generated.read_text().split("\n", 2)[2])
    calls.reset()
    code, doc, text = cli(capsys, "plan", plan, "--json", "-o", tmp_path / "saved.json")
    assert code == 0, text
    assert {c["action"] for c in doc["changes"]} == {"no-op"}, [c for c in doc["changes"] if c["action"] != "no-op"]
    assert len(doc["imports"]) == 20 and {c["importing"] for c in doc["changes"]} == set(names)
    assert calls.counts["s3.GetBucketTagging"] >= 20  # the plan read every bucket ...
    assert _writes(calls) == []  # ... and wrote nothing
    code, _, text = cli(capsys, "apply", tmp_path / "saved.json", "--auto-approve")
    assert code == 0, text
    assert _writes(calls) == []
    assert sorted(_ids(capsys, plan).values()) == names
    code, doc, text = cli(capsys, "plan", plan, "--json")
    assert code == 0 and doc["summary"]["has_changes"] is False and doc["imports"] == [], text


def test_import_onto_an_address_in_state_with_another_id_is_an_error(
    tmp_path: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    aws("s3").create_bucket(Bucket="blocks-other")
    body = "resources:\n  site: {type: aws.s3_bucket, properties: {name: blocks-site}}\n"
    plan = _write(tmp_path, body)
    assert cli(capsys, "apply", plan, "--auto-approve")[0] == 0
    plan.write_text(HEAD + "imports:\n  - {to: site, id: blocks-other}\n" + body)
    code, _, text = cli(capsys, "plan", plan)
    assert code == 1 and "cannot import blocks-other to site: state already has blocks-site there" in text, text
    plan.write_text(HEAD + "imports:\n  - {to: site, id: blocks-site}\n" + body)
    code, doc, text = cli(capsys, "plan", plan, "--json")
    assert code == 0 and doc["summary"]["has_changes"] is False, text  # imported already: nothing to do
