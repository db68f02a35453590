"""Input limits: alias expansion, nesting, size and instance count are bounded, with located errors.

The bad fixtures (tests/fixtures/planfile/bad/) cover the default limits on plan files; these
tests cover what they cannot: variable files, `--var` text, merge keys and raising a limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cloudorch.errors import ConfigError
from cloudorch.planfile import expand, load_plan
from cloudorch.planfile.limits import InputLimits
from cloudorch.planfile.source import parse_yaml
from cloudorch.planfile.variables import parse_cli_value

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
)

PLAN = """\
version: 1
name: limits
variables:
  v: {type: any, default: 1}
resources:
  r:
    type: core.null
    for_each: [a, b, c]
    properties: {values: {k: "${each.key}"}}
"""


def test_an_alias_bomb_stops_at_the_limit_with_a_location() -> None:
    with pytest.raises(ConfigError, match="aliases expand to more than 100,000") as info:
        parse_yaml(BOMB, "bomb.yaml")
    loc = info.value.location
    assert loc is not None and loc.file == "bomb.yaml" and loc.line is not None


def test_merge_keys_count_as_alias_expansion() -> None:
    # no alias of a container is built twice here: only the merged entries multiply
    base = "base: &base {" + ", ".join(f"k{i}: {i}" for i in range(1000)) + "}\n"
    users = "".join(f"u{i}: {{<<: *base}}\n" for i in range(200))
    with pytest.raises(ConfigError, match="aliases expand"):
        parse_yaml(base + users, "merge.yaml")
    data, _ = parse_yaml(base + users, "merge.yaml", InputLimits(max_alias_nodes=300_000))
    assert data["u199"]["k999"] == 999


@pytest.mark.parametrize(
    "text, expanded",
    [
        ("a: &a [x, y, z]\nb: *a\n", 4),  # the list and its three strings
        ("a: &a {k: x, l: y}\nb: *a\n", 3),  # the mapping and its two values
        ("a: &a [[x, y]]\nb: [*a, *a]\n", 10),  # nested: an inner list counts as built again, its strings too
    ],
)
def test_every_value_an_alias_expands_to_counts(text: str, expanded: int) -> None:
    parse_yaml(text, "ok.yaml", InputLimits(max_alias_nodes=expanded))
    with pytest.raises(ConfigError, match="aliases expand"):
        parse_yaml(text, "over.yaml", InputLimits(max_alias_nodes=expanded - 1))


def test_ordinary_anchors_and_merges_are_fine() -> None:
    text = "d: &d {x: 1, tags: [a, b]}\n" + "".join(f"r{i}: {{<<: *d, y: {i}}}\n" for i in range(100))
    data, _ = parse_yaml(text, "ok.yaml")
    assert data["r99"] == {"x": 1, "tags": ["a", "b"], "y": 99}


def test_nesting_limit_counts_levels() -> None:
    ok = "a: " + "[" * 63 + "]" * 63
    parse_yaml(ok, "ok.yaml")
    with pytest.raises(ConfigError, match="nested more than 64 levels") as info:
        parse_yaml("a:\n  b: " + "[" * 64 + "]" * 64, "deep.yaml")
    assert info.value.location is not None and info.value.location.line == 2
    # beyond libyaml's own bound the message is the same
    with pytest.raises(ConfigError, match="nested more than 64 levels"):
        parse_yaml("[" * 5000 + "]" * 5000, "deeper.yaml")


def test_tags_outside_the_core_schema_are_refused() -> None:
    for text in ("a: !!python/object/apply:os.system [ls]", "a: !!set {x}", "a: !custom 1", "? !!binary eA==\n: 1"):
        with pytest.raises(ConfigError, match="unsupported YAML tag") as info:
            parse_yaml(text, "t.yaml")
        assert info.value.location is not None and info.value.location.line is not None
    data, _ = parse_yaml("a: !!str 1\nb: !!int '2'\nc: !!map {x: !!seq [!!null '', !!bool true, !!float 1]}", "t")
    assert data == {"a": "1", "b": 2, "c": {"x": [None, True, 1.0]}}


def test_size_limit_and_raising_it(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "a: " + "x" * 2000 + "\n"
    monkeypatch.setenv("CLOUDORCH_MAX_PLAN_BYTES", "1000")
    with pytest.raises(ConfigError, match="larger than the limit of 1,000") as info:
        parse_yaml(text, "big.yaml")
    assert info.value.hint is not None and "CLOUDORCH_MAX_PLAN_BYTES" in info.value.hint
    monkeypatch.setenv("CLOUDORCH_MAX_PLAN_BYTES", "3000")
    assert parse_yaml(text, "big.yaml")[0]["a"] == "x" * 2000


def test_a_bad_limit_setting_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDORCH_MAX_YAML_DEPTH", "deep")
    with pytest.raises(ConfigError, match="CLOUDORCH_MAX_YAML_DEPTH"):
        parse_yaml("a: 1", "x.yaml")


def test_var_files_take_the_same_bounded_loader(write_plan: Callable[..., Path], tmp_path: Path) -> None:
    plan = write_plan(PLAN)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("v:\n" + "".join("  " + line + "\n" for line in BOMB.splitlines()))
    with pytest.raises(ConfigError, match="aliases expand") as info:
        load_plan(plan, var_files=[bomb])
    assert info.value.location is not None and info.value.location.file == str(bomb)
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text("v: !!python/object/apply:os.system [ls]\n")
    with pytest.raises(ConfigError, match="unsupported YAML tag") as info:
        load_plan(plan, var_files=[tagged])
    assert info.value.location is not None and (info.value.location.file, info.value.location.line) == (str(tagged), 1)


def test_a_json_var_file_is_bounded_too(
    write_plan: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = write_plan(PLAN)
    deep = tmp_path / "deep.json"
    # a tab before the document: YAML refuses it, so the JSON reader takes over
    deep.write_text('\t{"v": ' + "[" * 100 + "]" * 100 + "}\n")
    with pytest.raises(ConfigError, match="JSON nested more than 64") as info:
        load_plan(plan, var_files=[deep])
    assert info.value.location is not None and info.value.location.file == str(deep)
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"v": "x" * 5000}))
    monkeypatch.setenv("CLOUDORCH_MAX_PLAN_BYTES", "1000")
    with pytest.raises(ConfigError, match="larger than the limit of 1,000 bytes"):
        load_plan(plan, var_files=[big])


def test_cli_var_text_is_bounded() -> None:
    flow = "{" + BOMB.replace("\n", ", ").rstrip(", ") + "}"
    with pytest.raises(ValueError, match="aliases expand"):
        parse_cli_value("any", flow)
    with pytest.raises(ValueError, match="unsupported YAML tag"):
        parse_cli_value("list", "!!python/object/apply:os.system [ls]")
    assert parse_cli_value("any", "not [valid") == "not [valid"
    assert parse_cli_value("list", "[a, b]") == ["a", "b"]


def test_instance_count_is_capped_at_the_for_each(
    write_plan: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = load_plan(write_plan(PLAN))
    monkeypatch.setenv("CLOUDORCH_MAX_INSTANCES", "2")
    with pytest.raises(ConfigError, match="more than 2 resource instances") as info:
        expand(plan)
    assert info.value.location is not None and info.value.location.line == 8
    assert info.value.location.field == "resources.r.for_each"
    monkeypatch.setenv("CLOUDORCH_MAX_INSTANCES", "3")
    assert len(expand(plan)) == 3
