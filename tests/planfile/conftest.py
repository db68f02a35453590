"""Fixtures for plan file tests: the plan fixture folders and a plan file writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cloudorch.provider.registry import Registry

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "planfile"
BAD = FIXTURES / "bad"
GOOD = FIXTURES / "good"


@pytest.fixture(scope="session")
def registry() -> Registry:
    return Registry()


@pytest.fixture
def write_plan(tmp_path: Path) -> Callable[[str], Path]:
    """Write plan text to a file in the test's directory and return its path."""
    counter = iter(range(1000))

    def write(text: str, name: str | None = None) -> Path:
        path = tmp_path / (name or f"plan{next(counter)}.yaml")
        path.write_text(text, encoding="utf-8")
        return path

    return write
