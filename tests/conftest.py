"""Shared test fixtures: every test runs in its own directory with no cloud credentials."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

_CLOUD_ENV_PREFIXES = ("AWS_", "AZURE_", "GOOGLE_", "CLOUDSDK_", "ARM_", "STORAGE_EMULATOR_HOST", "GCE_")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Keep tests out of the real home and away from real cloud accounts."""
    for key in list(os.environ):
        if key.startswith(_CLOUD_ENV_PREFIXES):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    yield tmp_path


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
