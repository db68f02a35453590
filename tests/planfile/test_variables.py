"""Tests of variable values: precedence, --var parsing by type, variable files, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloudorch.errors import ConfigError
from cloudorch.planfile import load_plan
from cloudorch.planfile.variables import parse_cli_value

PLAN = """\
version: 1
variables:
  region: {type: string, default: eu-west-1}
  count: {type: number, default: 1}
  debug: {type: bool, default: false}
  zones: {type: list, default: [a]}
  tags: {type: map, default: {}}
  anything: {default: 1}
"""


@pytest.fixture
def plan_path(write_plan: Callable[..., Path]) -> Path:
    return write_plan(PLAN)


def test_defaults(plan_path: Path) -> None:
    values = load_plan(plan_path).variable_values
    assert values == {
        "region": "eu-west-1",
        "count": 1,
        "debug": False,
        "zones": ["a"],
        "tags": {},
        "anything": 1,
    }


def test_precedence_default_then_files_in_order_then_cli(plan_path: Path, tmp_path: Path) -> None:
    first = tmp_path / "first.yaml"
    first.write_text("region: us-east-1\ncount: 2\nzones: [b, c]\n")
    second = tmp_path / "second.json"
    second.write_text(json.dumps({"count": 3, "tags": {"team": "web"}}))
    plan = load_plan(plan_path, var_files=[first, second], vars={"zones": "[x]"})
    assert plan.variable_values["region"] == "us-east-1"  # only in the first file
    assert plan.variable_values["count"] == 3  # the later file wins
    assert plan.variable_values["tags"] == {"team": "web"}
    assert plan.variable_values["zones"] == ["x"]  # --var wins over files
    assert plan.variable_values["debug"] is False  # default


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        ("string", "007", "007"),
        ("string", "[a]", "[a]"),
        ("number", "42", 42),
        ("number", "1.5", 1.5),
        ("bool", "true", True),
        ("bool", "False", False),
        ("list", "[a, b]", ["a", "b"]),
        ("list", '["a", 1]', ["a", 1]),
        ("map", "{team: web}", {"team": "web"}),
        ("map", '{"n": 1}', {"n": 1}),
        ("any", "3", 3),
        ("any", "hello", "hello"),
        ("any", "[unclosed", "[unclosed"),
    ],
)
def test_cli_values_are_parsed_by_declared_type(kind: Any, text: str, value: Any) -> None:
    assert parse_cli_value(kind, text) == value


@pytest.mark.parametrize(
    ("kind", "text"),
    [("number", "ten"), ("bool", "maybe"), ("list", "{a: 1}"), ("map", "[1]"), ("list", "[unclosed")],
)
def test_cli_values_that_do_not_fit(kind: Any, text: str) -> None:
    with pytest.raises(ValueError):
        parse_cli_value(kind, text)


def test_cli_type_mismatch_is_located_error(plan_path: Path) -> None:
    with pytest.raises(ConfigError, match="--var count: 'ten' is not a number") as info:
        load_plan(plan_path, vars={"count": "ten"})
    assert info.value.location is not None
    assert info.value.location.field == "--var count"
    assert info.value.hint is not None and "number" in info.value.hint


def test_undeclared_cli_var(plan_path: Path) -> None:
    with pytest.raises(ConfigError, match="--var sets undeclared variable `regoin`") as info:
        load_plan(plan_path, vars={"regoin": "x"})
    assert info.value.hint == "did you mean `region`?"


def test_var_file_type_mismatch_names_file_and_line(plan_path: Path, tmp_path: Path) -> None:
    vf = tmp_path / "prod.yaml"
    vf.write_text("region: us-east-1\ncount: many\n")
    with pytest.raises(ConfigError, match="declared as number but got a string") as info:
        load_plan(plan_path, var_files=[vf])
    loc = info.value.location
    assert loc is not None
    assert (loc.file, loc.line, loc.field) == (str(vf), 2, "count")


def test_var_file_undeclared_variable(plan_path: Path, tmp_path: Path) -> None:
    vf = tmp_path / "prod.json"
    vf.write_text('{\n  "colour": "red"\n}\n')
    with pytest.raises(ConfigError, match="undeclared variable `colour`") as info:
        load_plan(plan_path, var_files=[vf])
    assert info.value.location is not None and info.value.location.line == 2


def test_var_file_json_with_tabs_still_loads(plan_path: Path, tmp_path: Path) -> None:
    vf = tmp_path / "tabs.json"
    vf.write_text('{\n\t"count":\t5\n}\n')
    assert load_plan(plan_path, var_files=[vf]).variable_values["count"] == 5


def test_var_file_errors(plan_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read variable file"):
        load_plan(plan_path, var_files=[tmp_path / "missing.yaml"])
    broken = tmp_path / "broken.json"
    broken.write_text('{"count": 1,, }')
    with pytest.raises(ConfigError, match="syntax error"):
        load_plan(plan_path, var_files=[broken])
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_plan(plan_path, var_files=[listed])
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_plan(plan_path, var_files=[empty]).variable_values["count"] == 1


def test_required_variable_given_by_cli(write_plan: Callable[..., Path]) -> None:
    path = write_plan("version: 1\nvariables:\n  region: {type: string}\n")
    with pytest.raises(ConfigError, match="variable `region` has no value") as info:
        load_plan(path)
    assert info.value.hint is not None and "--var region=..." in info.value.hint
    assert load_plan(path, vars={"region": "eu"}).variable_values == {"region": "eu"}


def test_explicit_null_default_is_a_default(write_plan: Callable[..., Path]) -> None:
    path = write_plan("version: 1\nvariables:\n  region: {type: string, default: null}\n")
    assert load_plan(path).variable_values == {"region": None}


def test_variable_reference_navigates_and_checks(write_plan: Callable[..., Path]) -> None:
    text = 'version: 1\nvariables:\n  tags: {default: {team: web}}\noutputs:\n  team: "${var.tags.%s}"\n'
    assert load_plan(write_plan(text % "team")).outputs["team"].value == "web"
    with pytest.raises(ConfigError, match="no key 'owner'") as info:
        load_plan(write_plan(text % "owner"))
    assert info.value.location is not None and info.value.location.line == 5


def test_sensitive_value_is_not_echoed_in_errors(write_plan: Callable[..., Path], tmp_path: Path) -> None:
    path = write_plan("version: 1\nvariables:\n  token: {type: number, sensitive: true, default: 1}\n")
    vf = tmp_path / "secret.yaml"
    vf.write_text("token: hunter2\n")
    with pytest.raises(ConfigError) as info:
        load_plan(path, var_files=[vf])
    assert "hunter2" not in str(info.value)
