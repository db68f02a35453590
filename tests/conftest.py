"""Fixtures shared by the tests of `cloudorch/`: plan files from tests/fixtures/.

Every test already runs in its own directory with no cloud credentials (`cloudorch.testing.plugin`,
loaded by the root conftest.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

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
