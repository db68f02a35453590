"""The plan functions, called through CEL expressions (as a plan uses them) and directly for edge cases."""

from __future__ import annotations

from typing import Any

import pytest

from cloudorch.errors import ConfigError
from cloudorch.planfile import Reference, Unknown, navigate, resolve
from cloudorch.planfile import functions as fn
from cloudorch.planfile.expressions import ExpressionError

VARS: dict[str, Any] = {
    "name": "Shop",
    "regions": ["eu", "us"],
    "empty": [],
    "tags": {"team": "web", "env": "dev"},
    "more": {"env": "prod", "owner": "ops"},
    "n": 3,
    "ratio": 1.5,
    "on": True,
    "nothing": None,
}


def lookup(ref: Reference) -> Any:
    if ref.root == "var":
        return navigate(VARS[str(ref.path[0])], ref.path[1:], ref.text)
    return Unknown(ref.text)


def ev(text: str) -> Any:
    return resolve(text, lookup)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        # join
        ('${join(var.regions, ",")}', "eu,us"),
        ('${join(var.empty, ",")}', ""),
        ('${join(["a", 1, true], "-")}', "a-1-true"),
        ('${join(["solo"], ", ")}', "solo"),
        # split
        ('${split("a,b,,c", ",")}', ["a", "b", "", "c"]),
        ('${split("", ",")}', []),
        ('${split("abc", "")}', ["a", "b", "c"]),
        ('${split("abc", ",")}', ["abc"]),
        # format
        ('${format("%s-%03d", [var.name, 7])}', "Shop-007"),
        ('${format("%s", var.name)}', "Shop"),
        ('${format("%.2f%%", [var.ratio])}', "1.50%"),
        ('${format("%5s|%-5s|", ["a", "b"])}', "    a|b    |"),
        ('${format("%t %q %x", [true, "x", 255])}', 'true "x" ff'),
        ('${format("%v", [var.tags])}', '{"env": "dev", "team": "web"}'),
        ('${format("no verbs", [])}', "no verbs"),
        # lower, upper
        ("${lower(var.name)}", "shop"),
        ("${upper(var.name)}", "SHOP"),
        ('${upper("")}', ""),
        ('${lower("ÄÖ")}', "äö"),
        # replace
        ('${replace("a-b-c", "-", "_")}', "a_b_c"),
        ('${replace("abc", "x", "_")}', "abc"),
        ('${replace("aaa", "a", "")}', ""),
        # merge
        ("${merge(var.tags, var.more)}", {"team": "web", "env": "prod", "owner": "ops"}),
        ("${merge(var.tags, {})}", {"team": "web", "env": "dev"}),
        ('${merge(var.tags, var.more, {"x": 1})}', {"team": "web", "env": "prod", "owner": "ops", "x": 1}),
        ("${merge([var.tags, var.more])}", {"team": "web", "env": "prod", "owner": "ops"}),
        ("${merge([])}", {}),
        # lookup
        ('${lookup(var.tags, "team", "none")}', "web"),
        ('${lookup(var.tags, "owner", "none")}', "none"),
        ('${lookup(var.tags, "owner", 0)}', 0),
        ('${lookup(var.tags, "owner", null)}', None),
        ('${lookup(var.tags, "env")}', "dev"),
        ('${lookup({1: "one"}, 1, "?")}', "one"),
        # keys, values: sorted by key, whatever the file order
        ("${keys(var.tags)}", ["env", "team"]),
        ("${values(var.tags)}", ["dev", "web"]),
        ("${keys({})}", []),
        ("${values({})}", []),
        # cidrsubnet
        ('${cidrsubnet("10.0.0.0/16", 8, 2)}', "10.0.2.0/24"),
        ('${cidrsubnet("10.0.0.0/16", 8, 255)}', "10.0.255.0/24"),
        ('${cidrsubnet("10.0.0.0/16", 0, 0)}', "10.0.0.0/16"),
        ('${cidrsubnet("10.1.2.3/16", 4, 15)}', "10.1.240.0/20"),
        ('${cidrsubnet("fd00::/48", 16, 3)}', "fd00:0:0:3::/64"),
        ('${[0, 1, 2].map(i, cidrsubnet("10.0.0.0/16", 8, i))}', ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]),
    ],
)
def test_function(text: str, want: Any) -> None:
    assert ev(text) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ('${var.n > 2 ? "many" : "few"}', "many"),
        ("${var.on && var.n == 3}", True),
        ("${!var.on || var.n < 0}", False),
        ("${var.n * 2 + 1}", 7),
        ("${var.ratio * 2.0}", 3.0),
        ("${double(var.n) * var.ratio}", 4.5),
        ('${"eu" in var.regions}', True),
        ("${size(var.regions)}", 2),
        ("${size(var.name)}", 4),
        ("${size(var.tags)}", 2),
        ("${has(var.tags.team)}", True),
        ("${has(var.tags.owner)}", False),
        ("${var.regions.map(r, upper(r))}", ["EU", "US"]),
        ('${var.regions.filter(r, r != "eu")}', ["us"]),
        ('${var.regions.exists(r, r == "us")}', True),
        ('${var.regions.all(r, r == "us")}', False),
        ("${var.empty.all(r, false)}", True),
        ("${var.regions[1]}", "us"),
        ('${var.tags["team"]}', "web"),
        ("${var.nothing == null}", True),
        ("${ {'a': [1, 2]}.a[1] }", 2),
        ('${var.name + "-" + string(var.n)}', "Shop-3"),
        ('${"}" + "{"}', "}{"),
        # mixed with text: the value is written as text
        ("web-${var.n > 2 ? 'big' : 'small'}-${upper(var.regions[0])}", "web-big-EU"),
        ("n=${var.n + 1} on=${!var.on}", "n=4 on=false"),
    ],
)
def test_cel_operators_and_macros(text: str, want: Any) -> None:
    assert ev(text) == want


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('${join(var.regions, 1)}', "no matching overload for 'join'"),
        ("${join([null], \"-\")}", "join: expected a string, got null"),
        ('${replace("abc", "", "x")}', "the text to replace is empty"),
        ('${format("%d", ["x"])}', "format %d: expected a number, got a string"),
        ('${format("%s %s", ["x"])}', "needs more than 1 argument"),
        ('${format("%s", ["x", "y"])}', "uses 1 argument(s), 2 given"),
        ('${format("%d", [1.5])}', "is not a whole number"),
        ('${lookup(var.tags, "owner")}', "lookup: no key 'owner'"),
        ('${merge(var.tags, [1])}', "no matching overload for 'merge'"),
        ('${merge([var.tags, 1])}', "merge: argument 2 is an int, not a map"),
        ('${cidrsubnet("10.0.0.0/16", 8, 256)}', "netnum 256 does not fit in 8 bit(s)"),
        ('${cidrsubnet("10.0.0.0/30", 8, 0)}', "has 2 bits left, 8 asked for"),
        ('${cidrsubnet("nonsense", 8, 0)}', "is not a CIDR prefix"),
        ('${cidrsubnet("10.0.0.0/16", -1, 0)}', "newbits must not be negative"),
        ("${upper(var.n)}", "no matching overload"),
        ("${var.n + var.ratio}", "no matching overload"),
        ("${var.n / 0}", "divide by zero"),
    ],
)
def test_errors_name_the_expression(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        ev(text)
    assert message in info.value.message
    assert text.strip() in info.value.message or text in info.value.message
    assert info.value.hint is not None and "CEL" in info.value.hint


def test_an_unknown_value_makes_what_reads_it_unknown() -> None:
    assert ev("${resources.web.id}") == Unknown("${resources.web.id}")
    assert isinstance(ev("${upper(resources.web.id)}"), Unknown)
    assert isinstance(ev("${var.on ? resources.web.id : 'x'}"), Unknown)
    assert isinstance(ev("${[resources.web.id, 'a']}"), Unknown)
    assert isinstance(ev("id-${resources.web.id}-${var.n}"), Unknown)
    # CEL needs only the branch taken, and absorbs an unknown where the result does not depend on it
    assert ev("${!var.on ? resources.web.id : 'x'}") == "x"
    assert ev("${var.on || resources.web.ready}") is True
    assert ev("${!var.on && resources.web.ready}") is False
    assert ev("${has(var.tags.team) ? var.tags.team : resources.web.team}") == "web"


def test_functions_directly_edge_cases() -> None:
    assert fn.keys({"b": 1, "a": 2, 3: 0}) == [3, "a", "b"]
    assert fn.merge({"a": 1}, None, {"b": 2}) == {"a": 1, "b": 2}
    assert fn.lookup({}, "k", None) is None
    assert fn.format("%03d|%-4d|", [-5, 7]) == "-05|7   |"
    assert fn.format("100%%", []) == "100%"
    with pytest.raises(fn.FunctionError, match="unknown verb"):
        fn.format("%z", [1])
    assert fn.cidrsubnet("192.168.0.0/24", 2, 3) == "192.168.0.192/26"
    with pytest.raises(fn.FunctionError):
        fn.cidrsubnet("10.0.0.0/8", True, 0)  # type: ignore[arg-type]


def test_a_path_into_a_value_that_leads_nowhere_is_an_expression_error() -> None:
    # the paths of references are followed as plain references are (a plan's are checked at load)
    with pytest.raises(ExpressionError, match="no key 'owner'"):
        ev('${var.tags["owner"] + "x"}')
    with pytest.raises(ExpressionError, match="index 5 out of range"):
        ev("${var.regions[5] + 'x'}")
    # indexing inside CEL (a computed index) is CEL's own error
    with pytest.raises(ConfigError, match="index"):
        ev("${var.regions[var.n + 2]}")


def test_a_macro_variable_named_like_a_root_is_refused() -> None:
    with pytest.raises(ExpressionError, match="cannot be named `var`"):
        ev("${var.regions.map(var, var)}")
