"""Tests of YAML parsing with positions: marks for every node, duplicates, anchors."""

from __future__ import annotations

import pytest

from cloudorch.errors import ConfigError
from cloudorch.planfile.source import parse_yaml

TEXT = """\
version: 1
resources:
  web:
    type: core.null
    properties:
      tags: [a, b]
      name: "x"
"""


def test_every_node_has_a_position() -> None:
    data, source = parse_yaml(TEXT, "p.yaml")
    assert data["resources"]["web"]["properties"]["tags"] == ["a", "b"]
    assert source.marks[("version",)] == (1, 1)
    assert source.marks[("resources", "web")] == (3, 3)
    assert source.marks[("resources", "web", "properties", "tags")] == (6, 7)
    assert source.marks[("resources", "web", "properties", "tags", 1)] == (6, 17)
    assert source.marks[("resources", "web", "properties", "name")] == (7, 7)


def test_location_walks_up_to_the_nearest_parent() -> None:
    _, source = parse_yaml(TEXT, "p.yaml")
    loc = source.location(("resources", "web", "properties", "missing", "deeper"))
    assert (loc.file, loc.line, loc.column) == ("p.yaml", 5, 5)
    assert loc.field == "resources.web.properties.missing.deeper"
    assert str(loc) == "p.yaml:5:5 (resources.web.properties.missing.deeper)"


def test_scalars_keep_yaml_types() -> None:
    data, _ = parse_yaml("a: 1\nb: 1.5\nc: true\nd: null\ne: '1'\nf: yes\ng: ~\n", "x")
    assert data == {"a": 1, "b": 1.5, "c": True, "d": None, "e": "1", "f": True, "g": None}


def test_repeated_words_keep_their_types_however_many() -> None:
    # words that start like a bool or null (`type`, `no`) are resolved once each and remembered
    # when they are strings; past the bound of remembered words they are resolved each time
    words = [f"t{i}" for i in range(1500)]
    text = "a: [" + ", ".join([*words, "type", "true", "type", "no", "name", "null", "name", "'true'", "t3"]) + "]\n"
    data, _ = parse_yaml(text, "x")
    assert data["a"][:1500] == words
    assert data["a"][1500:] == ["type", True, "type", False, "name", None, "name", "true", "t3"]


def test_duplicate_nested_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match="duplicate key `name`") as info:
        parse_yaml("a:\n  name: 1\n  name: 2\n", "x")
    assert info.value.location is not None
    assert (info.value.location.line, info.value.location.field) == (3, "a.name")


@pytest.mark.parametrize(
    "text, message, line",
    [
        ("a: 1\nb: 2\nc: 3\nb: 4\n", "duplicate key `b` (first written on line 2)", 4),
        # keys equal as values are duplicates whatever their spelling (`1` and `true` are one key)
        ("x: 0\n1: a\ny: 0\ntrue: b\n", "duplicate key `True` (first written on line 2)", 4),
        ("s: {k: 1, '1': 2, 1: 3, 1.0: 4}\n", "duplicate key `1.0` (first written on line 1)", 1),
    ],
)
def test_duplicate_key_names_the_first_line(text: str, message: str, line: int) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "x")
    assert info.value.message == message
    assert info.value.location is not None and info.value.location.line == line


def test_merge_keys_let_own_keys_win() -> None:
    data, _ = parse_yaml("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n", "x")
    assert data["c"] == {"x": 1, "y": 3}


@pytest.mark.parametrize(
    "merge_key", ["<<", "!!merge <<", "!<tag:yaml.org,2002:merge> <<", "!!merge any"]
)
def test_merge_keys_however_tagged_are_merged(merge_key: str) -> None:
    text = f"base: &b {{x: 1, y: 2}}\nc:\n  y: 3\n  {merge_key}: *b\n"
    data, source = parse_yaml(text, "x")
    assert data["c"] == {"x": 1, "y": 3}
    assert source.marks[("c", "x")] == (1, 11)


def test_recursive_alias_is_an_error() -> None:
    with pytest.raises(ConfigError, match="recursive"):
        parse_yaml("a: &a [*a]\n", "x")


def test_syntax_error_has_line_and_column() -> None:
    with pytest.raises(ConfigError, match="YAML syntax error") as info:
        parse_yaml("a: [1, 2\nb: 3\n", "x")
    loc = info.value.location
    assert loc is not None and loc.line is not None and loc.column is not None
