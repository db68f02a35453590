"""Tests of checking a plan against installed types: what passes and what is skipped."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from cloudorch.errors import ConfigError
from cloudorch.planfile import check_types, expand, load_plan
from cloudorch.provider.registry import Registry

from .conftest import GOOD


def test_shop_passes(registry: Registry) -> None:
    plan = load_plan(GOOD / "shop.yaml", env={"HOME_DIR": "/h"})
    check_types(plan, registry)
    check_types(plan, registry, expand(plan))


def test_values_waiting_on_resources_are_skipped(write_plan: Callable[..., Path], registry: Registry) -> None:
    # `path` is required and `mode` has a pattern: both are unknown until `a` exists
    path = write_plan(
        """\
version: 1
resources:
  a: {type: core.null, properties: {values: {p: x.txt, m: "0644"}}}
  f:
    type: core.file
    properties: {path: "${resources.a.p}", mode: "${resources.a.m}", content: "c ${resources.a.id}"}
"""
    )
    check_types(load_plan(path), registry)


def test_known_values_are_validated(write_plan: Callable[..., Path], registry: Registry) -> None:
    path = write_plan('version: 1\nresources:\n  f:\n    type: core.file\n    properties: {path: x, mode: "999"}\n')
    with pytest.raises(ConfigError, match=r"property `mode` of core\.file") as info:
        check_types(load_plan(path), registry)
    assert info.value.location is not None
    assert (info.value.location.line, info.value.location.field) == (5, "resources.f.properties.mode")


def test_variable_values_are_validated_per_instance(write_plan: Callable[..., Path], registry: Registry) -> None:
    path = write_plan(
        """\
version: 1
resources:
  w:
    type: core.wait
    for_each: {fast: 0, slow: -1}
    properties: {seconds: "${each.value}"}
"""
    )
    with pytest.raises(ConfigError, match=re.escape("greater than or equal to 0 (instance `w[slow]`)")):
        check_types(load_plan(path), registry)


def test_null_values_keys_are_attributes(write_plan: Callable[..., Path], registry: Registry) -> None:
    path = write_plan(
        """\
version: 1
resources:
  a: {type: core.null, properties: {values: {colour: red}}}
  b: {type: core.null, properties: {values: {c: "${resources.a.colour}", t: "${resources.a.triggers}"}}}
"""
    )
    check_types(load_plan(path), registry)


def test_deep_attribute_paths_are_not_checked_beyond_the_first(
    write_plan: Callable[..., Path], registry: Registry
) -> None:
    path = write_plan(
        'version: 1\nresources:\n  a: {type: core.null}\noutputs:\n  x: "${resources.a.values.anything[0]}"\n'
    )
    check_types(load_plan(path), registry)


def test_attribute_of_for_each_instance(write_plan: Callable[..., Path], registry: Registry) -> None:
    path = write_plan(
        'version: 1\nresources:\n  a: {type: core.file, for_each: [x], properties: {path: "${each.key}"}}\n'
        'outputs:\n  ok: "${resources.a[x].sha256}"\n  bad: "${resources.a[x].md5}"\n'
    )
    with pytest.raises(ConfigError, match="no attribute `md5`") as info:
        check_types(load_plan(path), registry)
    assert info.value.location is not None and info.value.location.line == 6


def test_for_each_without_keys_is_still_checked(write_plan: Callable[..., Path], registry: Registry) -> None:
    path = write_plan(
        "version: 1\nresources:\n  f:\n    type: core.file\n    for_each: []\n"
        '    properties: {path: "${each.key}", contnet: x}\n'
    )
    with pytest.raises(ConfigError, match="unknown property `contnet`"):
        check_types(load_plan(path), registry)
