"""Sensitivity follows values: which properties hold a secret, which outputs must say so, masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudorch.changes import SENSITIVE, Action, Change, ChangeSet, PropertyDiff, mask_change
from cloudorch.errors import ConfigError
from cloudorch.planfile import PlanSpec, expand
from cloudorch.planfile.load import load_plan_text

SECRET = "s3cr3t-unit-0123456789"

PLAN = """\
version: 1
variables:
  token: {type: string, sensitive: true}
  creds: {type: map, sensitive: true}
  region: {type: string, default: eu}
resources:
  direct:
    type: core.null
    properties:
      values: {auth: "Bearer ${var.token}"}
      triggers: {region: "${var.region}"}
  looped:
    type: core.null
    for_each: "${var.creds}"
    properties:
      values: {cred: "${each.value}"}
      triggers: {key: "${each.key}"}
  keyed:
    type: core.null
    for_each: [a, b]
    properties:
      values: {v: "${each.value}"}
outputs:
  shown: {value: "${var.token}", sensitive: true}
  region: "${var.region}"
"""


def _load(text: str = PLAN, **vars: str) -> PlanSpec:
    given = {"token": SECRET, "creds": f"{{eu: {SECRET}}}", **vars}
    return load_plan_text(text, Path("plan.yaml"), vars=given)


def test_properties_built_from_a_sensitive_variable_are_marked() -> None:
    got = {i.address: i for i in expand(_load())}
    assert got["direct"].sensitive == {"values"}  # `triggers` reads only a plain variable
    # a for_each over a sensitive map: each.value is secret, each.key names the instance
    assert got["looped[eu]"].sensitive == {"values"}
    assert got["keyed[a]"].sensitive == frozenset()


def test_an_output_from_a_secret_must_be_declared_sensitive() -> None:
    text = PLAN.replace('  shown: {value: "${var.token}", sensitive: true}', '  shown: "${var.token}"')
    with pytest.raises(ConfigError) as err:
        expand(_load(text))
    assert "output `shown`" in err.value.message and "not declared sensitive" in err.value.message
    assert err.value.location is not None and err.value.location.line == text.splitlines().index(
        '  shown: "${var.token}"'
    ) + 1
    assert SECRET not in str(err.value) + (err.value.hint or "")


def test_a_type_error_of_a_sensitive_variable_does_not_quote_it() -> None:
    with pytest.raises(ConfigError) as err:
        _load(creds=SECRET)
    assert "creds" in err.value.message and SECRET not in err.value.message + (err.value.hint or "")


def test_mask_change_masks_every_copy_of_a_sensitive_value() -> None:
    c = Change(
        address="direct",
        type="core.null",
        provider="core",
        action=Action.UPDATE,
        before={"values": {"$sensitive": "sha256:x"}, "triggers": {}},
        after={"values": {"auth": SECRET}, "triggers": {"region": "eu"}},
        diff=[PropertyDiff(path="values", before={"auth": "old"}, after={"auth": SECRET})],
        sensitive=["values"],
    )
    masked = mask_change(c)
    assert SECRET not in masked.model_dump_json()
    assert masked.after == {"values": SENSITIVE, "triggers": {"region": "eu"}}
    assert masked.diff[0].sensitive and masked.diff[0].after == SENSITIVE
    assert c.after is not None and c.after["values"] == {"auth": SECRET}  # the original keeps it, for apply


def test_a_saved_plan_holds_no_sensitive_value(tmp_path: Path) -> None:
    cs = ChangeSet(
        plan_name="p",
        plan_file="plan.yaml",
        plan_hash="h",
        changes=[
            Change(
                address="direct",
                type="core.null",
                provider="core",
                action=Action.CREATE,
                after={"values": {"auth": SECRET}},
                sensitive=["values"],
            )
        ],
    )
    path = tmp_path / "saved.plan"
    cs.save(path)
    assert SECRET not in path.read_text()
    again = ChangeSet.load(path)  # the digest covers what was written
    assert again.changes[0].after == {"values": SENSITIVE}


def test_a_secret_passed_through_a_stage_stays_sensitive() -> None:
    from cloudorch.planfile.expand import bind_stage, stage_context

    text = """\
version: 1
variables:
  token: {type: string, sensitive: true}
stages:
  prod:
    vars: {auth: "Bearer ${var.token}"}
resources:
  holder:
    type: core.null
    properties:
      values: {auth: "${stage.vars.auth}"}
      triggers: {stage: "${stage.name}"}
outputs:
  leaked: "${stage.vars.auth}"
"""
    plan = load_plan_text(text, Path("plan.yaml"), vars={"token": SECRET})
    bound = bind_stage(plan, stage_context(plan, "prod"))
    with pytest.raises(ConfigError, match="output `leaked`"):
        expand(bound)
    declared = text.replace(
        '  leaked: "${stage.vars.auth}"',
        '  leaked: {value: "${stage.vars.auth}", sensitive: true}',
    )
    plan = load_plan_text(declared, Path("plan.yaml"), vars={"token": SECRET})
    (holder,) = expand(bind_stage(plan, stage_context(plan, "prod")))
    assert holder.sensitive == {"values"}
