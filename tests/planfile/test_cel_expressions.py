"""The expression grammar: which `${...}` are expressions, the references found in them, partial
resolution, locals and `enabled` (unit level; the CLI tests are tests/cli/test_plan_language.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloudorch.errors import ConfigError
from cloudorch.planfile import Reference, Unknown, find_refs, load_plan_text, resolve
from cloudorch.planfile.conditional import null_disabled
from cloudorch.planfile.expand import expand
from cloudorch.planfile.expressions import (
    Expression,
    ExpressionError,
    cel_literal,
    parse_template,
    resolve_partial,
    template_cel,
)

VALUES: dict[str, Any] = {"prod": True, "name": "web", "cfg": {"port": 80}, "list": [1, 2]}


def lookup(ref: Reference) -> Any:
    if ref.root == "var":
        value: Any = VALUES[str(ref.path[0])]
        for step in ref.path[1:]:
            value = value[step]
        return value
    if ref.root == "each":
        return "eu" if ref.path[0] == "key" else {"cpu": 2}
    return Unknown(ref.text)


@pytest.mark.parametrize(
    ("body", "refs"),
    [
        ("var.prod ? 3 : 1", ["${var.prod}"]),
        ("upper(var.name)", ["${var.name}"]),
        ("resources.web[eu].arn + resources.db.id", ["${resources.web[eu].arn}", "${resources.db.id}"]),
        ('var.cfg["port"] > 1', ['${var.cfg["port"]}']),
        ("var.list.map(x, x + var.cfg.port)", ["${var.list}", "${var.cfg.port}"]),
        ("var.name.startsWith('w')", ["${var.name}"]),
        ("has(var.cfg.port)", ["${var.cfg}"]),
        ("var.list[var.cfg.port - 80]", ["${var.list}", "${var.cfg.port}"]),
        ("resources.web[each.key].id + ''", ["${resources.web[each.key].id}"]),
        ("'var.name' + \"resources.x\"", []),
        ("var.name == var.name", ["${var.name}"]),
        ("1 + 2", []),
        ("local.my-name + 'x'", ["${local.my-name}"]),
    ],
)
def test_references_inside_an_expression(body: str, refs: list[str]) -> None:
    (part,) = parse_template("${" + body + "}")
    assert isinstance(part, Expression)
    assert [r.text for r in part.refs] == refs
    assert [r.text for r in find_refs("${" + body + "}")] == refs


def test_plain_references_stay_on_the_fast_path() -> None:
    for text in ("${var.name}", "${resources.web[eu].arn}", "${var.a-b}", "${each.value.cpu}", "${local.x.y[0]}"):
        (part,) = parse_template(text)
        assert isinstance(part, Reference), text


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ('${ {"a": 1}.a }-x', 2),  # a map literal's braces nest
        ("${'}' + var.name}", 1),  # a quoted brace does not close
        (r'${"a\"}" + var.name}', 1),  # nor an escaped quote
        ("a-${var.prod ? 'x' : 'y'}-b-${var.name}", 4),
    ],
)
def test_templates_with_expressions_split_where_they_should(text: str, parts: int) -> None:
    assert len(parse_template(text)) == parts


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${nope + 1}", "unknown root `nope`"),
        ("${var.list.map(local, local)}", "cannot be named `local`"),
        ("${'open + var.name}", "unterminated"),
    ],
)
def test_malformed_expressions(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        parse_template(text)


def test_partial_resolution_writes_known_values_into_the_source() -> None:
    roots = frozenset({"var", "each"})
    assert resolve_partial("${var.prod ? 3 : 1}", lookup, roots) == 3
    got = resolve_partial("${var.prod ? resources.web[each.key].id : var.name}", lookup, roots)
    assert got == '${true ? resources.web["eu"].id : "web"}'
    assert resolve("${var.prod ? 3 : 1}-${resources.x.id}", lookup) == Unknown("${var.prod ? 3 : 1}-${resources.x.id}")
    assert resolve_partial("n-${var.prod ? 3 : 1}-${resources.x.id}", lookup, roots) == "n-3-${resources.x.id}"
    # inside an expression a `${` in a string is text; so it stays in the value written back
    assert resolve(resolve_partial("${upper(var.name) + '${'}", lookup, roots), lookup) == "WEB${"


@pytest.mark.parametrize(
    "value",
    [None, True, 3, -2.5, "a\"b\\c\n${x}", "ünï", [], [1, "a", None], {"k": {"n": [True]}}, {}],
)
def test_cel_literal_round_trips(value: Any) -> None:
    assert resolve("${" + cel_literal(value) + "}", lookup) == value


def test_template_cel_keeps_the_value_of_a_template() -> None:
    template = {"a": "${var.name}-x", "b": ["${var.prod}", 2], "c": "plain"}
    assert resolve("${" + template_cel(template) + "}", lookup) == resolve(template, lookup)


def _load(text: str, **vars: str) -> Any:
    return load_plan_text(text, Path("plan.yaml"), vars=vars, env={})


def test_locals_known_at_load_are_computed_once_and_others_are_written_into_their_readers() -> None:
    plan = _load(
        """
version: 1
variables:
  env: {default: dev}
locals:
  prod: "${var.env == 'prod'}"
  size: "${local.prod ? 3 : 1}"
  tags: {env: "${var.env}", n: "${local.size}"}
  id: "${resources.a.id}"
  label: "${local.tags.env + '/' + local.id}"
  nested: {who: "${local.id}"}
resources:
  a: {type: core.null}
  b:
    type: core.null
    properties:
      values:
        n: "${local.size}"
        env: "${local.tags['env']}"
        label: "${local.label}"
        who: "${local.nested.who}"
        both: "x-${local.id}"
"""
    )
    assert plan.local_values.values == {"prod": False, "size": 1, "tags": {"env": "dev", "n": 1}}
    assert set(plan.local_values.templates) == {"id", "label", "nested"}
    b = {i.address: i for i in expand(plan)}["b"]
    assert b.depends_on == ["a"]
    props = b.properties["values"]
    assert props["n"] == 1 and props["env"] == "dev"
    got = resolve(b.properties, lambda ref: "ID1" if ref.text == "${resources.a.id}" else Unknown(ref.text))
    assert got["values"] == {"n": 1, "env": "dev", "label": "dev/ID1", "who": "ID1", "both": "x-ID1"}


def test_a_local_reading_itself_is_a_cycle() -> None:
    with pytest.raises(ConfigError, match="cycle: `a` -> `a`"):
        _load("version: 1\nlocals:\n  a: \"${local.a}\"\n")


def test_enabled_per_instance_and_null_for_disabled_references() -> None:
    plan = _load(
        """
version: 1
variables:
  use: {type: bool, default: false}
resources:
  web:
    type: core.null
    for_each: {eu: true, us: false}
    enabled: "${each.value}"
  cdn: {type: core.null, enabled: "${var.use}"}
  site:
    type: core.null
    properties:
      values:
        a: "${resources.web[us].id == null ? 'none' : 'some'}"
        b: "${var.use ? resources.cdn.id : 'origin'}"
""",
        use="false",
    )
    instances = {i.address: i for i in expand(plan)}
    assert set(instances) == {"web[eu]", "site"}
    site = resolve(instances["site"].properties, lambda ref: Unknown(ref.text))
    assert site["values"] == {"a": "none", "b": "origin"}
    with pytest.raises(ExpressionError, match="reads `cdn`, which is disabled"):
        null_disabled("${resources.cdn.id}", {"cdn"})
    assert null_disabled("${resources.web.id}", {"cdn"}) == "${resources.web.id}"
