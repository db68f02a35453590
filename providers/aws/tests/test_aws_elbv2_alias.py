"""What the conformance kit does not cover for the load balancer types and the Route 53 alias,
against moto through the real CLI: a record aliasing a load balancer by reference, the checks
across `alias` and `records`/`ttl` (at plan when known, at apply when not), that a record with
values still sends and stores exactly what it did before aliases, and that a failure after a load
balancer exists never makes a second one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures"


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, Any]:
    from cloudorch.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    out = captured.out
    return code, json.loads(out) if out.lstrip().startswith("{") else out + captured.err


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    path = tmp_path / "lb_alias.yaml"
    shutil.copy(FIXTURES / "lb_alias.yaml", path)
    return path


def _state(plan: Path, name: str) -> dict[str, Any]:
    return json.loads((plan.parent / ".cloudorch" / "state" / f"{name}.json").read_text())["state"]  # type: ignore[no-any-return]


def _record_sets(aws: Any, zone_id: str) -> list[dict[str, Any]]:
    got = aws("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return [r for r in got if r["Type"] not in ("SOA", "NS")]


def test_an_alias_record_points_at_the_load_balancer_and_reads_back_without_drift(
    plan: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _cli(capsys, "apply", plan, "--auto-approve")
    assert code == 0, out
    resources = _state(plan, "lbalias")["resources"]
    lb = aws("elbv2").describe_load_balancers(Names=["web"])["LoadBalancers"][0]
    assert resources["lb"]["attributes"]["dns_name"] == lb["DNSName"]
    assert resources["lb"]["attributes"]["zone_id"] == lb["CanonicalHostedZoneId"]
    zone_id = resources["zone"]["attributes"]["zone_id"]
    [record] = _record_sets(aws, zone_id)
    assert record["Name"] == "www.alias.example.com."
    assert record["AliasTarget"]["HostedZoneId"] == lb["CanonicalHostedZoneId"]
    assert record["AliasTarget"]["DNSName"].rstrip(".").lower() == lb["DNSName"].lower()
    assert "TTL" not in record and "ResourceRecords" not in record
    # read back from the cloud (plan refreshes), nothing to do
    code, doc = _cli(capsys, "plan", plan, "--json")
    assert code == 0, doc
    assert [c["address"] for c in doc["changes"] if c["action"] != "no-op"] == []
    # the record follows the load balancer in place when the alias changes out of band
    aws("route53").change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
            "Name": "www.alias.example.com.", "Type": "A",
            "AliasTarget": {"HostedZoneId": "ZOTHER", "DNSName": "elsewhere.example.net.",
                            "EvaluateTargetHealth": False}}}]},
    )
    code, doc = _cli(capsys, "plan", plan, "--json")
    assert [(c["address"], c["action"]) for c in doc["changes"] if c["action"] != "no-op"] == [("www", "update")]
    assert _cli(capsys, "apply", plan, "--auto-approve")[0] == 0
    [record] = _record_sets(aws, zone_id)
    assert record["AliasTarget"]["HostedZoneId"] == lb["CanonicalHostedZoneId"]
    # an in-place change of the balancer keeps its DNS name and zone: the alias is not touched
    plan.write_text(plan.read_text().replace("idle_timeout: 90", "idle_timeout: 120"))
    code, doc = _cli(capsys, "plan", plan, "--json")
    assert [(c["address"], c["action"]) for c in doc["changes"] if c["action"] != "no-op"] == [("lb", "update")]
    assert _cli(capsys, "destroy", plan, "--auto-approve")[0] == 0
    assert aws("route53").list_hosted_zones()["HostedZones"] == []  # the zone went, so its record did
    assert aws("elbv2").describe_load_balancers()["LoadBalancers"] == []


def _line_of(plan: Path, text: str) -> int:
    return next(i for i, line in enumerate(plan.read_text().splitlines(), 1) if text in line)


def test_alias_with_records_is_a_located_error_at_plan_when_both_are_known(
    plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = plan.read_text().replace(
        'alias: {name: "${resources.lb.dns_name}", zone_id: "${resources.lb.zone_id}"}',
        'alias: {name: "lb.example.net", zone_id: "Z123"}\n      records: ["192.0.2.1"]',
    )
    plan.write_text(text)
    code, out = _cli(capsys, "plan", plan)
    assert code != 0
    assert "alias" in out and "records" in out, out
    assert f"lb_alias.yaml:{_line_of(plan, 'alias: {name')}" in out, out


def test_ttl_with_an_alias_is_refused_and_a_record_needs_records_or_alias(
    plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known = plan.read_text().replace(
        'alias: {name: "${resources.lb.dns_name}", zone_id: "${resources.lb.zone_id}"}',
        'alias: {name: "lb.example.net", zone_id: "Z123"}',
    )
    plan.write_text(known.replace("type: A\n", "type: A\n      ttl: 60\n"))
    code, out = _cli(capsys, "plan", plan)
    assert code != 0 and "ttl" in out, out
    assert f"lb_alias.yaml:{_line_of(plan, 'alias: {name')}" in out, out
    # neither (checked at plan once the record's other values are known): the record's location
    plan.write_text(
        known.replace('      alias: {name: "lb.example.net", zone_id: "Z123"}\n', "").replace(
            '"${resources.zone.zone_id}"', "ZLITERAL"
        )
    )
    code, out = _cli(capsys, "plan", plan)
    assert code != 0 and "records" in out and "alias" in out, out
    assert f"lb_alias.yaml:{_line_of(plan, '  www:') + 2}" in out, out  # at its `properties:`


def test_alias_unknown_at_plan_is_checked_again_at_apply(
    plan: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    plan.write_text(plan.read_text().replace("type: A\n", 'type: A\n      records: ["192.0.2.1"]\n'))
    code, out = _cli(capsys, "plan", plan)
    assert code == 0, out  # the alias's values come from the load balancer: not known yet
    code, doc = _cli(capsys, "apply", plan, "--auto-approve", "--json")
    assert code != 0
    text = json.dumps(doc)
    assert "www" in text and "alias" in text and "records" in text, text
    zone_id = _state(plan, "lbalias")["resources"]["zone"]["attributes"]["zone_id"]
    assert _record_sets(aws, zone_id) == []
    assert _cli(capsys, "destroy", plan, "--auto-approve")[0] == 0


def test_a_record_with_values_sends_and_stores_what_it_did_before_aliases(provider: Any, aws: Any) -> None:
    from cloudorch_aws import AwsProvider
    from cloudorch_aws.faults import CallLog

    zone = aws("route53").create_hosted_zone(Name="plain.example.com", CallerReference="plain")
    zone_id = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
    log = CallLog()
    AwsProvider.client_hooks.append(log)
    rt = provider.resource_type("aws.route53_record")
    props = rt.Properties.model_validate(
        {"zone_id": zone_id, "name": "API.plain.example.com.", "type": "a", "records": ["192.0.2.2", "192.0.2.1"]}
    )
    dumped = {"zone_id": zone_id, "name": "api.plain.example.com", "type": "A", "ttl": 300,
              "records": ["192.0.2.1", "192.0.2.2"]}
    assert props.model_dump(mode="json") == dumped
    seen = rt.create("www", props)
    assert seen.properties == dumped
    [(_, params)] = [c for c in log.calls if c[0] == "route53.ChangeResourceRecordSets"]
    assert params == {
        "HostedZoneId": zone_id,
        "ChangeBatch": {"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
            "Name": "api.plain.example.com.", "Type": "A", "TTL": 300,
            "ResourceRecords": [{"Value": "192.0.2.1"}, {"Value": "192.0.2.2"}]}}]},
    }
    read = rt.read("www", seen.id, props)
    assert read is not None and read.properties == dumped


SETTINGS = "elbv2.ModifyLoadBalancerAttributes"


def _balancers(aws: Any) -> list[str]:
    return [lb["LoadBalancerArn"] for lb in aws("elbv2").describe_load_balancers()["LoadBalancers"]]


def test_one_503_in_the_second_step_of_a_create_makes_exactly_one_load_balancer(
    plan: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloudorch_aws import AwsProvider
    from cloudorch_aws.faults import CallCounter, Fault

    fault = Fault("elbv2", "ModifyLoadBalancerAttributes", 503, "ServiceUnavailable", times=1)
    counter = CallCounter()
    AwsProvider.client_hooks.extend([counter, fault])
    code, out = _cli(capsys, "apply", plan, "--auto-approve")
    assert code == 0, out
    assert fault.injected == 1
    assert counter.counts["elbv2.CreateLoadBalancer"] == 1
    assert counter.counts[SETTINGS] == 2  # the failed step alone was retried ...
    # ... by the create itself: the engine never had to look for what the create had made
    assert counter.counts["elbv2.DescribeLoadBalancers"] == 0
    [arn] = _balancers(aws)
    rec = _state(plan, "lbalias")["resources"]["lb"]
    assert rec["id"] == arn and not rec.get("tainted")
    attrs = aws("elbv2").describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
    assert {"Key": "idle_timeout.timeout_seconds", "Value": "90"} in attrs
    assert _cli(capsys, "destroy", plan, "--auto-approve")[0] == 0


def test_a_second_step_that_keeps_failing_leaves_one_tainted_load_balancer_then_one_replacement(
    plan: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloudorch_aws import AwsProvider
    from cloudorch_aws.faults import Fault

    plan.write_text(plan.read_text().replace("aws: {region: us-east-1}", "aws: {region: us-east-1, max_attempts: 2}"))
    fault = Fault("elbv2", "ModifyLoadBalancerAttributes", 503, "ServiceUnavailable")
    AwsProvider.client_hooks.append(fault)
    code, out = _cli(capsys, "apply", plan, "--auto-approve")
    assert code != 0
    [first] = _balancers(aws)
    rec = _state(plan, "lbalias")["resources"]["lb"]
    assert rec["id"] == first and rec["tainted"] is True
    AwsProvider.client_hooks.remove(fault)
    code, doc = _cli(capsys, "plan", plan, "--json")
    assert [(c["address"], c["action"]) for c in doc["changes"] if c["address"] == "lb"] == [("lb", "replace")]
    code, out = _cli(capsys, "apply", plan, "--auto-approve")
    assert code == 0, out
    [second] = _balancers(aws)
    assert second != first
    assert _cli(capsys, "destroy", plan, "--auto-approve")[0] == 0


def test_subnets_in_one_zone_are_refused_before_anything_is_made(
    plan: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    plan.write_text(plan.read_text().replace("availability_zone: us-east-1b", "availability_zone: us-east-1a"))
    code, doc = _cli(capsys, "apply", plan, "--auto-approve", "--json")
    assert code != 0
    text = json.dumps(doc)
    assert "subnets" in text and "us-east-1a" in text, text
    assert _balancers(aws) == []
    assert _cli(capsys, "destroy", plan, "--auto-approve")[0] == 0


def test_an_https_listener_needs_a_certificate_and_keeps_it(provider: Any, aws: Any) -> None:
    from pydantic import ValidationError

    ec2, elb = aws("ec2"), aws("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.4.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.4.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"]["SubnetId"]
        for i, z in enumerate("ab")
    ]
    lb = elb.create_load_balancer(Name="tls", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    tg = elb.create_target_group(Name="tls", Port=443, Protocol="HTTPS", VpcId=vpc)["TargetGroups"][0]["TargetGroupArn"]
    certs = [aws("acm").request_certificate(DomainName=f"{n}.example.com")["CertificateArn"] for n in ("www", "api")]
    rt = provider.resource_type("aws.lb_listener")
    asked = {"load_balancer_arn": lb, "port": 443, "protocol": "https",
             "default_action": {"type": "forward", "target_group_arn": tg}}
    with pytest.raises(ValidationError, match="certificate_arn"):
        rt.Properties.model_validate(asked)
    props = rt.Properties.model_validate({**asked, "certificate_arn": certs[0]})
    created = rt.create("tls", props)
    seen = rt.read("tls", created.id, props)
    assert seen is not None and seen.properties == props.model_dump(mode="json")
    new = rt.Properties.model_validate({**asked, "certificate_arn": certs[1]})
    updated = rt.update("tls", created.id, props, new)
    assert updated.id == created.id and updated.properties["certificate_arn"] == certs[1]
    [listener] = elb.describe_listeners(ListenerArns=[created.id])["Listeners"]
    assert listener["Certificates"][0]["CertificateArn"] == certs[1]
    # data sources: each type answers `lookup` with the same shape as `import`
    from cloudorch.provider.contract import LookupQuery

    [found_lb] = provider.resource_type("aws.lb").lookup("data.lb", LookupQuery(filter={"name": "tls"}))
    assert found_lb.id == lb and found_lb.attributes["dns_name"]
    assert provider.resource_type("aws.lb").lookup("data.lb", LookupQuery(filter={"name": "nope"})) == []
    [found_tg] = provider.resource_type("aws.lb_target_group").lookup("data.tg", LookupQuery(id=tg))
    assert found_tg.properties["port"] == 443
    listeners = rt.lookup("data.l", LookupQuery(filter={"load_balancer_arn": lb, "port": 443}))
    assert [x.id for x in listeners] == [created.id]


def test_a_network_load_balancer_has_no_idle_timeout(provider: Any, aws: Any) -> None:
    from pydantic import ValidationError

    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.5.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.5.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"]["SubnetId"]
        for i, z in enumerate("ab")
    ]
    rt = provider.resource_type("aws.lb")
    asked = {"name": "tcp", "load_balancer_type": "network", "internal": True, "subnets": subnets}
    with pytest.raises(ValidationError, match="idle timeout"):
        rt.Properties.model_validate({**asked, "idle_timeout": 30})
    props = rt.Properties.model_validate(asked)
    created = rt.create("nlb", props)
    seen = rt.read("nlb", created.id, props)
    assert seen is not None and seen.properties == props.model_dump(mode="json")
    [lb] = aws("elbv2").describe_load_balancers(LoadBalancerArns=[created.id])["LoadBalancers"]
    assert (lb["Type"], lb["Scheme"]) == ("network", "internal")
    rt.delete("nlb", created.id, props)
    assert rt.read("nlb", created.id, props) is None
