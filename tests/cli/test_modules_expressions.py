"""Expressions, locals and module addresses together: a module's resources read each other inside
CEL expressions (`${upper(resources.a.id)}` becomes `resources["module.m[one].a"]` after expansion)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODULE = """\
variables:
  n: {type: number}
locals:
  label: "${'item-' + string(var.n)}"
resources:
  a: {type: core.null, properties: {values: {n: "${var.n}", label: "${local.label}"}}}
  b:
    type: core.null
    properties: {values: {size: "${var.n > 1 ? 'big' : 'small'}", from_a: "${upper(resources.a.id)}"}}
outputs:
  a_id: "${resources.a.id}"
"""

PLAN = """\
version: 1
name: mx
modules:
  m:
    source: ./mods/m
    for_each: {one: 1, two: 2}
    inputs: {n: "${each.value}"}
resources:
  top: {type: core.null, properties: {values: {id: "${lower(modules.m[one].a_id)}"}}}
"""


def test_expressions_inside_a_module_read_its_resources(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "mods" / "m").mkdir(parents=True)
    (tmp_path / "mods" / "m" / "module.yaml").write_text(MODULE)
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    assert cli("apply", str(plan), "--auto-approve").code == 0
    assert cli("plan", str(plan), "--detailed-exitcode").code == 0  # nothing left to change
    shown = cli("state", "show", str(plan), "module.m[two].b", "--json")
    values = json.loads(shown.out)["properties"]["values"]
    a_id = json.loads(cli("state", "show", str(plan), "module.m[two].a", "--json").out)["id"]
    assert values == {"size": "big", "from_a": a_id.upper()}
    one = json.loads(cli("state", "show", str(plan), "module.m[one].a", "--json").out)
    assert one["properties"]["values"] == {"n": 1, "label": "item-1"}
    top = json.loads(cli("state", "show", str(plan), "top", "--json").out)
    assert top["properties"]["values"] == {"id": one["id"].lower()}
