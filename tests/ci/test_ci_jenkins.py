"""The Jenkinsfile example: every cloudorch command and flag it runs exists, and the reports it
publishes are the files those commands write."""

from __future__ import annotations

import re

from cihelpers import ROOT, clean_env, cloudorch

JENKINSFILE = ROOT / "examples" / "ci" / "jenkins" / "Jenkinsfile"


def _invocations() -> list[list[str]]:
    text = JENKINSFILE.read_text().replace("\\\n", " ")
    return [line.split() for line in re.findall(r"\.venv/bin/cloudorch ([^'\n>]+)", text)]


def test_every_flag_it_passes_is_one_the_command_has() -> None:
    calls = _invocations()
    assert {c[0] for c in calls} == {"plan", "apply", "drift"}
    for call in calls:
        help_text = cloudorch([call[0], "--help"], ROOT, clean_env(COLUMNS="200")).stdout
        for word in call[1:]:
            if word.startswith("--"):
                assert re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", help_text), f"{call[0]} has no {word}"


def test_the_reports_it_publishes_are_the_files_it_writes() -> None:
    text = JENKINSFILE.read_text()
    (junit,) = re.findall(r"junit [^\n]*testResults: '([^']+)'", text)
    assert f"--policy-report junit={junit}" in text
    for artifacts in re.findall(r"archiveArtifacts [^\n]*artifacts: '([^']+)'", text):
        for path in (p.strip() for p in artifacts.split(",")):
            assert re.search(rf"(-o |> |=){re.escape(path)}\b", text), f"{path} is never written"
    # exit codes: 2 is an answer (changes, drift), everything else but 0 fails the build
    assert "code in [0, 2]" in text and "code == 2" in text
