"""Tests of the JSON Schema export: shape, installed types, and that it accepts real plans."""

from __future__ import annotations

from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from cloudorch.planfile import plan_json_schema
from cloudorch.provider.registry import Registry

from .conftest import GOOD


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return plan_json_schema(Registry())


def test_schema_is_draft_2020_12(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]) >= {
        "version",
        "variables",
        "providers",
        "resources",
        "outputs",
        "stages",
    }


def test_schema_holds_core_null_properties(schema: dict[str, Any]) -> None:
    resource = schema["$defs"]["ResourceSpec"]
    assert "core.null" in resource["properties"]["type"]["enum"]
    (branch,) = [b for b in resource["allOf"] if b["if"]["properties"]["type"]["const"] == "core.null"]
    ref = branch["then"]["properties"]["properties"]["$ref"].rsplit("/", 1)[-1]
    props = schema["$defs"][ref]["properties"]
    assert {"values", "triggers", "fail_on_create"} <= set(props)
    assert props["values"]["description"].startswith("Any mapping")


@pytest.mark.parametrize("name", ["shop.yaml", "minimal.yaml"])
def test_good_plans_validate(schema: dict[str, Any], name: str) -> None:
    jsonschema.validate(yaml.safe_load((GOOD / name).read_text()), schema)


def test_wrong_property_type_is_rejected(schema: dict[str, Any]) -> None:
    plan: dict[str, Any] = {
        "version": 1,
        "resources": {"f": {"type": "core.file", "properties": {"path": "x", "content": 5}}},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(plan, schema)
    plan["resources"]["f"]["properties"]["content"] = "${var.x}"  # an expression is always allowed
    jsonschema.validate(plan, schema)


def test_unknown_property_is_rejected(schema: dict[str, Any]) -> None:
    plan = {"version": 1, "resources": {"n": {"type": "core.null", "properties": {"valuez": {}}}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(plan, schema)


@pytest.mark.parametrize("name", ["conditional.yaml", "locals_unknowns.yaml", "sensitive.yaml"])
def test_plans_with_locals_expressions_and_enabled_validate(schema: dict[str, Any], name: str) -> None:
    lang = GOOD.parent.parent / "lang"
    jsonschema.validate(yaml.safe_load((lang / name).read_text()), schema)


@pytest.mark.parametrize("enabled", [3, "yes", ["${var.on}"]])
def test_enabled_is_a_bool_or_an_expression(schema: dict[str, Any], enabled: Any) -> None:
    doc = {"version": 1, "resources": {"a": {"type": "core.null", "enabled": enabled}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
    doc["resources"]["a"]["enabled"] = "${var.on}"
    jsonschema.validate(doc, schema)
