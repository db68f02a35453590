"""The one address parser: canonical text, containment, rebasing a move, globs."""

from __future__ import annotations

import pytest

from cloudorch.planfile.addresses import AddressError, canonical, glob_pattern, parse_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("web", "web"),
        ("web[eu]", "web[eu]"),
        ('web["eu-west-1"]', "web[eu-west-1]"),
        ("web['a b']", "web[a b]"),
        ("module.net", "module.net"),
        ("module.net[eu].vpc", "module.net[eu].vpc"),
        ('module.net["eu"].module.sub.vpc[0]', "module.net[eu].module.sub.vpc[0]"),
    ],
)
def test_canonical(text: str, expected: str) -> None:
    assert canonical(text) == expected


@pytest.mark.parametrize("text", ["", "web.x", "web[", "web[eu]x", "module.", "1web", "web[eu].vpc"])
def test_not_addresses(text: str) -> None:
    with pytest.raises(AddressError):
        parse_address(text)


def test_contains_and_rebase() -> None:
    web, site = parse_address("web"), parse_address("site")
    assert web.contains(parse_address("web[eu]")) and web.contains(web)
    assert not web.contains(parse_address("webx")) and not web.contains(parse_address("module.web.x"))
    assert str(web.rebase(parse_address("web[eu]"), site)) == "site[eu]"
    with pytest.raises(AddressError):
        web.rebase(parse_address("web[eu]"), parse_address("site[x]"))
    net = parse_address("module.net")
    inner = parse_address("module.net[eu].vpc")
    assert net.contains(inner) and not parse_address("module.net[us]").contains(inner)
    assert str(net.rebase(inner, parse_address("module.network"))) == "module.network[eu].vpc"
    assert str(parse_address("module.net[eu]").rebase(inner, parse_address("module.net[europe]"))) == (
        "module.net[europe].vpc"
    )
    # a keyed step stands for that key only; the unkeyed last step of a resource holds no deeper steps
    assert not parse_address("web[eu]").contains(parse_address("web[us]"))


def test_globs_take_brackets_literally() -> None:
    assert glob_pattern("web_*").match("web_b[eu]")
    assert glob_pattern("web[*]").match("web[eu]") and not glob_pattern("web[*]").match("webx")
    assert not glob_pattern("web[e]").match("webe")
