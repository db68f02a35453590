"""Module addresses and git source parsing: the small grammar other parts rely on."""

from __future__ import annotations

import pytest

from cloudorch.errors import ConfigError, Location
from cloudorch.planfile.modsource import parse_git_source
from cloudorch.planfile.modules import module_address, module_of, module_path


@pytest.mark.parametrize(
    ("address", "path"),
    [
        ("web", []),
        ("web[module.x]", []),
        ("module.net.vpc", ["module.net"]),
        ("module.net[eu].vpc[a]", ["module.net[eu]"]),
        ("module.a[x.y].module.b.r[k.z]", ["module.a[x.y]", "module.a[x.y].module.b"]),
        ("module.a[x].module.b", ["module.a[x]"]),  # the instance `module.b` lives in `module.a[x]`
    ],
)
def test_module_path(address: str, path: list[str]) -> None:
    assert module_path(address) == path
    assert module_of(address) == (path[-1] if path else None)


def test_module_address() -> None:
    assert module_address("", "net", "eu") == "module.net[eu]"
    assert module_address("module.net[eu]", "sub", None) == "module.net[eu].module.sub"


def test_git_sources() -> None:
    where = Location("plan.yaml", 3, 5)
    src = parse_git_source("git+https://example.com/org/mods.git//network/vpc?ref=v1.2.0", where)
    assert (src.repo, src.subdir, src.ref) == ("https://example.com/org/mods.git", "network/vpc", "v1.2.0")
    assert src.key == "git+https://example.com/org/mods.git//network/vpc"
    src = parse_git_source("git+file:///srv/repo.git", where)
    assert (src.repo, src.subdir, src.ref) == ("file:///srv/repo.git", "", None)
    for bad in (
        "git+ftp://x/y.git",
        "git+https://x/y.git//../etc?ref=main",
        "git+https://x/y.git?ref=-upload-pack=evil",
        "git+https://x/y.git?rev=main",
    ):
        with pytest.raises(ConfigError) as exc:
            parse_git_source(bad, where)
        assert exc.value.location == where
