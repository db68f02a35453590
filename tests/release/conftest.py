"""Fixtures for the release tests: the CLI run in process and a release plan copied into the test's
directory. Health gates use moto through the plugin's `moto` fixture (real HTTP, real boto3)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloudorch.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
T0 = "2026-11-23T10:00:00Z"  # a Monday


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run `cloudorch ARGS` as `actor` at time `at` (the CLOUDORCH_NOW test hook)."""

    def call(*args: str, actor: str = "ci", at: str = T0) -> Result:
        monkeypatch.setenv("CLOUDORCH_ACTOR", actor)
        monkeypatch.setenv("CLOUDORCH_NOW", at)
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


@pytest.fixture
def release_plan(tmp_path: Path) -> Callable[[str], Path]:
    def copy(name: str = "release_three_stage.yaml") -> Path:
        dest = tmp_path / "plan.yaml"
        shutil.copy(FIXTURES / name, dest)
        return dest

    return copy
