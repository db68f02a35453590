"""Tests of for_each expansion: instance addresses, each.key/each.value, dependencies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cloudorch.errors import ConfigError
from cloudorch.planfile import Instance, Reference, expand, find_refs, load_plan, resolve

from .conftest import GOOD


def by_address(instances: list[Instance]) -> dict[str, Instance]:
    return {i.address: i for i in instances}


def test_shop_instances() -> None:
    plan = load_plan(GOOD / "shop.yaml", env={"HOME_DIR": "/h"})
    got = by_address(expand(plan))
    assert list(got) == [
        "site",
        "logs[eu-west-1]",
        "logs[us-east-1]",
        "workers[small]",
        "workers[large]",
        "build_info",
    ]
    site = got["site"]
    assert (site.name, site.key, site.type, site.provider) == ("site", None, "core.null", "core")
    assert site.properties["values"]["regions"] == ["eu-west-1", "us-east-1"]
    assert site.properties["values"]["name"] == "shop-${stage.vars.env}-site"
    assert site.properties["values"]["literal"] == "cost $${price}"  # still a template
    assert site.depends_on == []
    assert site.location.line == 20 and site.location.field == "resources.site"

    eu = got["logs[eu-west-1]"]
    assert (eu.name, eu.key, eu.provider) == ("logs", "eu-west-1", "core.slow")
    assert eu.properties == {"values": {"name": "shop-logs-eu-west-1", "site": "${resources.site.id}"}}
    assert eu.depends_on == ["site"]

    assert got["workers[large]"].properties == {"values": {"cpu": 4, "name": "large"}}
    build = got["build_info"]
    assert build.depends_on == ["site", "logs"]
    assert build.lifecycle.prevent_destroy


def test_properties_resolve_to_final_values() -> None:
    plan = load_plan(GOOD / "shop.yaml", env={"HOME_DIR": "/h"})
    site = by_address(expand(plan))["site"]

    def lookup(ref: Reference) -> str:
        return {"stage": "dev"}.get(ref.root, "?")

    assert resolve(site.properties, lookup)["values"]["literal"] == "cost ${price}"
    assert resolve(site.properties, lookup)["values"]["name"] == "shop-dev-site"


def test_for_each_literal_mapping_and_list(write_plan: Callable[..., Path]) -> None:
    path = write_plan(
        """\
version: 1
resources:
  m:
    type: core.null
    for_each: {a: 1, b: {x: [1, 2]}}
    properties: {values: {v: "${each.value}", k: "${each.key}", s: "${each.key}=${each.value}"}}
  l:
    type: core.null
    for_each: [x, y]
    properties: {values: {v: "${each.value}"}}
"""
    )
    got = by_address(expand(load_plan(path)))
    assert got["m[a]"].properties == {"values": {"v": 1, "k": "a", "s": "a=1"}}
    assert got["m[b]"].properties["values"]["v"] == {"x": [1, 2]}
    assert got["m[b]"].properties["values"]["s"] == 'b={"x": [1, 2]}'
    assert got["l[y]"].properties == {"values": {"v": "y"}}


def test_for_each_from_variable_and_cli(write_plan: Callable[..., Path]) -> None:
    path = write_plan(
        "version: 1\nvariables:\n  zones: {type: list, default: [a]}\n"
        'resources:\n  z:\n    type: core.null\n    for_each: "${var.zones}"\n'
    )
    assert [i.address for i in expand(load_plan(path, vars={"zones": "[p, q]"}))] == ["z[p]", "z[q]"]
    assert expand(load_plan(path, vars={"zones": "[]"})) == []


def test_dependencies_are_names_deduplicated(write_plan: Callable[..., Path]) -> None:
    path = write_plan(
        """\
version: 1
resources:
  a: {type: core.null}
  b: {type: core.null, for_each: [k]}
  c:
    type: core.null
    depends_on: [a]
    properties: {values: {x: "${resources.a.id}", y: "${resources.b[k].id}", z: "${resources.a.values}"}}
"""
    )
    c = by_address(expand(load_plan(path)))["c"]
    assert c.depends_on == ["a", "b"]


def test_instances_without_each_share_the_plan_properties(write_plan: Callable[..., Path]) -> None:
    path = write_plan("version: 1\nresources:\n  a: {type: core.null, properties: {values: {x: 1}}}\n")
    plan = load_plan(path)
    (a,) = expand(plan)
    assert a.properties is plan.resources["a"].properties


def test_dynamic_instance_key(write_plan: Callable[..., Path]) -> None:
    path = write_plan(
        """\
version: 1
variables:
  main: {default: eu}
resources:
  logs: {type: core.null, for_each: [eu, us]}
  mirror:
    type: core.null
    for_each: [eu, us]
    properties: {values: {log: "${resources.logs[each.key].id}", s: "x-${resources.logs[each.value].id}"}}
outputs:
  main_log: "${resources.logs[var.main].id}"
"""
    )
    plan = load_plan(path)
    got = by_address(expand(plan))
    assert got["mirror[us]"].properties == {
        "values": {"log": '${resources.logs["us"].id}', "s": 'x-${resources.logs["us"].id}'}
    }
    assert got["mirror[eu]"].depends_on == ["logs"]
    assert plan.outputs["main_log"].value == '${resources.logs["eu"].id}'
    (ref,) = find_refs(got["mirror[us]"].properties["values"]["log"])
    assert ref.resource_target() == ("logs", "us", ("id",))


def test_dynamic_instance_key_must_exist(write_plan: Callable[..., Path]) -> None:
    path = write_plan(
        """\
version: 1
resources:
  logs: {type: core.null, for_each: [eu]}
  mirror:
    type: core.null
    for_each: [eu, asia]
    properties:
      values: {log: "${resources.logs[each.key].id}"}
"""
    )
    with pytest.raises(ConfigError, match="has no instance `asia`") as info:
        expand(load_plan(path))
    assert info.value.location is not None and info.value.location.line == 8
