"""Fixtures shared by the tests of `cloudorch/`: plan files from tests/fixtures/, and `cli` (the CLI run in process).

Every test already runs in its own directory with no cloud credentials (`cloudorch.testing.plugin`,
loaded by the root conftest.py).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixture_plan(tmp_path: Path) -> PlanCopier:
    return PlanCopier(tmp_path)


class PlanCopier:
    """Copies a plan file from tests/fixtures/ into the test's directory (state lands beside it)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, name: str) -> Path:
        dest = self.root / name
        shutil.copy(FIXTURES / name, dest)
        return dest


@dataclass
class Result:
    """What one CLI run printed, and its exit code."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run the CLI in process, the way a user would type it, and capture what it prints."""
    from cloudorch.cli import main

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
