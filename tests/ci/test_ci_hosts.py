"""cloudorch speaks each CI host's language: it finds the host from the host's own variables (or
`--ci-host`), annotates each located error and policy finding once on its file, line and column,
sets outputs the host's way, and no value it writes can make the host run a command.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cihelpers import (
    FIXTURES,
    HERE,
    azure_commands,
    check_code_quality,
    clean_env,
    cloudorch,
    github_commands,
)

HOST_ENV = {
    "github": {"GITHUB_ACTIONS": "true", "CI": "true"},
    "gitlab": {"GITLAB_CI": "true", "CI": "true"},
    "azure": {"TF_BUILD": "True"},
}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    for src in (FIXTURES / "bad_property.yaml", FIXTURES / "policed.yaml", *(HERE / "fixtures").glob("*.yaml")):
        shutil.copy(src, tmp_path / src.name)
    return tmp_path


def _annotations(host: str, log: str) -> list[tuple[str, str | None, str | None, str | None, str]]:
    """(level, file, line, column, message) of every annotation the host would show."""
    if host == "github":
        return [
            (c.name, c.props.get("file"), c.props.get("line"), c.props.get("col"), c.data)
            for c in github_commands(log)
            if c.name in ("error", "warning", "notice")
        ]
    return [
        (c.props.get("type", ""), c.props.get("sourcepath"), c.props.get("linenumber"), c.props.get("columnnumber"),
         c.data)
        for c in azure_commands(log)
        if c.name == "task.logissue"
    ]  # fmt: skip


@pytest.mark.parametrize("host", ["github", "azure"])
def test_a_plan_file_error_is_one_annotation_on_its_file_line_and_column(work: Path, host: str) -> None:
    env = clean_env(**HOST_ENV[host], GITHUB_WORKSPACE=str(work.parent), BUILD_SOURCESDIRECTORY=str(work.parent))
    got = cloudorch(["plan", "bad_property.yaml"], work, env)
    assert got.code == 1
    found = _annotations(host, got.log)
    # relative to the checkout (the workspace), as the host places annotations on a pull request
    assert found == [("error", f"{work.name}/bad_property.yaml", "8", "7", found[0][4])], got.log
    assert "unknown property `contnet`" in found[0][4] and "did you mean `content`" in found[0][4]
    # the same error with --json: stdout stays one document, the annotation goes beside it
    as_json = cloudorch(["plan", "bad_property.yaml", "--json"], work, env)
    assert json.loads(as_json.stdout)["location"]["line"] == 8
    assert len(_annotations(host, as_json.stderr)) == 1


def test_a_plan_file_error_on_gitlab_is_one_code_quality_issue(work: Path) -> None:
    env = clean_env(**HOST_ENV["gitlab"], CI_PROJECT_DIR=str(work))
    got = cloudorch(["validate", "bad_property.yaml"], work, env)
    assert got.code == 1
    issues = check_code_quality(work / "gl-code-quality-report.json")
    assert [(i["location"]["path"], i["location"]["lines"]["begin"], i["severity"]) for i in issues] == [
        ("bad_property.yaml", 8, "major")
    ]
    # a second command in the same job adds to the report, and the same error is not counted twice
    cloudorch(["plan", "bad_property.yaml"], work, env)
    assert len(check_code_quality(work / "gl-code-quality-report.json")) == 1
    assert not github_commands(got.log) and not azure_commands(got.log)


@pytest.mark.parametrize("host", ["github", "azure"])
def test_each_policy_finding_is_annotated_where_the_resource_is_written(work: Path, host: str) -> None:
    env = clean_env(**HOST_ENV[host])
    got = cloudorch(["plan", "policed.yaml"], work, env)
    assert got.code == 3, got.log
    found = _annotations(host, got.log)
    assert [(lvl, f, line) for lvl, f, line, _, _ in found] == [("error", "policed.yaml", "11")], got.log
    assert "tmp-bad.txt" in found[0][4]


def test_policy_findings_on_gitlab_join_the_code_quality_report(work: Path) -> None:
    env = clean_env(**HOST_ENV["gitlab"])
    got = cloudorch(["plan", "policed.yaml", "--policy-report", "junit=policy.xml"], work, env)
    assert got.code == 3
    issues = check_code_quality(work / "gl-code-quality-report.json")
    assert [(i["check_name"], i["location"]["path"], i["location"]["lines"]["begin"]) for i in issues] == [
        ("no-tmp-files", "policed.yaml", 11)
    ]
    assert (work / "policy.xml").is_file()  # the caller's own reports are still written


@pytest.mark.parametrize(
    ("env", "flag", "expected"),
    [
        ({"GITHUB_ACTIONS": "true"}, None, "github"),
        ({"GITLAB_CI": "true"}, None, "gitlab"),
        ({"TF_BUILD": "True"}, None, "azure"),
        ({}, None, "none"),
        ({"GITHUB_ACTIONS": "true"}, "none", "none"),
        ({}, "azure", "azure"),
        ({"GITLAB_CI": "true", "CLOUDORCH_CI_HOST": "github"}, None, "github"),
    ],
)
def test_the_host_is_detected_or_forced(tmp_path: Path, env: dict[str, str], flag: str | None, expected: str) -> None:
    got = cloudorch(["ci", "host", *(["--ci-host", flag] if flag else [])], tmp_path, clean_env(**env))
    assert got.code == 0 and got.stdout.strip() == expected, got.log


def test_ci_host_none_writes_no_annotation_and_a_bad_host_is_an_error(work: Path) -> None:
    off = cloudorch(["plan", "bad_property.yaml", "--ci-host", "none"], work, clean_env(**HOST_ENV["github"]))
    assert off.code == 1 and not github_commands(off.log)
    bad = cloudorch(["plan", "bad_property.yaml", "--ci-host", "jenkins"], work, clean_env())
    assert bad.code == 1 and "unknown CI host" in bad.stderr and "github, gitlab, azure, none, auto" in bad.stderr


# --------------------------------------------------------------------------- hostile values


@pytest.mark.parametrize("host", ["github", "azure", "gitlab"])
def test_error_text_with_host_commands_changes_nothing_in_the_host(work: Path, host: str) -> None:
    env = clean_env(**HOST_ENV[host])
    for args in (["plan", "hostile_error.yaml"], ["plan", "hostile_error.yaml", "--json"]):
        got = cloudorch(args, work, env)
        assert got.code == 1
        # exactly the one annotation of the error, on its own file: no second command, no variable
        # (a GitHub annotation keeps the value as written: GitHub's runner never reads `##vso[`)
        if host != "github":
            assert [c.name for c in azure_commands(got.log)] == (["task.logissue"] if host == "azure" else [])
            assert "PWNED" not in "".join(c.props.get("variable", "") for c in azure_commands(got.log))
        gh = github_commands(got.log)
        expected = [("error", "hostile_error.yaml")] if host == "github" else []
        assert [(c.name, c.props.get("file")) for c in gh] == expected
    as_json = cloudorch(["plan", "hostile_error.yaml", "--json"], work, env)
    # the document still says what the file says: only how `#` is written differs
    assert "##vso[task.setvariable" in json.loads(as_json.stdout)["message"]
    if host == "gitlab":
        (issue,) = check_code_quality(work / "gl-code-quality-report.json")
        assert issue["location"]["path"] == "hostile_error.yaml" and "task.setvariable" in issue["description"]


@pytest.mark.parametrize("host", ["github", "azure"])
def test_values_with_host_commands_in_a_plan_change_nothing_in_the_host(work: Path, host: str) -> None:
    env = clean_env(**HOST_ENV[host])
    for fmt in ("text", "markdown", "json"):
        got = cloudorch(["plan", "hostile_values.yaml", "--format", fmt], work, env)
        assert got.code == 0, got.log
        assert azure_commands(got.log) == [] and github_commands(got.log) == [], (fmt, got.log)


# --------------------------------------------------------------------------- outputs


HOSTILE_VALUE = "line one\n::set-output name=x::y\n##vso[task.setvariable variable=PWNED]1;]%0A"


def test_github_outputs_cannot_add_an_output(tmp_path: Path) -> None:
    out = tmp_path / "github-output"
    out.write_text("")
    env = clean_env(**HOST_ENV["github"], GITHUB_OUTPUT=str(out))
    got = cloudorch(["ci", "output", "has-changes=true", f"note={HOSTILE_VALUE}"], tmp_path, env)
    assert got.code == 0, got.log
    text = out.read_text()
    parsed: dict[str, str] = {}
    lines = iter(text.split("\n"))
    for line in lines:  # the runner's reading of the file: NAME=VALUE, or NAME<<DELIMITER ... DELIMITER
        if "<<" in line:
            name, delimiter = line.split("<<", 1)
            body = []
            for more in lines:
                if more == delimiter:
                    break
                body.append(more)
            parsed[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            parsed[name] = value
    assert parsed == {"has-changes": "true", "note": HOSTILE_VALUE}


def test_azure_outputs_are_one_command_each(tmp_path: Path) -> None:
    env = clean_env(**HOST_ENV["azure"])
    got = cloudorch(["ci", "output", "hasChanges=true", f"note={HOSTILE_VALUE}"], tmp_path, env)
    assert got.code == 0, got.log
    commands = azure_commands(got.log)
    assert [(c.name, c.props, c.data) for c in commands] == [
        ("task.setvariable", {"variable": "hasChanges", "isoutput": "true"}, "true"),
        ("task.setvariable", {"variable": "note", "isoutput": "true"}, commands[1].data),
    ]
    assert "PWNED" not in commands[1].props.get("variable", "")


def test_gitlab_outputs_are_one_dotenv_line_each(tmp_path: Path) -> None:
    env = clean_env(**HOST_ENV["gitlab"], CLOUDORCH_DOTENV=str(tmp_path / "out.env"))
    got = cloudorch(["ci", "output", "cloudorch-has-changes=true", f"note={HOSTILE_VALUE}"], tmp_path, env)
    assert got.code == 0, got.log
    lines = (tmp_path / "out.env").read_text().splitlines()
    assert [line.split("=", 1)[0] for line in lines] == ["CLOUDORCH_HAS_CHANGES", "NOTE"]
    assert lines[0] == "CLOUDORCH_HAS_CHANGES=true"


@pytest.mark.parametrize("name", ["bad name", "x\ny", "a;b", "a]b"])
def test_an_output_name_that_is_not_a_name_is_refused(tmp_path: Path, name: str) -> None:
    for host in ("github", "azure", "gitlab"):
        env = clean_env(**HOST_ENV[host], GITHUB_OUTPUT=str(tmp_path / "o"), CLOUDORCH_DOTENV=str(tmp_path / "e"))
        got = cloudorch(["ci", "output", f"{name}=1"], tmp_path, env)
        assert got.code == 1, (host, got.log)
        assert azure_commands(got.log) == []


@pytest.mark.parametrize("host", ["github", "azure"])
def test_a_file_name_cannot_add_or_end_a_property(work: Path, host: str) -> None:
    # `,` and `:` end a workflow command's property, `;` and `]` a logging command's
    name = "a,line=99,col=1::x;linenumber=99]##vso[task.complete result=Failed].yaml"
    shutil.copy(work / "bad_property.yaml", work / name)
    got = cloudorch(["validate", name], work, clean_env(**HOST_ENV[host]))
    assert got.code == 1
    assert [(f, line, col) for _, f, line, col, _ in _annotations(host, got.log)] == [(name, "8", "7")], got.log
    if host == "azure":
        assert [c.name for c in azure_commands(got.log)] == ["task.logissue"]
    else:
        assert [c.name for c in github_commands(got.log)] == ["error"]


# --------------------------------------------------------------------------- the pieces, directly


def test_the_terraform_report_counts_a_replacement_as_a_delete_and_a_create(tmp_path: Path) -> None:
    from cloudorch.cli import cihost

    report = cihost.terraform_report({"create": 1, "update": 2, "replace": 3, "delete": 4, "noop": 5})
    assert report == {"create": 4, "update": 2, "delete": 7} and list(report) == ["create", "update", "delete"]
    (tmp_path / "r.json").write_text(json.dumps(report))
    from cihelpers import check_terraform_report

    check_terraform_report(tmp_path / "r.json")


@pytest.mark.parametrize(
    "value", ["plain", "a,b:c", "50%", "x\ny", "x\r\n::error::y", "a;b]c", "%0A%3B%AZP25", "\x1b[31mred\x1b[0m"]
)
def test_each_escape_gives_back_the_value_to_the_host_that_reads_it(value: str) -> None:
    from cihelpers import azure_unescape, github_unescape

    from cloudorch import markdown
    from cloudorch.cli import cihost

    shown = markdown.safe(value, mid_line=False)  # control characters never reach a host raw
    gh = cihost.github_property(value)
    assert not set(gh) & set(",:\r\n") and github_unescape(gh, prop=True) == shown
    az = cihost.azure_property(value)
    assert not set(az) & set(";]\r\n") and azure_unescape(az) == shown
    for data in (cihost.github_data(value), cihost.azure_data(value)):
        assert "\n" not in data and "\r" not in data
