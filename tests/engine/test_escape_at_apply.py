"""A literal `$${…}` beside a value known only after apply: the plan stores the property as a
template that apply resolves again, so the escape must survive that second resolution exactly
once. The user sees the literal `${…}` in the final value: never evaluated, never a doubled `$`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

PLAN = """\
version: 1
name: escapes
resources:
  a:
    type: core.null
    properties:
      triggers: {{gen: "{k}"}}
  b:
    type: core.null
    properties:
      values:
        ref: "${{resources.a.id}}"
        own: "$${{resources.a.id}}"
        foreign: "$${{foo.bar}}"
        mixed: "x-$${{var.y}}-z"
        both: "${{resources.a.id}}/$${{env.HOME}}"
        deep: ["$${{resources.a.id}}", {{lit: "$${{x}}", ref: "${{resources.a.id}}"}}]
"""

WANT = {
    "own": "${resources.a.id}",
    "foreign": "${foo.bar}",
    "mixed": "x-${var.y}-z",
    "deep": ["${resources.a.id}", {"lit": "${x}", "ref": None}],
}


def _values(cli: Any, plan: Path) -> dict[str, Any]:
    result = cli("state", "show", str(plan), "b", "--json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    return dict(doc.get("properties", doc)["values"])


def _id(cli: Any, plan: Path) -> str:
    result = cli("state", "show", str(plan), "a", "--json")
    assert result.code == 0, result.err
    return str(json.loads(result.out)["id"])


def _check(values: dict[str, Any], k: str) -> None:
    """`k`: the id of `a` now."""
    for key, want in WANT.items():
        if key == "deep":
            assert values[key] == [want[0], {"lit": "${x}", "ref": k}]
        else:
            assert values[key] == want, key
    assert values["ref"] == k
    assert values["both"] == k + "/${env.HOME}"


@pytest.mark.parametrize("action", ["create", "update"])
def test_escapes_survive_the_resolution_at_apply(cli: Any, tmp_path: Path, action: str) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(k="one"))
    first = cli("apply", str(plan), "--auto-approve")
    assert first.code == 0, first.err
    _check(_values(cli, plan), _id(cli, plan))
    if action == "update":
        # `a` is replaced, so its id is unknown at plan: `b` is an update that resolves its
        # whole `values` map again at apply
        plan.write_text(PLAN.format(k="two"))
        second = cli("apply", str(plan), "--auto-approve")
        assert second.code == 0, second.err
        _check(_values(cli, plan), _id(cli, plan))
    again = cli("plan", str(plan), "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
