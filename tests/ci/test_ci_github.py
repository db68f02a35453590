"""action.yml on GitHub Actions: its run step folds cloudorch's output into a group, and each
located error and policy finding is one annotation on its file and line, run with bash under the
runner's variables (GITHUB_ACTIONS, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, GITHUB_WORKSPACE).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from cihelpers import FIXTURES, HERE, ROOT, Ran, clean_env, github_commands, run_bash

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def run_step(work: Path, **inputs: str) -> tuple[Ran, dict[str, str]]:
    action: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text())
    (step,) = [s for s in action["runs"]["steps"] if s.get("id") == "run"]
    defaults = {k: str(v.get("default", "")) for k, v in action["inputs"].items()}

    def value(expr: str) -> str:
        def one(m: re.Match[str]) -> str:
            e = m.group(1)
            if e.startswith("inputs."):
                name = e.removeprefix("inputs.")
                return inputs.get(name.replace("-", "_"), defaults[name])
            if e == "runner.temp":
                return str(work / "runner-temp")
            raise AssertionError(e)

        return EXPR.sub(one, expr)

    out, summary = work / "github-output", work / "summary.md"
    out.write_text("")
    env = clean_env(GITHUB_ACTIONS="true", CI="true", GITHUB_WORKSPACE=str(work), GITHUB_OUTPUT=str(out),
                    GITHUB_STEP_SUMMARY=str(summary), RUNNER_TEMP=str(work / "runner-temp"))  # fmt: skip
    env.update({k: value(str(v)) for k, v in step["env"].items()})
    ran = run_bash(step["run"], work, env)
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    return ran, outputs


@pytest.fixture
def work(tmp_path: Path) -> Path:
    for src in (FIXTURES / "bad_property.yaml", FIXTURES / "policed.yaml", *(HERE / "fixtures").glob("*.yaml")):
        shutil.copy(src, tmp_path / src.name)
    return tmp_path


def test_a_plan_file_error_is_one_annotation_on_its_line_inside_the_group(work: Path) -> None:
    ran, outputs = run_step(work, command="plan", plan="bad_property.yaml")
    assert ran.code == 1 and outputs["exit-code"] == "1"
    commands = github_commands(ran.stdout)
    assert [c.name for c in commands] == ["group", "endgroup", "error"]
    assert commands[0].data == "cloudorch plan"
    located = [c.props for c in github_commands(ran.log) if c.name == "error" and "file" in c.props]
    assert [(p["file"], p["line"], p["col"]) for p in located] == [("bad_property.yaml", "8", "7")]


def test_a_policy_finding_is_annotated_on_the_resource(work: Path) -> None:
    ran, outputs = run_step(work, command="plan", plan="policed.yaml")
    assert ran.code == 3 and outputs["exit-code"] == "3"
    located = [c.props for c in github_commands(ran.log) if "file" in c.props]
    assert [(p["file"], p["line"], p["title"]) for p in located] == [
        ("policed.yaml", "11", "cloudorch policy: no-tmp-files")
    ]


@pytest.mark.parametrize("plan", ["hostile_values.yaml", "hostile_error.yaml"])
def test_hostile_values_change_nothing_in_the_runner(work: Path, plan: str) -> None:
    ran, outputs = run_step(work, command="plan", plan=plan)
    names = [c.name for c in github_commands(ran.log)]
    extra = ["error", "error"] if plan == "hostile_error.yaml" else []  # the located error, then the step's
    assert sorted(names) == sorted(["group", "endgroup", *extra]), ran.log
    assert set(outputs) == {"exit-code", "has-changes", "plan-json", "sarif-file"}
