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


# --------------------------------------------------------------------------- hostile inputs

HOSTILE_VERSIONS = [
    "1.0.0 --override soak --reason x --var env=prod",
    "1.0'",
    "--override",
    "1.0.0\n::error::injected",
    "$(touch pwned)",
    "",
]


@pytest.mark.parametrize("version", [v for v in HOSTILE_VERSIONS if v])
def test_a_malformed_version_fails_the_step_before_cloudorch_runs(runner: Runner, version: str) -> None:
    shutil.copy(FIXTURES / "release_two_stage.yaml", runner.work / "app.yaml")
    got = runner.run(command="promote", plan="app.yaml", stage="prod", version=version)["run"]
    assert got.code == 1, got.stdout + got.stderr
    assert "::error::the version input must be SemVer" in got.stdout
    assert "injected" not in got.stdout  # the value is never echoed into a workflow command
    assert "exit-code" not in got.outputs  # cloudorch never ran
    assert not (runner.work / "pwned").exists()
    assert not (runner.work / ".cloudorch").exists()


@pytest.mark.parametrize("version", ["1.4.2", "v2.0.0-rc.1+build.5", "build-1234", "2026.12.05"])
def test_a_well_formed_version_reaches_promote_as_one_argument(runner: Runner, version: str) -> None:
    shutil.copy(FIXTURES / "release_two_stage.yaml", runner.work / "app.yaml")
    got = runner.run(command="promote", plan="app.yaml", stage="prod", version=version)["run"]
    # the version never ran in dev: cloudorch itself refuses, naming the version it was given
    assert got.outputs.get("exit-code") not in (None, "0"), got.stdout + got.stderr
    assert version in got.summary


def test_args_that_cannot_be_split_fail_the_step(runner: Runner) -> None:
    got = runner.run(command="plan", plan="lifecycle.yaml", args="--var owner=web'")["run"]
    assert got.code == 1
    assert "::error::the args input cannot be split into arguments (ValueError: No closing quotation)" in got.stdout
    assert "exit-code" not in got.outputs


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"command": "plan", "plan": "--help"}, "the plan input must be a file path"),
        ({"command": "plan", "plan": "lifecycle.yaml", "stage": "prod --auto-approve"}, "the stage input must be"),
        ({"command": "plan", "plan": "lifecycle.yaml", "version": "1.0.0"}, "the version input is for command promote"),
        ({"command": "plan\n::error::x", "plan": "lifecycle.yaml"}, "command must be plan, apply, drift or promote"),
    ],
)
def test_other_malformed_inputs_fail_the_step(runner: Runner, inputs: dict[str, str], message: str) -> None:
    step = runner.run(**inputs)
    got = step.get("run") or step["install"]
    assert got.code == 1, got.stdout + got.stderr
    assert f"::error::{message}" in got.stdout
    assert "\n::error::x" not in got.stdout


# --------------------------------------------------------------------------- example workflows

WORKFLOWS = sorted(
    [*(ROOT / "examples" / "ci" / "github").glob("*.yml"), *(ROOT / ".github" / "workflows").glob("*.yml")]
)
BOT = {"type": "Bot", "login": "github-actions[bot]"}
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _workflow(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def _steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in doc["jobs"].values() for s in job.get("steps", [])]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_pin_actions_and_grant_per_job(path: Path) -> None:
    doc = _workflow(path)
    top = doc.get("permissions")
    assert top in ({}, {"contents": "read"}), f"{path.name}: top-level permissions {top}"
    for name, job in doc["jobs"].items():
        assert "permissions" in job, f"{path.name}: job {name} does not say what it needs"
    for step in _steps(doc):
        uses = step.get("uses")
        if uses and not uses.startswith(("./", "your-org/")):
            assert SHA_PIN.match(uses), f"{path.name}: {uses} is not pinned by commit SHA"
        if "run" in step:
            assert "${{" not in step["run"], f"{path.name}: an expression pasted into a script"
    for action_step in yaml.safe_load((ROOT / "action.yml").read_text())["runs"]["steps"]:
        if "uses" in action_step:
            assert SHA_PIN.match(action_step["uses"]), action_step["uses"]


def test_the_pull_request_plan_job_only_reads() -> None:
    doc = _workflow(ROOT / "examples" / "ci" / "github" / "plan-apply.yml")
    plan = doc["jobs"]["plan"]["permissions"]
    assert {k: v for k, v in plan.items() if v == "write"} == {"id-token": "write"}
    assert plan["contents"] == "read"
    assert doc["jobs"]["comment"]["permissions"] == {"pull-requests": "write"}
    assert "security-events" in doc["jobs"]["report"]["permissions"]
    # the jobs that may write to GitHub never check out or run the pull request's code
    for name in ("comment", "report"):
        assert not any("checkout" in str(s.get("uses", "")) for s in doc["jobs"][name]["steps"])
        assert not any("cloudorch" in str(s.get("uses", "")) for s in doc["jobs"][name]["steps"])


def _bash_step(path: Path, job: str, index: int) -> dict[str, Any]:
    step: dict[str, Any] = _workflow(path)["jobs"][job]["steps"][index]
    return step


@pytest.mark.parametrize("version", [v for v in HOSTILE_VERSIONS if v])
def test_promote_example_checks_its_inputs(tmp_path: Path, version: str) -> None:
    step = _bash_step(ROOT / "examples" / "ci" / "github" / "promote.yml", "check", 0)
    script = tmp_path / "check.sh"
    script.write_text(step["run"])
    env = {"PATH": os.environ["PATH"], "STAGE": "prod", "VERSION": version}
    got = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert got.returncode == 1 and "::error::the version input must be SemVer" in got.stdout
    good = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=tmp_path,
                          env={**env, "VERSION": "1.4.2"}, capture_output=True, text=True, timeout=30)  # fmt: skip
    assert good.returncode == 0, good.stdout + good.stderr


COMMENT_HARNESS = r"""
const fs = require('fs');
const calls = [];
const comments = JSON.parse(process.env.COMMENTS);
const github = {
  paginate: async () => comments,
  rest: { issues: {
    listComments: () => {},
    updateComment: async (a) => calls.push(['update', a.comment_id]),
    createComment: async () => calls.push(['create']),
  } },
};
const context = { repo: { owner: 'o', repo: 'r' }, issue: { number: 7 } };
const core = { notice: () => calls.push(['notice']) };
const script = fs.readFileSync(process.env.SCRIPT, 'utf8');
(async () => {
  await eval('(async () => {' + script + '\n})()');
  console.log(JSON.stringify(calls));
})();
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the github-script step")
@pytest.mark.parametrize(
    ("summary", "comments", "expected"),
    [
        ("", [{"id": 1, "body": "anything", "user": BOT}], [["notice"]]),
        ("no marker\n", [], [["notice"]]),
        (
            "<!-- cloudorch-plan: shop -->\nplan",
            [
                {"id": 1, "body": "<!-- cloudorch-plan: shop -->\nforged", "user": {"type": "User", "login": "eve"}},
                {"id": 2, "body": "<!-- cloudorch-plan: other -->\nx", "user": BOT},
            ],
            [["create"]],
        ),
        (
            "<!-- cloudorch-plan: shop -->\nplan",
            [{"id": 3, "body": "<!-- cloudorch-plan: shop -->\nold", "user": BOT}],
            [["update", 3]],
        ),
    ],
)
def test_the_comment_step_updates_only_the_bots_marked_comment(
    tmp_path: Path, summary: str, comments: list[dict[str, Any]], expected: list[list[Any]]
) -> None:
    step = _bash_step(ROOT / "examples" / "ci" / "github" / "plan-apply.yml", "comment", 1)
    (tmp_path / "script.js").write_text(step["with"]["script"])
    (tmp_path / "harness.js").write_text(COMMENT_HARNESS)
    (tmp_path / "plan").mkdir()
    if summary:
        (tmp_path / "plan" / "summary.md").write_text(summary)
    env = {"PATH": os.environ["PATH"], "SCRIPT": str(tmp_path / "script.js"), "COMMENTS": json.dumps(comments)}
    got = subprocess.run(["node", str(tmp_path / "harness.js")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=30)  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == expected
