"""Contract 2.2: `matches_filter` and the optional `lookup` (a type without it still works)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudorch.errors import ConfigError
from cloudorch.provider.contract import LookupQuery, Observed, ProviderContext, matches_filter
from cloudorch.provider.core import CoreProvider

SEEN = Observed("vpc-1", {"cidr_block": "10.0.0.0/16", "tags": {"Name": "shared", "team": "net"}}, {"arn": "arn:x"})


@pytest.mark.parametrize(
    ("flt", "match"),
    [
        ({}, True),
        ({"tags": {"Name": "shared"}}, True),
        ({"tags": {"Name": "shared", "team": "net"}}, True),
        ({"tags": {"Name": "other"}}, False),
        ({"tags": {"missing": "x"}}, False),
        ({"cidr_block": "10.0.0.0/16", "arn": "arn:x"}, True),
        ({"id": "vpc-1"}, True),
        ({"id": "vpc-2"}, False),
        ({"cidr_block": "10.1.0.0/16"}, False),
        ({"nowhere": 1}, False),
        ({"cidr_block": {"a": 1}}, False),
    ],
)
def test_matches_filter(flt: dict[str, object], match: bool) -> None:
    assert matches_filter(SEEN, flt) is match


def test_a_type_without_lookup_says_so() -> None:
    provider = CoreProvider(CoreProvider.Config(), "core", ProviderContext(plan_dir=Path.cwd()))
    rt = provider.resource_type("core.null")
    assert rt.can_lookup is False
    with pytest.raises(ConfigError, match=r"core\.null does not support lookup"):
        rt.lookup("data.x", LookupQuery(id="x"))
