"""A state key file readable or writable by group or others is refused, naming the file and the fix."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloudorch.cli import main

KEY = base64.b64encode(b"k" * 32).decode()


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_key_file_others_can_reach_is_refused(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    monkeypatch.chdir(tmp_path)
    key_file = tmp_path / "state.key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(mode)
    plan = tmp_path / "sec.yaml"
    plan.write_text(
        f"version: 1\nname: sec\nbackend: {{encryption: {{key_file: {key_file}}}}}\n"
        "resources:\n  a: {type: core.null, properties: {values: {v: needle}}}\n"
    )
    refused = cli("apply", str(plan), "--auto-approve")
    assert refused.code == 1
    assert str(key_file) in refused.err and "chmod 600" in refused.err and f"{mode:04o}" in refused.err, refused.err
    assert not (tmp_path / ".cloudorch" / "state" / "sec.json").exists()
    key_file.chmod(0o600)
    done = cli("apply", str(plan), "--auto-approve")
    assert done.code == 0, done.out + done.err
    assert b"needle" not in (tmp_path / ".cloudorch" / "state" / "sec.json").read_bytes()
