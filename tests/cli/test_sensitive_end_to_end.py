"""A sensitive variable's value, run through every command, appears only in the file it was meant for.

The secret is unique per run; after each command its text is searched in stdout and stderr, and at
the end in every file under the test's folder (state, history, saved plan, policy reports): only
the managed file `out/token.txt` (the user's own data) and `output NAME --raw` may show it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sensitive"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "project"
    work.mkdir()
    for name in ("secrets.yaml", "echo.rego", "undeclared_output.yaml", "undeclared_property_output.yaml"):
        shutil.copy(FIXTURES / name, work / name)
    monkeypatch.chdir(work)
    return work


def _vars(secret: str) -> list[str]:
    return ["--var", f"token={secret}", "--var", f"creds={{eu: {secret}-eu, us: {secret}-us}}"]


class Runner:
    """Runs the CLI and keeps every stdout/stderr, to search them all for secrets."""

    def __init__(self, cli: Any) -> None:
        self.cli = cli
        self.seen: list[tuple[str, str]] = []

    def __call__(self, *args: str, reveal: bool = False) -> Any:
        r = self.cli(*args)
        if not reveal:
            self.seen.append((" ".join(args[:3]), r.out + r.err))
        return r

    def assert_nowhere(self, *secrets: str) -> None:
        for what, text in self.seen:
            for s in secrets:
                assert s not in text, f"`{what}` printed the secret:\n{text}"


def _files_with(root: Path, secret: str) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and secret.encode() in path.read_bytes():
            hits.append(str(path.relative_to(root)))
    return sorted(hits)


def test_a_secret_reaches_only_its_managed_file(cli: Any, project: Path, tmp_path: Path) -> None:
    first = f"s3cr3t-XYZ-{uuid.uuid4().hex}"
    second = f"s3cr3t-XYZ-{uuid.uuid4().hex}"
    run = Runner(cli)
    plan = "secrets.yaml"

    text = run("plan", plan, *_vars(first))
    assert text.code == 0, text.err
    assert "(sensitive)" in text.out and "plain" in text.out
    doc = run("plan", plan, *_vars(first), "--json")
    assert doc.code == 0, doc.err
    changes = {c["address"]: c for c in doc.json()["changes"]}
    # masked, not dropped: every property derived from the secret, by reference, for_each or a read
    for address in ("token_file", "holder", "per_region[eu]", "per_region[us]", "reader"):
        assert "(sensitive)" in json.dumps(changes[address]["after"]), address
    assert changes["token_file"]["after"]["path"] == "out/token.txt"
    assert changes["plain"]["after"]["values"] == {"region": "eu"}
    assert "per_region[eu]" in changes  # for_each keys name instances: they are not secret
    md = run("plan", plan, *_vars(first), "--format", "markdown")
    assert md.code == 0, md.err
    reports = {fmt: tmp_path / f"report.{fmt}" for fmt in ("json", "sarif", "junit", "markdown")}
    report_args = [a for f, p in reports.items() for a in ("--policy-report", f"{f}={p}")]
    checked = run("policy", "check", plan, *_vars(first), *report_args)
    assert checked.code == 0, checked.err
    assert all(p.exists() for p in reports.values())
    # the echoing policy ran and its report shows values, masked
    for report in reports.values():
        assert "token_file.content = (sensitive)" in report.read_text(), report.name

    # a type error on a sensitive variable does not quote the value
    wrong = run("plan", plan, "--var", f"token={first}", "--var", f"creds={first}")
    assert wrong.code == 1 and "creds" in wrong.err and "not a map" in wrong.err

    saved = project / "saved.plan"
    assert run("plan", plan, *_vars(first), "-o", str(saved)).code == 0
    assert first not in saved.read_text()
    missing = run("apply", str(saved), "--auto-approve")
    assert missing.code == 1 and "`token`" in missing.err and "--var token=" in missing.err
    applied = run("apply", str(saved), *_vars(first), "--auto-approve")
    assert applied.code == 0, applied.err
    assert (project / "out" / "token.txt").read_text() == f"token={first}"

    # a new secret: an update, shown with --json as the GitHub Action publishes it
    again = run("apply", plan, *_vars(second), "--auto-approve", "--json")
    assert again.code == 0, again.err
    assert (project / "out" / "token.txt").read_text() == f"token={second}"
    assert run("plan", plan, *_vars(second)).out.count("No changes") == 1

    listed = run("output", plan, *_vars(second))
    assert listed.code == 0 and "token_out = (sensitive)" in listed.out and '"eu"' in listed.out
    assert run("output", plan, *_vars(second), "--json").json()["token_out"] == "(sensitive)"
    assert run("output", plan, *_vars(second), "token_out").out.strip() == "(sensitive)"
    raw = run("output", plan, *_vars(second), "token_out", "--raw", reveal=True)
    assert raw.code == 0 and raw.out.strip() == f"prefix-{second}"
    unreadable = run("output", plan, *_vars(second), "copied", "--raw")
    assert unreadable.code == 1 and "hash" in unreadable.err
    for address in ("token_file", "holder", "per_region[us]", "reader"):
        shown = run("state", "show", plan, address, *_vars(second), "--json")
        assert shown.code == 0, shown.err
        assert "$sensitive" in shown.out
    assert run("state", "history", plan, *_vars(second)).code == 0
    assert run("state", "history", plan, *_vars(second), "--json").code == 0

    # back to the first apply's serial: state has only hashes, the plan gives the values again
    serials = [e["serial"] for e in run("state", "history", plan, *_vars(second), "--json").json()["history"]]
    back = run("rollback", plan, "--steps", "1", *_vars(second), "--auto-approve")
    assert back.code == 1 and "cannot restore sensitive" in back.err
    back = run("rollback", plan, "--steps", "1", *_vars(first), "--auto-approve")
    assert back.code == 0, back.err
    assert (project / "out" / "token.txt").read_text() == f"token={first}"
    assert len(serials) >= 2

    run.assert_nowhere(first, second)
    for secret in (first, second):
        assert _files_with(tmp_path, secret) in ([], ["project/out/token.txt"]), secret
    assert _files_with(tmp_path, first) == ["project/out/token.txt"]


def test_an_output_built_from_a_secret_must_say_so(cli: Any, project: Path) -> None:
    secret = f"s3cr3t-XYZ-{uuid.uuid4().hex}"
    for name in ("undeclared_output.yaml", "undeclared_property_output.yaml"):
        r = cli("plan", name, "--var", f"token={secret}")
        assert r.code == 1, (name, r.out)
        assert "output `leaked`" in r.err and "not declared sensitive" in r.err
        line = next(i for i, t in enumerate((project / name).read_text().splitlines(), 1) if t.startswith("  leaked"))
        assert f"{name}:{line}" in r.err, r.err
        assert secret not in r.out + r.err


@pytest.mark.slow
def test_a_journal_left_by_a_killed_apply_holds_no_secret(project: Path, tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "secrets_slow.yaml", project / "secrets_slow.yaml")
    secret = f"s3cr3t-XYZ-{uuid.uuid4().hex}"
    journal = project / ".cloudorch" / "journal" / "secrets_slow.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloudorch", "apply", "secrets_slow.yaml", "--var", f"token={secret}", "--auto-approve"],
        cwd=project,
        env={**os.environ, "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # synchronise on the journal itself: kill once every secret-holding operation has finished
    deadline = time.monotonic() + 60
    done: set[str] = set()
    while time.monotonic() < deadline and not {"token_file", "holder", "reader"} <= done:
        if journal.exists():
            for line in journal.read_text().splitlines():
                if line.strip().endswith("}"):
                    entry = json.loads(line)
                    if entry.get("event") == "finished":
                        done.add(entry["op"]["address"])
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=10)
    assert {"token_file", "holder", "reader"} <= done, err
    assert journal.exists() and "holder" in journal.read_text()
    assert _files_with(tmp_path, secret) == ["project/out/token.txt"]
    assert secret not in out + err

    # the next command folds the journal into state: still only hashes
    r = subprocess.run(
        [sys.executable, "-m", "cloudorch", "plan", "secrets_slow.yaml", "--var", f"token={secret}", "--json"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert secret not in r.stdout + r.stderr
    assert _files_with(tmp_path, secret) == ["project/out/token.txt"]
