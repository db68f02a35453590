"""Fixtures for plan file tests: a private working directory and the plan fixture folders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloudorch.provider.registry import Registry

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "planfile"
BAD = FIXTURES / "bad"
GOOD = FIXTURES / "good"


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


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
