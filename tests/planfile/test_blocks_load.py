"""Loading `data:`, `moved:` and `imports:`: located errors for every way they can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudorch.errors import ConfigError
from cloudorch.planfile import load_plan_text

HEAD = "version: 1\nresources:\n  web: {type: core.null, for_each: [a, b]}\n"


def load(body: str) -> object:
    return load_plan_text(HEAD + body, Path("p.yaml"), env={"ZONE": "Z1"})


def error(body: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(body)
    return info.value


def test_valid_blocks_load() -> None:
    plan = load(
        "variables:\n  ids: {type: map, default: {x: b-x, y: b-y}}\n"
        "data:\n  zone: {type: aws.route53_zone, id: '${env.ZONE}'}\n"
        "moved:\n  - {from: 'web[\"a\"]', to: 'web[c]'}\n"
        "imports:\n  - {for_each: '${var.ids}', to: 'bucket[${each.key}]', id: '${each.value}', type: aws.s3_bucket}\n"
        "outputs:\n  z: '${data.zone.name}'\n"
    )
    assert plan.data["zone"].id == "Z1" and plan.data["zone"].provider == "aws"  # type: ignore[attr-defined]
    assert [(m.src, m.dst) for m in plan.moves] == [("web[a]", "web[c]")]  # type: ignore[attr-defined]
    assert [(i.to, i.id) for i in plan.imports] == [("bucket[x]", "b-x"), ("bucket[y]", "b-y")]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "message", "line"),
    [
        ("data:\n  v: {type: aws.vpc}\n", "give `id` or `filter`", 5),
        ("data:\n  v: {type: aws.vpc, id: x, colour: red}\n", "unknown field `colour`", 5),
        ("data:\n  v: {type: aws.vpc, id: '${resources.web.id}'}\n", "cannot be used here", 5),
        ("data:\n  v: {type: aws.vpc, id: x}\noutputs:\n  o: '${data.w.id}'\n", "data source `w`, which is not", 7),
        ("data:\n  v: {type: aws.vpc, id: x, provider: gcp}\n", "cannot use provider block `gcp`", 5),
        ("moved:\n  - {from: 'web[', to: x}\n", "is not an address", 5),
        ("moved:\n  - {from: web, to: web}\n", "to itself", 5),
        ("moved:\n  - {from: a, to: b}\n  - {from: a, to: c}\n", "a is moved twice", 6),
        ("moved:\n  - {from: module.a, to: b}\n", "one names a module", 5),
        ("imports:\n  - {to: site, id: x}\n", "needs `type:`", 5),
        ("imports:\n  - {to: 'web[a]', id: x, type: aws.vpc}\n", "resource `web` is core.null", 5),
        ("imports:\n  - {to: 'web[a]', id: x}\n  - {to: 'web[\"a\"]', id: y}\n", "imported twice", 6),
        ("imports:\n  - {to: 'web[${each.key}]', id: x}\n", "needs `for_each`", 5),
        ("imports:\n  - {to: module.m, id: x, type: aws.vpc}\n", "must name a resource instance", 5),
        ("imports:\n  - {to: s, id: x, type: aws.vpc, for_each: 3}\n", "for_each must be", 5),
    ],
)
def test_located_errors(body: str, message: str, line: int) -> None:
    err = error(body)
    assert message in err.message, err.message
    assert err.location is not None and err.location.line == line, (err.location, err.message)
