"""The JSON Schema covers `modules:` in plan files, and module files (`module.yaml`) on their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from cloudorch.planfile import plan_json_schema
from cloudorch.planfile.schema import module_json_schema
from cloudorch.provider.registry import Registry

MODULES = Path(__file__).resolve().parents[1] / "fixtures" / "modules"


@pytest.fixture(scope="module")
def schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    return plan_json_schema(Registry()), module_json_schema(Registry())


def test_plans_with_modules_validate(schemas: tuple[dict[str, Any], dict[str, Any]]) -> None:
    plan, _ = schemas
    jsonschema.Draft202012Validator.check_schema(plan)
    for name in ("estate", "regions"):
        jsonschema.validate(yaml.safe_load((MODULES / name / "plan.yaml").read_text()), plan)
    bad = {"version": 1, "modules": {"m": {"source": "./x", "input": {}}}}
    with pytest.raises(jsonschema.ValidationError, match="input"):
        jsonschema.validate(bad, plan)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 1, "modules": {"m": {"inputs": {}}}}, plan)  # no source


def test_module_files_validate(schemas: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, module = schemas
    jsonschema.Draft202012Validator.check_schema(module)
    files = sorted(MODULES.glob("**/module.yaml"))
    assert len(files) >= 4
    for f in files:
        jsonschema.validate(yaml.safe_load(f.read_text()), module)
    for root_only in ({"providers": {"aws": {}}}, {"version": 1}, {"backend": {}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(root_only, module)
    wrong = {"resources": {"n": {"type": "core.null", "properties": {"valuez": {}}}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, module)
