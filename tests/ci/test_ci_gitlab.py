"""The GitLab CI/CD component (templates/): its spec and jobs agree with each other, and its jobs'
scripts work, run with bash under GitLab's variables the way a runner runs them (before_script and
script in one shell, `set -eo pipefail`), with `$[[ inputs.* ]]` interpolated as GitLab does: a value
that is a whole block takes the input's own type, a block inside a longer string is written in it
(a list as JSON). The merge-request note goes to a local stand-in for GitLab's REST API.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from cihelpers import (
    FIXTURES,
    ROOT,
    FakeGitLab,
    Ran,
    check_code_quality,
    check_terraform_report,
    clean_env,
    cloudorch,
    run_bash,
)

TEMPLATES = ROOT / "templates"
BLOCK = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]")
MARKER = re.compile(r"^<!-- cloudorch-plan: [^\n]*-->$")


def _load(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    spec, jobs = yaml.safe_load_all((TEMPLATES / name).read_text())
    return spec["spec"], jobs


def _inputs(spec: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The inputs GitLab would accept: defaults filled, required ones present, types, regex, options."""
    declared = spec["inputs"]
    assert set(given) <= set(declared), set(given) - set(declared)
    values = {}
    for name, d in declared.items():
        if name not in given:
            assert "default" in d, f"input {name} is required"
        value = given.get(name, d.get("default"))
        kind = d.get("type", "string")
        assert isinstance(value, {"string": str, "array": list, "boolean": bool, "number": (int, float)}[kind])
        if "regex" in d and not re.search(d["regex"], value):
            raise ValueError(f"input {name}: {value!r} does not match {d['regex']}")
        if "options" in d:
            assert value in d["options"], (name, value)
        values[name] = value
    return values


def _interpolate(node: Any, inputs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {_interpolate(k, inputs): _interpolate(v, inputs) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, inputs) for v in node]
    if isinstance(node, str):
        whole = BLOCK.fullmatch(node)
        if whole:
            return inputs[whole.group(1)]
        return BLOCK.sub(lambda m: v if isinstance(v := inputs[m.group(1)], str) else json.dumps(v), node)
    return node


def _job(jobs: dict[str, Any], name: str) -> dict[str, Any]:
    job = dict(jobs[name])
    parent = job.pop("extends", None)
    if parent:
        base = _job(jobs, parent)
        merged = {**base, **job}
        merged["variables"] = {**base.get("variables", {}), **job.get("variables", {})}
        return merged
    return job


def _scripts(job: dict[str, Any]) -> list[str]:
    return [str(line) for key in ("before_script", "script") for line in job.get(key, [])]


class Pipeline:
    """Runs the component's jobs in one project directory, as a GitLab runner would."""

    def __init__(self, work: Path, template: str = "cloudorch.yml", **base_env: str) -> None:
        self.work = work
        self.spec, self.jobs = _load(template)
        self.base_env = base_env
        self.dotenv: dict[str, str] = {}

    def run(self, name: str, inputs: dict[str, Any], **env: str) -> Ran:
        values = _inputs(self.spec, {"install": "false", **inputs})
        jobs = _interpolate(self.jobs, values)
        job = _job(jobs, BLOCK.sub(lambda m: str(values[m.group(1)]), name))
        variables = job.get("variables", {})
        assert all(isinstance(v, str) for v in variables.values()), variables  # GitLab takes strings only
        full = clean_env(
            **{"GITLAB_CI": "true", "CI": "true", "CI_PROJECT_DIR": str(self.work), "CI_PROJECT_ID": "42",
               "CI_DEFAULT_BRANCH": "main", **self.base_env, **self.dotenv, **variables, **env}
        )  # fmt: skip
        (self.work / "cloudorch.env").unlink(missing_ok=True)
        ran = run_bash("\n".join(_scripts(job)), self.work, full)
        dotenv = self.work / "cloudorch.env"
        if dotenv.exists():  # what later jobs get, as the dotenv report
            for line in dotenv.read_text().splitlines():
                key, _, value = line.partition("=")
                assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), line
                self.dotenv[key] = value
        return ran


@pytest.fixture
def work(tmp_path: Path) -> Path:
    for name in ("lifecycle.yaml", "policed.yaml", "bad_property.yaml", "release_two_stage.yaml"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    return tmp_path


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize("template", ["cloudorch.yml", "cloudorch-promote.yml"])
def test_every_input_is_declared_used_and_only_reaches_scripts_through_variables(template: str) -> None:
    spec, jobs = _load(template)
    text = (TEMPLATES / template).read_text().split("\n---\n", 1)[1]
    used = set(BLOCK.findall(text))
    assert used == set(spec["inputs"]), (used ^ set(spec["inputs"]))
    for name, job in jobs.items():
        for line in _scripts(job):
            assert "$[[" not in line, f"{name}: an input pasted into a script"
        for key in job.get("variables") or {}:
            assert key.startswith("CLOUDORCH_"), key


def test_the_component_has_the_documented_inputs_and_jobs() -> None:
    spec, jobs = _load("cloudorch.yml")
    inputs = spec["inputs"]
    assert "default" not in inputs["plan"]  # required
    assert inputs["args"]["type"] == "array" and inputs["args"]["default"] == []
    assert {"stage", "backend", "environment"} <= set(inputs)
    assert {"cloudorch-plan", "cloudorch-apply", "cloudorch-drift"} <= set(jobs)
    plan = jobs["cloudorch-plan"]
    assert any("merge_request_event" in r["if"] for r in plan["rules"])
    apply = jobs["cloudorch-apply"]
    assert [n["job"] for n in apply["needs"]] == ["cloudorch-plan"] and apply["needs"][0]["artifacts"] is True
    assert [r.get("when") for r in apply["rules"]] == ["manual"]
    assert "$CI_DEFAULT_BRANCH" in apply["rules"][0]["if"]
    assert apply["environment"]["name"] == "$[[ inputs.environment ]]"
    assert [r["if"] for r in jobs["cloudorch-drift"]["rules"]] == ['$CI_PIPELINE_SOURCE == "schedule"']
    # promotion: its own template, one manual job per stage in that stage's environment
    pspec, pjobs = _load("cloudorch-promote.yml")
    (name,) = pjobs
    assert "$[[ inputs.to ]]" in name and pjobs[name]["environment"]["name"] == "$[[ inputs.to ]]"
    assert [r.get("when") for r in pjobs[name]["rules"]] == ["manual"]
    assert pjobs[name]["needs"] == "$[[ inputs.needs ]]" and pspec["inputs"]["needs"]["type"] == "array"
    # the two templates validate inputs with the same script
    assert pjobs[name]["before_script"] == jobs[".cloudorch-base"]["before_script"]


def test_every_report_a_job_declares_is_a_file_its_script_writes() -> None:
    _, jobs = _load("cloudorch.yml")
    for name in ("cloudorch-plan", "cloudorch-apply", "cloudorch-drift"):
        job = _job(jobs, name)
        script = "\n".join(_scripts(job))
        variables = job["variables"]
        reports = job["artifacts"].get("reports", {})
        for kind, path in reports.items():
            if kind == "codequality":
                assert variables["CLOUDORCH_CODE_QUALITY"] == path  # where cloudorch writes its findings
            elif kind == "dotenv":
                assert variables["CLOUDORCH_DOTENV"] == path and "cloudorch ci output" in script
            else:
                assert path in script, f"{name}: {kind} report {path} is never written"
        for path in job["artifacts"].get("paths", []):
            assert path in script, f"{name}: artifact {path} is never written"
    assert set(_job(jobs, "cloudorch-plan")["artifacts"]["reports"]) == {"terraform", "junit", "codequality", "dotenv"}


# --------------------------------------------------------------------------- running the jobs


def _note_env(api: FakeGitLab) -> dict[str, str]:
    return {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "7", "CI_API_V4_URL": api.url,
            "CI_JOB_TOKEN": "jt", "GITLAB_USER_ID": "5"}  # fmt: skip


def test_the_plan_job_in_a_merge_request(work: Path, gitlab_api: FakeGitLab) -> None:
    gitlab_api.users = {"job:jt": 5}
    # someone else's note with the same marker, and unrelated notes before ours: never edited
    pipe = Pipeline(work, **_note_env(gitlab_api))
    inputs = {"plan": "lifecycle.yaml", "args": ["--var", "owner=web team"]}
    first = pipe.run("cloudorch-plan", inputs)
    assert first.code == 0, first.log
    assert re.search(r"\x1b\[0Ksection_start:\d+:plan\[collapsed=true\]\r\x1b\[0Kcloudorch plan\n", first.stdout)
    assert re.search(r"\x1b\[0Ksection_end:\d+:plan\r\x1b\[0K\n", first.stdout)
    assert pipe.dotenv == {"CLOUDORCH_EXIT_CODE": "2", "CLOUDORCH_HAS_CHANGES": "true"}
    counts = check_terraform_report(work / "tfplan.json")
    assert counts["create"] > 0 and counts["update"] == counts["delete"] == 0
    (note,) = gitlab_api.notes
    marker = note["body"].split("\n", 1)[0]
    assert MARKER.match(marker) and note["author"]["id"] == 5

    forged = gitlab_api.note(marker + "\nforged", author=9)
    gitlab_api.notes.insert(0, gitlab_api.notes.pop())  # listed before ours: found first if authors were not checked
    for i in range(3):
        gitlab_api.note(f"unrelated {i}", author=5)
    again = pipe.run("cloudorch-plan", {**inputs, "args": ["--var", "owner=ops"]})
    assert again.code == 0, again.log
    assert sorted(n["id"] for n in gitlab_api.notes if n["body"].startswith(marker)) == [note["id"], forged["id"]]
    assert ("PUT", f"/api/v4/projects/42/merge_requests/7/notes/{note['id']}") in gitlab_api.calls  # in place
    assert forged["body"].endswith("forged")
    assert ("POST", "/api/v4/projects/42/merge_requests/7/notes") in gitlab_api.calls
    assert sum(1 for m, _ in gitlab_api.calls if m == "POST") == 1


def test_the_note_with_a_project_token_is_found_by_its_author(work: Path, gitlab_api: FakeGitLab) -> None:
    gitlab_api.users = {"pt": 11}
    (work / "plan.md").write_text("<!-- cloudorch-plan: shop -->\n### plan\n")
    env = clean_env(GITLAB_CI="true", CI_API_V4_URL=gitlab_api.url, CI_PROJECT_ID="42", CI_MERGE_REQUEST_IID="7",
                    CLOUDORCH_GITLAB_TOKEN="pt", CI_JOB_TOKEN="ignored-when-a-project-token-is-set")  # fmt: skip
    gitlab_api.note("<!-- cloudorch-plan: shop -->\nby someone", author=3)
    mine = gitlab_api.note("<!-- cloudorch-plan: shop -->\nold", author=11)
    got = cloudorch(["ci", "gitlab-note", "plan.md"], work, env)
    assert got.code == 0, got.log
    assert mine["body"] == "<!-- cloudorch-plan: shop -->\n### plan\n" and len(gitlab_api.notes) == 2
    assert ("GET", "/api/v4/user") in gitlab_api.calls
    # an unmarked summary writes nothing; a refused token is an error that says what it needs
    (work / "plain.md").write_text("no marker\n")
    assert cloudorch(["ci", "gitlab-note", "plain.md"], work, env).code == 0 and len(gitlab_api.notes) == 2
    refused = cloudorch(["ci", "gitlab-note", "plan.md"], work, {**env, "CLOUDORCH_GITLAB_TOKEN": "wrong"})
    assert refused.code == 1 and "HTTP 401" in refused.stderr and "api scope" in refused.stderr


def test_a_policy_denial_fails_the_plan_job_with_its_reports(work: Path) -> None:
    pipe = Pipeline(work, CI_PIPELINE_SOURCE="merge_request_event")
    got = pipe.run("cloudorch-plan", {"plan": "policed.yaml", "mr_note": "false"})
    assert got.code == 3, got.log
    assert pipe.dotenv["CLOUDORCH_EXIT_CODE"] == "3"
    assert 'failures="1"' in (work / "cloudorch-policy.xml").read_text()
    issues = check_code_quality(work / "gl-code-quality-report.json")
    assert [(i["check_name"], i["location"]["path"], i["location"]["lines"]["begin"]) for i in issues] == [
        ("no-tmp-files", "policed.yaml", 11)
    ]


def test_a_plan_file_error_is_one_code_quality_issue_on_its_line(work: Path) -> None:
    pipe = Pipeline(work, CI_PIPELINE_SOURCE="merge_request_event")
    got = pipe.run("cloudorch-plan", {"plan": "bad_property.yaml", "mr_note": "false"})
    assert got.code == 1, got.log
    issues = check_code_quality(work / "gl-code-quality-report.json")
    assert [(i["location"]["path"], i["location"]["lines"]["begin"]) for i in issues] == [("bad_property.yaml", 8)]
    assert not (work / "tfplan.json").exists()


def test_plan_then_manual_apply_of_the_saved_plan_then_no_drift(work: Path) -> None:
    pipe = Pipeline(work, CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH="main")
    planned = pipe.run("cloudorch-plan", {"plan": "lifecycle.yaml"})
    assert planned.code == 0 and pipe.dotenv["CLOUDORCH_HAS_CHANGES"] == "true", planned.log
    applied = pipe.run("cloudorch-apply", {"plan": "lifecycle.yaml"})
    assert applied.code == 0, applied.log
    assert json.loads((work / "apply.json").read_text())["applied"] is True
    assert re.search(r"section_start:\d+:apply\[collapsed=true\]", applied.stdout)
    drift = pipe.run("cloudorch-drift", {"plan": "lifecycle.yaml"}, CI_PIPELINE_SOURCE="schedule")
    assert drift.code == 0, drift.log
    assert pipe.dotenv["CLOUDORCH_HAS_DRIFT"] == "false"
    # a plan with no changes: the apply job has nothing to do
    pipe.run("cloudorch-plan", {"plan": "lifecycle.yaml"})
    assert pipe.dotenv["CLOUDORCH_HAS_CHANGES"] == "false"
    nothing = pipe.run("cloudorch-apply", {"plan": "lifecycle.yaml"})
    assert nothing.code == 0 and "nothing to apply" in nothing.stdout


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"plan": "--help"}, "the plan input must be a file path"),
        ({"plan": "lifecycle.yaml", "args": "--var owner=x"}, "the args input must be a list of strings"),
        ({"plan": "lifecycle.yaml", "args": [1, 2]}, "the args input must be a list of strings"),
    ],
)
def test_malformed_inputs_fail_before_cloudorch_runs(work: Path, inputs: dict[str, Any], message: str) -> None:
    pipe = Pipeline(work, CI_PIPELINE_SOURCE="merge_request_event")
    spec = dict(pipe.spec)
    if isinstance(inputs.get("args"), str):  # what a caller could write if the type were not checked
        spec = {"inputs": {**spec["inputs"], "args": {"type": "string", "default": ""}}}
        pipe.spec = spec
    got = pipe.run("cloudorch-plan", {"mr_note": "false", **inputs})
    assert got.code == 1 and message in got.stderr, got.log
    assert not (work / ".cloudorch").exists() and not (work / "plan.md").exists()


def test_a_hostile_argument_is_one_argument(work: Path) -> None:
    pipe = Pipeline(work, CI_PIPELINE_SOURCE="merge_request_event")
    got = pipe.run("cloudorch-plan", {"plan": "lifecycle.yaml", "mr_note": "false",
                                      "args": ["--var", "owner=$(touch pwned)\n::error::x"]})  # fmt: skip
    assert got.code == 0, got.log
    assert not (work / "pwned").exists()
    assert "\n::error::x" not in got.log
    assert pipe.dotenv["CLOUDORCH_HAS_CHANGES"] == "true"


def test_the_stage_regex_refuses_an_option() -> None:
    spec, _ = _load("cloudorch.yml")
    with pytest.raises(ValueError, match="does not match"):
        _inputs(spec, {"plan": "p.yaml", "stage": "prod --auto-approve"})


def test_promotion_job_runs_the_gates_of_its_stage(work: Path) -> None:
    env = clean_env(CI="true")
    deployed = cloudorch(["release", "deploy", "release_two_stage.yaml", "--stage", "dev", "--version", "1.0.0",
                          "--auto-approve"], work, env)  # fmt: skip
    assert deployed.code == 0, deployed.log
    pipe = Pipeline(work, "cloudorch-promote.yml", CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH="main")
    # prod's http health gate points at a closed port: the promotion is refused
    got = pipe.run("cloudorch-promote-$[[ inputs.to ]]", {"plan": "release_two_stage.yaml", "to": "prod"})
    assert got.code == 3, got.log
    assert pipe.dotenv["CLOUDORCH_PROMOTE_EXIT_CODE"] == "3"
    assert re.search(r"section_start:\d+:promote\[collapsed=true\]", got.stdout)
    with pytest.raises(ValueError):
        _inputs(pipe.spec, {"plan": "release_two_stage.yaml", "to": "prod", "version": "1.0.0 --override soak"})


def test_the_example_pipeline_includes_the_components_with_inputs_they_declare() -> None:
    doc = yaml.safe_load((ROOT / "examples" / "ci" / "gitlab" / ".gitlab-ci.yml").read_text())
    promoted = []
    for include in doc["include"]:
        name = include["component"].rsplit("/", 1)[1].split("@")[0]
        spec, jobs = _load(f"{name}.yml")
        values = _inputs(spec, include["inputs"])
        for job_name, job in _interpolate(jobs, values).items():
            if not job_name.startswith("."):
                assert job["stage"] in doc["stages"], (job_name, job["stage"])
            for need in job.get("needs") or []:
                promoted.append((job_name, need if isinstance(need, str) else need["job"]))
    names = {job for job, _ in promoted}
    assert ("cloudorch-promote-prod", "cloudorch-promote-staging") in promoted
    assert all(need in names | {"cloudorch-plan", "cloudorch-promote-dev"} for _, need in promoted)
