"""Tests of the template grammar: parsing, finding, resolving, escapes and Unknown values."""

from __future__ import annotations

from typing import Any

import pytest

from cloudorch.planfile import Reference, Unknown, contains_unknown, find_refs, resolve, unknown_paths
from cloudorch.planfile.expressions import ExpressionError, parse_template, resolve_partial

VALUES: dict[str, Any] = {
    "name": "shop",
    "regions": ["eu", "us"],
    "count": 3,
    "on": True,
    "tags": {"team": "web"},
}


def lookup(ref: Reference) -> Any:
    if ref.root == "var":
        value: Any = VALUES[str(ref.path[0])]
        for step in ref.path[1:]:
            value = value[step]
        return value
    return Unknown(ref.text)


@pytest.mark.parametrize(
    ("text", "root", "path", "indexes"),
    [
        ("${var.name}", "var", ("name",), ()),
        ("${ var.name }", "var", ("name",), ()),
        ("${resources.web.arn}", "resources", ("web", "arn"), ()),
        ("${resources.web.a.b}", "resources", ("web", "a", "b"), ()),
        ("${resources.web[eu].arn}", "resources", ("web", "eu", "arn"), (1,)),
        ('${resources.web["eu-west-1"].arn}', "resources", ("web", "eu-west-1", "arn"), (1,)),
        ("${resources.web['a}b'].arn}", "resources", ("web", "a}b", "arn"), (1,)),
        ("${resources.web.list[0]}", "resources", ("web", "list", 0), (2,)),
        ("${resources.web.list.0}", "resources", ("web", "list", 0), ()),
        ("${env.HOME}", "env", ("HOME",), ()),
        ("${each.key}", "each", ("key",), ()),
        ("${each.value.cpu}", "each", ("value", "cpu"), ()),
        ("${stage.vars.env}", "stage", ("vars", "env"), ()),
        ("${release.version}", "release", ("version",), ()),
    ],
)
def test_parse_reference(text: str, root: str, path: tuple[str | int, ...], indexes: tuple[int, ...]) -> None:
    (ref,) = parse_template(text)
    assert isinstance(ref, Reference)
    assert (ref.root, ref.path, ref.indexes, ref.text) == (root, path, indexes, text)


def test_resource_target_tells_instance_key_from_attribute() -> None:
    (keyed,) = find_refs("${resources.web[eu].arn}")
    (plain,) = find_refs("${resources.web.eu.arn}")
    assert keyed.resource_target() == ("web", "eu", ("arn",))
    assert plain.resource_target() == ("web", None, ("eu", "arn"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${var.name", "unterminated"),
        ("${nope.x}", "unknown root `nope`"),
        ("${var.a b}", "cannot parse"),
        ("${}", "is not a reference"),
        ("${var.x[}", "cannot parse"),
    ],
)
def test_malformed_templates(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        parse_template(text)


def test_find_refs_walks_containers_in_order() -> None:
    value = {"a": ["${var.name}-${var.count}", {"b": "${resources.web.id}"}], "c": 5, "d": "plain $ text"}
    assert [r.text for r in find_refs(value)] == ["${var.name}", "${var.count}", "${resources.web.id}"]


def test_single_reference_keeps_its_type() -> None:
    assert resolve("${var.regions}", lookup) == ["eu", "us"]
    assert resolve("${var.count}", lookup) == 3
    assert resolve("${var.tags}", lookup) == {"team": "web"}
    assert resolve("${var.tags.team}", lookup) == "web"
    assert resolve("${var.regions[1]}", lookup) == "us"


def test_mixed_string_interpolates() -> None:
    assert resolve("${var.name}-${var.count}-${var.on}", lookup) == "shop-3-true"
    assert resolve("r=${var.regions}", lookup) == 'r=["eu", "us"]'


def test_dollar_dollar_is_a_literal() -> None:
    assert resolve("cost $${price} ${var.name}", lookup) == "cost ${price} shop"
    assert resolve("$${var.name}", lookup) == "${var.name}"
    assert find_refs("$${var.name}") == []
    assert resolve("a $ b $5", lookup) == "a $ b $5"


def test_unknown_propagates_to_the_whole_string() -> None:
    got = resolve({"name": "${var.name}-${resources.web.id}", "id": "${resources.web.id}", "n": 1}, lookup)
    assert got["name"] == Unknown("${var.name}-${resources.web.id}")
    assert got["id"] == Unknown("${resources.web.id}")
    assert got["n"] == 1
    assert contains_unknown(got)
    assert sorted(unknown_paths(got)) == ["id", "name"]


def test_unknown_paths_inside_lists_and_dicts() -> None:
    value = {"a": [1, Unknown("x")], "b": {"c": Unknown("y")}, "d": "known"}
    assert unknown_paths(value) == ["a.1", "b.c"]
    assert not contains_unknown({"a": [1, {"b": "c"}]})


def test_resolve_shares_unchanged_containers() -> None:
    inner = {"x": 1}
    value = {"a": inner, "b": "${var.name}"}
    got = resolve(value, lookup)
    assert got["a"] is inner
    plain = {"a": [1, 2]}
    assert resolve(plain, lookup) is plain


def test_partial_resolution_keeps_other_roots_and_escapes() -> None:
    roots = frozenset({"var"})
    template = "${var.name}-${resources.web.id} $${lit}"
    partial = resolve_partial(template, lookup, roots)
    assert partial == "shop-${resources.web.id} $${lit}"
    # the partial result resolves to the same text as resolving the original at once
    ids = {"${resources.web.id}": "i-1"}

    def final(ref: Reference) -> Any:
        return ids[ref.text] if ref.root == "resources" else lookup(ref)

    assert resolve(partial, final) == resolve(template, final) == "shop-i-1 ${lit}"


def test_partial_resolution_escapes_substituted_values() -> None:
    values = {"v": "a${b}"}

    def var(ref: Reference) -> Any:
        return values[str(ref.path[0])]

    roots = frozenset({"var"})
    assert resolve_partial("${var.v}", var, roots) == "a$${b}"
    assert resolve_partial("x-${var.v}-${resources.r.id}", var, roots) == "x-a$${b}-${resources.r.id}"
    assert resolve(resolve_partial("${var.v}", var, roots), var) == "a${b}"


def test_unknown_equality_and_repr() -> None:
    assert Unknown("a") == Unknown("a") != Unknown("b")
    assert hash(Unknown("a")) == hash(Unknown("a"))
    assert "a" in repr(Unknown("a"))


def test_single_unknown_reference_becomes_unknown_of_the_string() -> None:
    assert resolve(" ${resources.web.id} ".strip(), lambda ref: Unknown("other")) == Unknown("${resources.web.id}")


def test_dynamic_index_binds_to_a_concrete_key() -> None:
    (ref,) = find_refs("${resources.web[each.key].arn}")
    assert ref.dynamic == (1,) and ref.path == ("web", "each.key", "arn")
    assert [r.text for r in ref.inner_refs()] == ["${each.key}"]
    bound = ref.bind(lambda inner: "eu-west-1")
    assert bound.text == '${resources.web["eu-west-1"].arn}'
    assert bound.resource_target() == ("web", "eu-west-1", ("arn",))
    with pytest.raises(ExpressionError, match="is not a key"):
        ref.bind(lambda inner: {"a": 1})
    (quoted,) = find_refs('${resources.web["each.key"].arn}')
    assert quoted.dynamic == ()
