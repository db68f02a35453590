"""action.yml: it loads, every input and step output it uses is declared, and its steps' scripts
work — run here with bash the way a GitHub runner runs a composite step, against a temporary
$GITHUB_STEP_SUMMARY and $GITHUB_OUTPUT, on `core` plans (no cloud, no network).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@pytest.fixture(scope="module")
def action() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text())
    return doc


def test_it_is_a_composite_action_with_the_documented_interface(action: dict[str, Any]) -> None:
    assert action["runs"]["using"] == "composite"
    assert {"command", "plan", "stage", "args", "working-directory"} <= set(action["inputs"])
    assert {"exit-code", "has-changes", "plan-json"} <= set(action["outputs"])
    assert action["inputs"]["plan"]["required"] is True


def test_every_input_and_step_output_it_uses_is_declared(action: dict[str, Any]) -> None:
    text = (ROOT / "action.yml").read_text()
    used_inputs = set(re.findall(r"inputs\.([A-Za-z0-9_-]+)", " ".join(EXPR.findall(text))))
    assert used_inputs <= set(action["inputs"]), used_inputs - set(action["inputs"])
    assert set(action["inputs"]) <= used_inputs, "declared but never used"
    step_ids = {s.get("id") for s in action["runs"]["steps"]}
    for step_id, name in re.findall(r"steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)", text):
        assert step_id in step_ids
        produced = "\n".join(str(s.get("run", "")) for s in action["runs"]["steps"] if s.get("id") == step_id)
        assert f"{name}=" in produced, f"steps.{step_id} never sets {name}"
    for step in action["runs"]["steps"]:
        if "run" in step:
            # inputs reach scripts through env only: nothing is pasted into the shell text
            assert "${{" not in step["run"]


@dataclass
class StepRun:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str


class Runner:
    """Runs action.yml's `run:` steps like a GitHub runner: `bash --noprofile --norc -eo pipefail`."""

    def __init__(self, action: dict[str, Any], work: Path) -> None:
        self.action = action
        self.work = work
        self.temp = work / "runner-temp"
        self.temp.mkdir(exist_ok=True)

    def _value(self, expr: str, inputs: dict[str, str], steps: dict[str, dict[str, str]]) -> str:
        def one(m: re.Match[str]) -> str:
            e = m.group(1)
            if e.startswith("inputs."):
                name = e.removeprefix("inputs.")
                return inputs.get(name, str(self.action["inputs"][name].get("default", "")))
            if e == "github.action_path":
                return str(ROOT)
            if e == "runner.temp":
                return str(self.temp)
            if e.startswith("steps."):
                _, step_id, _, name = e.split(".")
                return steps.get(step_id, {}).get(name, "")
            raise AssertionError(f"unknown expression {e}")

        return EXPR.sub(one, expr)

    def run(self, **given: str) -> dict[str, StepRun]:
        inputs = {k.replace("_", "-"): v for k, v in given.items()}
        inputs.setdefault("install", "false")  # cloudorch is already installed here: never pip
        results: dict[str, StepRun] = {}
        outputs: dict[str, dict[str, str]] = {}
        for step in self.action["runs"]["steps"]:
            if "run" not in step:
                continue
            out_file, summary_file = self.work / "github-output", self.work / "step-summary.md"
            out_file.write_text("")
            summary_file.write_text("")
            env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDORCH_")}
            env.update({k: self._value(str(v), inputs, outputs) for k, v in (step.get("env") or {}).items()})
            env.update(
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
                GITHUB_OUTPUT=str(out_file),
                GITHUB_STEP_SUMMARY=str(summary_file),
                RUNNER_TEMP=str(self.temp),
                CI="true",
            )
            cwd = self.work / self._value(str(step.get("working-directory", ".")), inputs, outputs)
            script = self.work / f"step-{step['id']}.sh"
            script.write_text(step["run"])
            proc = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            produced = dict(line.split("=", 1) for line in out_file.read_text().splitlines() if "=" in line)
            outputs[step["id"]] = produced
            results[step["id"]] = StepRun(proc.returncode, proc.stdout, proc.stderr, produced, summary_file.read_text())
            if proc.returncode != 0:
                break
        return results


@pytest.fixture
def runner(action: dict[str, Any], tmp_path: Path) -> Runner:
    for name in ("lifecycle.yaml", "policed.yaml"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    return Runner(action, tmp_path)


def test_plan_then_apply_the_saved_plan_then_a_clean_plan(runner: Runner) -> None:
    planned = runner.run(command="plan", plan="lifecycle.yaml")["run"]
    assert planned.code == 0, planned.stdout + planned.stderr
    assert planned.outputs["exit-code"] == "2" and planned.outputs["has-changes"] == "true"
    assert planned.summary.startswith("<!-- cloudorch-plan: ")
    saved = Path(planned.outputs["plan-json"])
    assert json.loads(saved.read_text())["format_version"] == 1

    applied = runner.run(command="apply", plan=str(saved))["run"]
    assert applied.code == 0, applied.stdout + applied.stderr
    assert applied.outputs["exit-code"] == "0"
    assert applied.summary.startswith("### cloudorch apply: ✅ applied")
    assert json.loads(Path(applied.outputs["plan-json"]).read_text())["applied"] is True

    clean = runner.run(command="plan", plan="lifecycle.yaml", args="--var owner=web --parallelism 4")["run"]
    assert clean.outputs["has-changes"] == "false", clean.stdout + clean.stderr
    assert "**No changes.**" in clean.summary
    # `args` is shell-quoted: a value with a space arrives as one argument
    quoted = runner.run(command="plan", plan="lifecycle.yaml", args="--var 'owner=web team'")["run"]
    assert quoted.outputs["has-changes"] == "true", quoted.stdout + quoted.stderr


def test_policy_denial_fails_the_step_and_writes_sarif(runner: Runner) -> None:
    denied = runner.run(command="plan", plan="policed.yaml", upload_sarif="true")["run"]
    assert denied.code == 3
    assert "denied by policy" in denied.stdout
    assert denied.outputs["exit-code"] == "3"
    assert "❌ denied" in denied.summary
    sarif = json.loads(Path(denied.outputs["sarif-file"]).read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]


def test_install_step_finds_the_providers_a_plan_needs(runner: Runner) -> None:
    shutil.copy(ROOT / "plans" / "multi-cloud.yaml", runner.work / "multi-cloud.yaml")
    install = runner.run(command="plan", plan="multi-cloud.yaml", working_directory=".")["install"]
    assert install.code == 0, install.stderr
    assert install.outputs["providers"] == "aws azure gcp"
    core_only = runner.run(command="plan", plan="lifecycle.yaml")["install"]
    assert core_only.outputs["providers"] == ""


def test_unknown_command_fails_with_an_error_annotation(runner: Runner) -> None:
    bad = runner.run(command="deploy", plan="lifecycle.yaml")["run"]
    assert bad.code == 1
    assert "::error::command must be plan, apply, drift or promote" in bad.stdout


def test_promote_needs_a_stage_and_a_blocking_gate_fails_the_step(runner: Runner) -> None:
    shutil.copy(FIXTURES / "release_two_stage.yaml", runner.work / "app.yaml")
    no_stage = runner.run(command="promote", plan="app.yaml")["run"]
    assert no_stage.code == 1 and "needs the stage input" in no_stage.stdout
    env = {**os.environ, "CI": "true"}
    deployed = subprocess.run(
        [sys.executable, "-m", "cloudorch", "release", "deploy", "app.yaml", "--stage", "dev", "--version", "1.0.0",
         "--auto-approve"],
        cwd=runner.work, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    # prod's http health gate points at a closed port: the promotion is refused whatever the hour
    promoted = runner.run(command="promote", plan="app.yaml", stage="prod")["run"]
    assert promoted.code == 3, promoted.stdout + promoted.stderr
    assert promoted.outputs["exit-code"] == "3"
    assert "release promote to `prod`: exit 3" in promoted.summary and "health.http" in promoted.summary
