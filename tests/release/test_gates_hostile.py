"""Release gates against hostile values: command lines split before substitution, http(s) only,
URLs masked, references resolved or refused at `validate`, and `--dry-run` running no command."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Result = Any  # the `run` fixture's result (tests/release/conftest.py)

MONDAY_MORNING = "2026-11-23T09:30:00Z"

PLAN = """\
version: 1
name: gated
variables:
  version: {{type: string, default: "1.0.0"}}
  arg: {{type: string, default: "plain"}}
  url: {{type: string, default: "http://127.0.0.1:9/health"}}
stages:
  dev: {{}}
  prod:
    needs: [dev]
    vars: {{color: blue}}
    gates:
{gates}
release:
  version: ${{var.version}}
resources:
  app:
    type: core.null
    properties: {{values: {{v: "${{release.version}}"}}}}
"""

#: a command gate that records its argv (one JSON line per run) next to the plan
RECORD = f"{sys.executable} record.py"


def _plan(tmp_path: Path, *gates: str) -> Path:
    (tmp_path / "record.py").write_text(
        "import json, sys\nwith open('argv.jsonl', 'a') as f:\n    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.format(gates="\n".join(f"      - {g}" for g in gates)))
    return path


def _runs(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "argv.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _deploy(run: Callable[..., Result], plan: Path) -> None:
    got = run("release", "deploy", str(plan), "--stage", "dev", "--version", "1.0.0", "--auto-approve")
    assert got.code == 0, got.err


def test_a_value_stays_one_argument(run: Callable[..., Result], tmp_path: Path) -> None:
    gate = (
        "{health: {command: {run: '"
        + RECORD
        + ' "${var.arg}" ${stage.name} ${stage.vars.color} v=${release.version} $${literal}\'}}}'
    )
    plan = _plan(tmp_path, gate)
    _deploy(run, plan)
    hostile = "x --override soak; touch pwned 'unmatched"
    got = run("release", "promote", str(plan), "--to", "prod", "--var", f"arg={hostile}", "--auto-approve", "--json")
    assert got.code == 0, got.err + got.out
    assert _runs(tmp_path) == [[hostile, "prod", "blue", "v=1.0.0", "${literal}"]]
    assert not (tmp_path / "pwned").exists()


def test_dry_run_runs_no_command(run: Callable[..., Result], tmp_path: Path) -> None:
    plan = _plan(tmp_path, "{health: {command: {run: '" + RECORD + " dry'}}}")
    _deploy(run, plan)
    got = run("release", "promote", str(plan), "--to", "prod", "--dry-run", "--json", at=MONDAY_MORNING)
    assert got.code == 0, got.err
    assert _runs(tmp_path) == []
    (verdict,) = [g for g in got.json()["gates"] if g["gate"] == "health.command"]
    assert "not run" in verdict["detail"]


@pytest.mark.parametrize(
    ("gate", "message", "line"),
    [
        ("{health: {command: {run: \"./check.sh 'unmatched\"}}}", "cannot split the command line", 13),
        ("{health: {http: {url: 'file:///etc/hostname'}}}", "is not an http or https URL", 13),
        ("{health: {http: {url: '${var.url}'}}}", "is not an http or https URL", 13),
        ("{health: {command: {run: [./check.sh, '${stage.vars.nope}']}}}", "no key 'nope'", 13),
        ("{health: {http: {url: 'https://x/${release.missing}'}}}", "no key 'missing'", 13),
        ("{approval: {min: 1, from: ['${stage.name}']}}", "is not resolved in a approval gate", 13),
    ],
)
def test_validate_refuses_bad_gates_with_a_location(
    run: Callable[..., Result], tmp_path: Path, gate: str, message: str, line: int
) -> None:
    plan = _plan(tmp_path, gate)
    got = run("validate", str(plan), "--var", "url=ftp://files.example.com/x", "--json")
    assert got.code == 1, got.out
    error = got.json()
    assert message in error["message"]
    assert error["location"]["file"] == str(plan) and error["location"]["line"] == line
    assert "Traceback" not in got.out + got.err


def test_urls_with_tokens_are_masked_in_output_and_ledger(run: Callable[..., Result], tmp_path: Path) -> None:
    secret = "tok3n-abc123"
    url = f"http://user:{secret}@127.0.0.1:9/h?token={secret}"
    plan = _plan(tmp_path, f"{{health: {{http: {{url: '{url}', retries: 1}}}}}}")
    _deploy(run, plan)
    got = run("release", "promote", str(plan), "--to", "prod", "--auto-approve", "--json")
    assert got.code == 3
    detail = next(g["detail"] for g in got.json()["gates"] if g["gate"] == "health.http")
    assert "http://***@127.0.0.1:9/h?***" in detail
    assert secret not in got.out + got.err
    history = run("release", "history", str(plan), "--json")
    assert history.code == 0 and "refuse" in history.out
    assert secret not in history.out
    for written in (tmp_path / ".cloudorch").rglob("*"):
        if written.is_file():
            assert secret.encode() not in written.read_bytes(), written
