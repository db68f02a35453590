"""Each built-in rule, passing and failing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cloudorch.policy import PolicyLoadError, build_input, load_policies

from .conftest import NOON, change, changeset


def run(rule: dict[str, Any], *changes: Any, stage: str | None = None, now: datetime = NOON,
        providers: dict[str, dict[str, Any]] | None = None) -> list[str]:
    entry = {"id": "p", "level": "mandatory", **rule}
    policies = load_policies([entry], context=providers)
    report = policies.evaluate(build_input(changeset(*changes), stage=stage, now=now, provider_configs=providers))
    return [f"{v.subject}: {v.message}" for v in report.violations]


def test_required_tags_pass_and_fail() -> None:
    rule = {"rule": "required_tags", "keys": ["owner"], "values": {"env": "dev|prod"}}
    assert run(rule, change("ok", after={"tags": {"owner": "web", "env": "dev"}})) == []
    out = run(rule, change("bad", after={"tags": {"env": "qa"}}))
    assert out == ["bad: missing required tags: owner", "bad: tag env='qa' does not match 'dev|prod'"]


def test_required_tags_reads_gcp_labels_and_provider_default_tags() -> None:
    rule = {"rule": "required_tags", "keys": ["owner"]}
    assert run(rule, change("g", type="gcp.storage_bucket", after={"labels": {"owner": "x"}})) == []
    assert run(rule, change("s", after={"tags": {}}), providers={"aws": {"default_tags": {"owner": "web"}}}) == []


def test_required_tags_skips_unknown_tags_and_other_clouds_by_default() -> None:
    rule = {"rule": "required_tags", "keys": ["owner"]}
    assert run(rule, change("u", after={"tags": "${resources.x.tags}"}, unknown=["tags"])) == []
    assert run(rule, change("n", type="core.null", after={})) == []


def test_allowed_locations_pass_and_fail() -> None:
    rule = {"rule": "allowed_locations", "aws": ["eu-*"], "gcp": ["EU"]}
    assert run(rule, change("a", after={"region": "eu-west-1"})) == []
    assert run(rule, change("g", type="gcp.storage_bucket", after={"location": "eu"})) == []
    assert run(rule, change("b", after={"region": "us-east-1"})) == [
        "b: location 'us-east-1' is not allowed (allowed: eu-*)"
    ]


def test_allowed_locations_falls_back_on_the_provider_region() -> None:
    rule = {"rule": "allowed_locations", "locations": ["eu-*"]}
    providers = {"aws": {"region": "eu-west-1"}, "aws.us": {"region": "us-east-1"}}
    assert run(rule, change("a", after={}), providers=providers) == []
    out = run(rule, change("b", after={}, provider="aws.us"), providers=providers)
    assert out == ["b: location 'us-east-1' is not allowed (allowed: eu-*)"]


@pytest.mark.parametrize(
    ("type_", "after"),
    [
        ("aws.s3_bucket", {"acl": "public-read"}),
        ("aws.s3_bucket", {"public_access_block": {"block_public_acls": False}}),
        ("aws.s3_bucket", {"public_access_block": False}),
        ("gcp.storage_bucket", {"iam": [{"role": "roles/storage.objectViewer", "members": ["allUsers"]}]}),
        ("azure.storage_account", {"allow_blob_public_access": True}),
        ("azure.storage_container", {"public_access": "blob"}),
    ],
)
def test_deny_public_access_fails(type_: str, after: dict[str, Any]) -> None:
    assert len(run({"rule": "deny_public_access"}, change("x", type=type_, after=after))) == 1


def test_deny_public_access_passes() -> None:
    after = {"acl": "private", "public_access_block": {f: True for f in ("block_public_acls", "ignore_public_acls")}}
    assert run({"rule": "deny_public_access"}, change("x", after=after)) == []


def test_allowed_resource_types() -> None:
    rule = {"rule": "allowed_resource_types", "types": ["aws.s3_*", "core.*"]}
    assert run(rule, change("a"), change("n", type="core.null", after={})) == []
    assert run(rule, change("q", type="aws.sqs_queue", after={})) == [
        "q: resource type aws.sqs_queue is not allowed (allowed: aws.s3_*, core.*)"
    ]


def test_naming_per_type_and_unknown_names_skipped() -> None:
    rule = {"rule": "naming", "patterns": {"aws.s3_bucket": "shop-[a-z-]+"}}
    assert run(rule, change("a", after={"name": "shop-site"})) == []
    assert run(rule, change("u", after={"name": "${x}"}, unknown=["name"])) == []
    assert run(rule, change("b", after={"name": "Site"})) == ["b: name 'Site' does not match 'shop-[a-z-]+'"]


def test_max_changes() -> None:
    rule = {"rule": "max_changes", "max": 1}
    assert run(rule, change("a", action="delete"), change("b")) == []
    out = run(rule, change("a", action="delete"), change("b", action="replace", after={}))
    assert out == ["(changeset): 2 deletes or replaces in one apply; at most 1 allowed"]


def test_max_changes_limits_per_action() -> None:
    assert run({"rule": "max_changes", "limits": {"create": 1}}, change("a"), change("b")) == [
        "(changeset): 2 creates in one apply; at most 1 allowed"
    ]


def test_change_window_per_stage() -> None:
    rule = {
        "rule": "change_window",
        "timezone": "Europe/Paris",
        "windows": [{"days": ["mon", "tue", "wed", "thu"], "hours": "09:00-17:00"}],
        "match": {"stage": ["prod"]},
    }
    assert run(rule, change("a"), stage="prod", now=NOON) == []  # 13:00 in Paris on a Wednesday
    friday = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert run(rule, change("a"), stage="dev", now=friday) == []  # other stages are not restricted
    out = run(rule, change("a"), stage="prod", now=friday)
    assert len(out) == 1 and "outside the change window" in out[0]


def test_change_window_overnight() -> None:
    rule = {"rule": "change_window", "windows": [{"days": ["fri"], "hours": "22:00-06:00"}]}
    assert run(rule, change("a"), now=datetime(2026, 11, 28, 3, 0, tzinfo=UTC)) == []  # Saturday 03:00
    assert len(run(rule, change("a"), now=datetime(2026, 11, 28, 7, 0, tzinfo=UTC))) == 1


def test_protect() -> None:
    rule = {"rule": "protect", "addresses": ["*db"]}
    assert run(rule, change("db", action="update", after={}), change("web", action="delete")) == []
    assert run(rule, change("prod.db", action="delete")) == ["prod.db: prod.db is protected and may not be deleted"]
    assert run(rule, change("db", action="replace", after={})) == ["db: db is protected and may not be replaced"]


def test_match_by_address_and_type() -> None:
    rule = {"rule": "naming", "pattern": "x", "match": {"address": ["prod.*"], "type": "aws.*"}}
    assert run(rule, change("dev.a", after={"name": "y"})) == []
    assert run(rule, change("prod.a", after={"name": "y"})) == ["prod.a: name 'y' does not match 'x'"]


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ({"rule": "nope"}, "unknown built-in rule"),
        ({"rule": "naming"}, "needs `pattern`"),
        ({"rule": "naming", "pattern": "(", "level": "hard"}, "invalid regular expression"),
        ({"rule": "naming", "pattern": "x", "colour": 1}, "unknown option"),
        ({"rule": "naming", "pattern": "x", "level": "strict"}, "unknown policy level"),
        ({"rule": "change_window", "windows": [{"hours": "9-17"}]}, "bad hours"),
        ({"rule": "change_window", "timezone": "Mars/Base", "windows": [{}]}, "unknown time zone"),
        ({"rule": "naming", "pattern": "x", "match": {"kind": "x"}}, "unknown key(s) in `match`"),
    ],
)
def test_bad_configuration_is_a_load_error(entry: dict[str, Any], needle: str) -> None:
    with pytest.raises(PolicyLoadError) as info:
        load_policies([{"id": "p", **entry}], plan_file="plan.yaml")
    assert needle in str(info.value)
    assert info.value.exit_code == 1


def test_duplicate_ids_are_refused() -> None:
    entry = {"id": "p", "rule": "protect", "addresses": ["a"]}
    with pytest.raises(PolicyLoadError, match="used twice"):
        load_policies([entry, entry])


def test_drift_checks_live_state() -> None:
    from cloudorch.policy import build_state_input
    from cloudorch.state.model import ResourceRecord, State

    state = State(plan_name="shop")
    state.resources["site"] = ResourceRecord(
        address="site", type="aws.s3_bucket", provider="aws", id="b1", properties={"acl": "public-read"}
    )
    policies = load_policies([{"id": "p", "rule": "deny_public_access", "level": "hard"}])
    report = policies.evaluate(build_state_input(state, now=datetime(2026, 1, 1, tzinfo=UTC)))
    assert [(v.address, v.message) for v in report.violations] == [("site", "ACL 'public-read' makes it public")]
