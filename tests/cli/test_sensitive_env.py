"""A value read with `${env.NAME}` where NAME is listed under `sensitive_env:` is a secret.

The same checks as for sensitive variables (test_sensitive_end_to_end.py): after every command its
text is searched in stdout and stderr, and at the end in every file under the test's folder.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sensitive"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "project"
    work.mkdir()
    for name in ("env_secrets.yaml", "env_undeclared_output.yaml"):
        shutil.copy(FIXTURES / name, work / name)
    monkeypatch.chdir(work)
    monkeypatch.setenv("API_USER", "deploy-bot")
    return work


def _files_with(root: Path, secret: str) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()
    )


def test_a_sensitive_env_value_reaches_only_its_managed_file(
    cli: Any, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"s3cr3t-ENV-{uuid.uuid4().hex}"
    monkeypatch.setenv("API_TOKEN", secret)
    seen: list[str] = []

    def run(*args: str) -> Any:
        r = cli(*args)
        seen.append(r.out + r.err)
        return r

    text = run("plan", "env_secrets.yaml")
    assert text.code == 0, text.err
    assert "(sensitive)" in text.out
    doc = run("plan", "env_secrets.yaml", "--json")
    changes = {c["address"]: c for c in doc.json()["changes"]}
    assert changes["holder"]["after"]["values"] == "(sensitive)"
    assert changes["token_file"]["after"]["content"] == "(sensitive)"
    assert run("plan", "env_secrets.yaml", "-o", "saved.json").code == 0
    applied = run("apply", "saved.json", "--json")
    assert applied.code == 0, applied.err
    assert run("output", "env_secrets.yaml", "--json").code == 0
    out = run("output", "env_secrets.yaml")
    assert "deploy-bot" in out.out  # a plain env value is not masked
    assert run("state", "show", "env_secrets.yaml", "holder", "--json").code == 0
    assert run("plan", "env_secrets.yaml").code == 0  # no change: nothing printed holds it either

    for printed in seen:
        assert secret not in printed
    assert (project / "out" / "token.txt").read_text() == f"token={secret}"
    assert _files_with(tmp_path, secret) == ["project/out/token.txt"]


def test_an_output_built_from_a_sensitive_env_must_say_so(
    cli: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"s3cr3t-ENV-{uuid.uuid4().hex}"
    monkeypatch.setenv("API_TOKEN", secret)
    r = cli("plan", "env_undeclared_output.yaml")
    assert r.code == 1, r.out
    assert "output `leaked`" in r.err and "sensitive environment variable `API_TOKEN`" in r.err
    assert "env_undeclared_output.yaml:10" in r.err, r.err
    assert secret not in r.out + r.err


def test_sensitive_env_names_are_checked(cli: Any, project: Path) -> None:
    (project / "bad.yaml").write_text("version: 1\nsensitive_env: [\"API TOKEN\"]\n")
    r = cli("validate", "bad.yaml")
    assert r.code == 1
    assert "bad.yaml:2" in r.err and "sensitive_env" in r.err


def test_a_saved_plan_refuses_a_changed_sensitive_env_value(
    cli: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", f"s3cr3t-ENV-{uuid.uuid4().hex}")
    assert cli("plan", "env_secrets.yaml", "-o", "saved.json").code == 0
    monkeypatch.setenv("API_TOKEN", f"s3cr3t-ENV-{uuid.uuid4().hex}")
    r = cli("apply", "saved.json")
    assert r.code != 0
    assert "changed since the plan was saved" in r.err
    assert not (project / "out" / "token.txt").exists()
