"""The Azure Pipelines steps template (examples/ci/azure-pipelines/cloudorch-steps.yml) and the
pipeline that uses it: every parameter, stage, artifact and output variable they name exists, and
the template's script works, run with bash the way the agent runs a Bash step (`bash --noprofile
--norc FILE`, no `-e`) under the agent's variables, with its log read the way the agent reads it.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from cihelpers import FIXTURES, HERE, ROOT, Ran, azure_commands, azure_groups, clean_env, run_bash

AZURE = ROOT / "examples" / "ci" / "azure-pipelines"
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def _template() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((AZURE / "cloudorch-steps.yml").read_text())
    return doc


def _main_step(doc: dict[str, Any]) -> dict[str, Any]:
    (step,) = [s for s in doc["steps"] if isinstance(s, dict) and s.get("name") == "${{ parameters.name }}"]
    return step


def _params(doc: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    declared = {p["name"]: p for p in doc["parameters"]}
    assert set(given) <= set(declared), set(given) - set(declared)
    values = {}
    for name, p in declared.items():
        assert name in given or "default" in p, f"parameter {name} is required"
        value = given.get(name, p.get("default"))
        if "values" in p:
            assert value in p["values"], (name, value)
        values[name] = value
    return values


def _evaluate(text: str, params: dict[str, Any]) -> str:
    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        if e.startswith("parameters."):
            v = params[e.removeprefix("parameters.")]
            return ("True" if v else "False") if isinstance(v, bool) else str(v)
        if e == "convertToJson(parameters.args)":
            return json.dumps(params["args"], indent=2)
        raise AssertionError(f"unknown expression {e}")

    return EXPR.sub(one, text)


class Agent:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.temp = work / "agent-temp"
        self.temp.mkdir(exist_ok=True)

    def run(self, **given: Any) -> Ran:
        doc = _template()
        params = _params(doc, {"install": False, **given})
        step = _main_step(doc)
        env = clean_env(TF_BUILD="True", AGENT_TEMPDIRECTORY=str(self.temp), BUILD_SOURCESDIRECTORY=str(self.work),
                        SYSTEM_DEFAULTWORKINGDIRECTORY=str(self.work))  # fmt: skip
        env.update({k: _evaluate(str(v), params) for k, v in step["env"].items()})
        return run_bash(step["bash"], self.work, env, flags=())

    def path(self, azure_path: str) -> Path:
        """A path as the template names it, with the agent's variables resolved."""
        return Path(azure_path.replace("$(Agent.TempDirectory)", str(self.temp)))


@pytest.fixture
def agent(tmp_path: Path) -> Agent:
    for src in (FIXTURES / "lifecycle.yaml", FIXTURES / "policed.yaml", FIXTURES / "bad_property.yaml",
                *(HERE / "fixtures").glob("*.yaml")):  # fmt: skip
        shutil.copy(src, tmp_path / src.name)
    return Agent(tmp_path)


def _names(ran: Ran) -> list[str]:
    return [c.name for c in azure_commands(ran.log)]


def _outputs(ran: Ran) -> dict[str, str]:
    out = {}
    for c in azure_commands(ran.log):
        if c.name == "task.setvariable":
            assert c.props["isoutput"] == "true"
            out[c.props["variable"]] = c.data
    return out


# --------------------------------------------------------------------------- structure


def test_the_template_declares_what_it_uses_and_pastes_nothing_into_its_script() -> None:
    doc = _template()
    text = (AZURE / "cloudorch-steps.yml").read_text()
    declared = {p["name"] for p in doc["parameters"]}
    used = set(re.findall(r"parameters\.([A-Za-z0-9_]+)", text.split("\nsteps:", 1)[1]))
    assert used == declared, used ^ declared
    assert {"command", "plan", "stage", "args"} <= declared
    args = next(p for p in doc["parameters"] if p["name"] == "args")
    assert args["type"] == "object" and args["default"] == []
    for step in doc["steps"]:
        for s in (step.get(k) for k in ("bash", "script")):
            if s:
                assert "${{" not in s and not re.search(r"\$\([A-Za-z0-9_.]+\)", s), "a value pasted into a script"
    # inserted steps (install) are written the same way
    inserted = [s for step in doc["steps"] for k, v in step.items() if k.startswith("${{ if") for s in v]
    assert inserted and all("${{" not in s.get("bash", "") for s in inserted)


def test_published_reports_are_where_the_script_writes_them(agent: Agent) -> None:
    doc = _template()
    tasks = {s["task"]: s for s in doc["steps"] if "task" in s}
    junit = tasks["PublishTestResults@2"]["inputs"]
    sarif = tasks["PublishPipelineArtifact@1"]["inputs"]
    assert junit["testResultsFormat"] == "JUnit" and sarif["artifact"] == "CodeAnalysisLogs"
    got = agent.run(command="plan", plan="policed.yaml")
    assert got.code == 3, got.log
    assert 'failures="1"' in agent.path(junit["testResultsFiles"]).read_text()
    (report,) = agent.path(sarif["targetPath"]).glob("*.sarif")
    assert json.loads(report.read_text())["runs"][0]["results"]


# --------------------------------------------------------------------------- running the step


def test_plan_groups_uploads_the_summary_and_sets_outputs(agent: Agent) -> None:
    got = agent.run(command="plan", plan="lifecycle.yaml", args=["--var", "owner=web team"])
    assert got.code == 0, got.log
    assert azure_groups(got.stdout) == ["##[group]cloudorch plan", "##[endgroup]"]
    commands = azure_commands(got.log)
    assert [c.name for c in commands] == ["task.uploadsummary"] + ["task.setvariable"] * 3
    summary = Path(commands[0].data)
    assert summary.read_text().startswith("<!-- cloudorch-plan: lifecycle -->")
    out = _outputs(got)
    assert out["exitCode"] == "2" and out["hasChanges"] == "true"
    assert json.loads(Path(out["planJson"]).read_text())["format_version"] == 1


def test_a_policy_denial_is_annotated_on_the_resource_then_fails_the_step(agent: Agent) -> None:
    got = agent.run(command="plan", plan="policed.yaml")
    assert got.code == 3
    issues = [c for c in azure_commands(got.log) if c.name == "task.logissue"]
    located = [(c.props["sourcepath"], c.props["linenumber"]) for c in issues if "sourcepath" in c.props]
    assert located == [("policed.yaml", "11")]
    assert "cloudorch plan: denied by policy or a release gate (exit 3)" in [c.data for c in issues]
    assert _outputs(got)["exitCode"] == "3"


def test_a_plan_file_error_is_one_annotation_on_its_file_line_and_column(agent: Agent) -> None:
    got = agent.run(command="plan", plan="bad_property.yaml")
    assert got.code == 1
    located = [c.props for c in azure_commands(got.log) if c.name == "task.logissue" and "sourcepath" in c.props]
    assert [(p["sourcepath"], p["linenumber"], p["columnnumber"], p["type"]) for p in located] == [
        ("bad_property.yaml", "8", "7", "error")
    ]


@pytest.mark.parametrize("plan", ["hostile_values.yaml", "hostile_error.yaml"])
def test_hostile_keys_values_and_error_text_change_nothing_in_the_host(agent: Agent, plan: str) -> None:
    got = agent.run(command="plan", plan=plan)
    commands = azure_commands(got.log)
    assert {c.name for c in commands} <= {"task.uploadsummary", "task.setvariable", "task.logissue"}, got.log
    assert set(_outputs(got)) == {"exitCode", "hasChanges", "planJson"}
    assert all(c.props.get("type") in (None, "error") for c in commands)
    located = [c.props["sourcepath"] for c in commands if "sourcepath" in c.props]
    assert located == ([] if plan == "hostile_values.yaml" else [plan])
    # the summary file holds the values as written, for the run's page (a file, not the log)
    if plan == "hostile_values.yaml":
        summary = Path(next(c.data for c in commands if c.name == "task.uploadsummary")).read_text()
        assert "::error::injected" in summary


def test_apply_the_saved_plan_then_drift_fails_only_on_changes(agent: Agent) -> None:
    planned = agent.run(command="plan", plan="lifecycle.yaml")
    saved = _outputs(planned)["planJson"]
    applied = agent.run(command="apply", plan=saved)
    assert applied.code == 0, applied.log
    assert json.loads(Path(_outputs(applied)["planJson"]).read_text())["applied"] is True
    drift = agent.run(command="drift", plan="lifecycle.yaml", failOnChanges=True)
    assert drift.code == 0 and _outputs(drift)["hasChanges"] == "false", drift.log
    (agent.work / "out" / "note.txt").write_text("changed by hand\n")
    drifted = agent.run(command="drift", plan="lifecycle.yaml", failOnChanges=True)
    assert drifted.code == 2 and _outputs(drifted)["hasChanges"] == "true", drifted.log


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"command": "plan", "plan": "--help"}, "the plan parameter must be a file path"),
        ({"command": "plan", "plan": "lifecycle.yaml", "stage": "prod --auto-approve"}, "the stage parameter"),
        ({"command": "promote", "plan": "lifecycle.yaml", "stage": "prod", "version": "1.0.0 --override soak"},
         "the version parameter must be SemVer"),
        ({"command": "plan", "plan": "lifecycle.yaml", "args": "--var owner=x"}, "the args parameter must be a list"),
    ],
)  # fmt: skip
def test_malformed_parameters_fail_before_cloudorch_runs(agent: Agent, given: dict[str, Any], message: str) -> None:
    got = agent.run(**given)
    assert got.code == 1, got.log
    (issue,) = azure_commands(got.log)
    assert issue.name == "task.logissue" and message in issue.data
    assert not (agent.work / ".cloudorch").exists()


# --------------------------------------------------------------------------- the pipeline


def _pipeline() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((AZURE / "azure-pipelines.yml").read_text())
    return doc


def _template_uses(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if "template" in node else []
        return found + [u for v in node.values() for u in _template_uses(v)]
    if isinstance(node, list):
        return [u for v in node for u in _template_uses(v)]
    return []


def test_the_pipeline_uses_the_template_as_declared() -> None:
    pipeline = _pipeline()
    declared = {p["name"]: p for p in _template()["parameters"]}
    uses = _template_uses(pipeline["stages"])
    assert len(uses) >= 6
    for use in uses:
        assert (AZURE / use["template"]).is_file()
        given = use["parameters"]
        assert set(given) <= set(declared), set(given) - set(declared)
        assert "plan" in given and given["command"] in declared["command"]["values"]
        assert given.get("name", "cloudorch") == "cloudorch"  # the step name output variables are read by


def test_stages_depend_on_stages_that_exist_and_promote_in_order() -> None:
    stages = {s["stage"]: s for s in _pipeline()["stages"]}
    for name, stage in stages.items():
        deps = stage.get("dependsOn", [])
        for dep in [deps] if isinstance(deps, str) else deps:
            assert dep in stages, f"{name} depends on {dep}"
    assert stages["Release_staging"]["dependsOn"] == "Release_dev"
    assert stages["Release_prod"]["dependsOn"] == "Release_staging"
    for name, env in (("Release_dev", "dev"), ("Release_staging", "staging"), ("Release_prod", "prod"),
                      ("Apply", "production")):  # fmt: skip
        (job,) = stages[name]["jobs"]
        assert job["environment"] == env and "deployment" in job  # the Environment's approvals gate it


def test_outputs_and_artifacts_the_pipeline_reads_are_produced() -> None:
    pipeline = _pipeline()
    stages = {s["stage"]: s for s in pipeline["stages"]}
    text = (AZURE / "azure-pipelines.yml").read_text()
    script = _main_step(_template())["bash"]
    # hasChanges of the step named `cloudorch` of job `plan` in stage Plan
    for stage, job, step, var in re.findall(r"dependencies\.(\w+)\.outputs\['(\w+)\.(\w+)\.(\w+)'\]", text):
        assert stage in stages and any(j.get("job") == job for j in stages[stage]["jobs"])
        assert step == "cloudorch" and f"{var}=" in script
    published = {
        step["artifact"]
        for s in stages.values()
        for j in s["jobs"]
        for step in j.get("steps", [])
        if isinstance(step, dict) and "publish" in step
    }
    downloaded = set(re.findall(r"artifact: ([\w-]+)", text)) - {"CodeAnalysisLogs"}
    assert downloaded == published == {"cloudorch-plan"}
    assert stages["Apply"]["jobs"][0]["strategy"]["runOnce"]["deploy"]["steps"][2]["parameters"]["plan"].startswith(
        "$(Pipeline.Workspace)/cloudorch-plan/"
    )
    assert pipeline["schedules"] and "Schedule" in stages["Drift"]["condition"]
    (drift,) = _template_uses(stages["Drift"])
    assert drift["parameters"]["command"] == "drift" and drift["parameters"]["failOnChanges"] is True
