"""The plan file's `stages:` and `${stage.*}`/`${release.*}`: located errors, binding, the graph."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Result = Any  # the `run` fixture's result (tests/release/conftest.py)

BASE = """\
version: 1
name: app
stages:
  dev: {vars: {env: dev}}
  prod:
    needs: dev
    vars: {env: prod}
    gates:
      - approval: {min: 1, from: sre}
release:
  version: "2.0.0"
  groups: {sre: [dana, erin]}
resources:
  app:
    type: core.null
    properties: {values: {env: "${stage.vars.env}", v: "${release.version}"}}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("old", "new", "message", "line"),
    [
        ("- approval: {min: 1, from: sre}", "- aproval: {min: 1}", "unknown gate `aproval`", 9),
        ("{min: 1, from: sre}", "{min: 1, from: ops}", "approval group `ops` is not defined", 9),
        ("{min: 1, from: sre}", "{min: 3, from: sre}", "needs 3 approvers but only 2 may approve", 9),
        ("needs: dev", "needs: dve", "stage `prod` needs `dve`", 6),
        ("${stage.vars.env}", "${stage.vars.region}", "`${stage.vars.region}`: no key 'region' (in stage `dev`)", 16),
        ("dev: {vars: {env: dev}}", "dev: {needs: prod}", "dependency cycle", None),
        ("- approval: {min: 1, from: sre}", "- soak: soon", "'soon' is not a duration", 9),
    ],
)
def test_stage_mistakes_are_located(
    run: Callable[..., Result], tmp_path: Path, old: str, new: str, message: str, line: int | None
) -> None:
    assert old in BASE
    plan = _write(tmp_path, BASE.replace(old, new))
    got = run("validate", str(plan), "--json")
    assert got.code == 1
    err = got.json()
    assert message in err["message"]
    if line is not None:
        assert err["location"]["line"] == line


def test_stage_references_need_stages(run: Callable[..., Result], tmp_path: Path) -> None:
    plan = _write(
        tmp_path,
        'version: 1\nresources:\n  a: {type: core.null, properties: {values: {e: "${stage.name}"}}}\n',
    )
    got = run("validate", str(plan), "--json")
    assert got.code == 1 and "needs a release stage" in got.json()["message"]
    assert got.json()["location"]["line"] == 3

    # without stages, ${release.version} still comes from the plan's release block
    plan = _write(
        tmp_path,
        'version: 1\nrelease: {version: "7.1"}\n'
        'resources:\n  a: {type: core.null, properties: {values: {v: "${release.version}"}}}\n',
    )
    assert run("apply", str(plan), "--auto-approve").code == 0
    shown = run("state", "show", str(plan), "a", "--json").json()
    assert shown["properties"]["values"] == {"v": "7.1"}


def test_graph_shows_stages_and_their_resources(run: Callable[..., Result], tmp_path: Path) -> None:
    plan = _write(tmp_path, BASE)
    got = run("graph", str(plan), "--format", "json")
    assert got.code == 0, got.err
    doc = json.loads(got.out)
    kinds = {n["id"]: n["kind"] for n in doc["nodes"]}
    assert kinds == {"dev": "stage", "prod": "stage", "dev.app": "resource", "prod.app": "resource"}
    edges = {(e["from"], e["to"]) for e in doc["edges"]}
    assert edges == {("dev", "prod"), ("dev", "dev.app"), ("prod", "prod.app")}
    assert "2 resource instance(s)" in run("validate", str(plan)).out  # one per stage


def test_approval_group_and_version_from_release_block(run: Callable[..., Result], tmp_path: Path) -> None:
    plan = _write(tmp_path, BASE)
    assert run("release", "deploy", str(plan), "--stage", "dev", "--version", "2.0.0", "--auto-approve").code == 0
    assert run("release", "approve", str(plan), "--stage", "prod", "--version", "2.0.0", actor="zed").code == 3
    assert run("release", "approve", str(plan), "--stage", "prod", "--version", "2.0.0", actor="erin").code == 0
    got = run("release", "promote", str(plan), "--to", "prod", "--auto-approve", "--json")
    assert got.code == 0, got.err
    values = run("state", "show", str(plan), "app", "--stage", "prod", "--json").json()["properties"]["values"]
    assert values == {"env": "prod", "v": "2.0.0"}
    status = run("release", "status", str(plan)).out
    assert "dev: 2.0.0 since" in status and "prod: 2.0.0" in status
