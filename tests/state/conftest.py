"""Fixtures for state tests: a local backend, states of any size, child processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloudorch.state import LocalBackend, ResourceRecord, State

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / ".cloudorch"


@pytest.fixture
def backend(root: Path) -> LocalBackend:
    return LocalBackend(root, "shop")


def _record(address: str, n_props: int = 10) -> ResourceRecord:
    return ResourceRecord(
        address=address,
        type="aws.s3_bucket",
        provider="aws",
        id=f"id-{address}",
        properties={f"p{j}": f"value-{address}-{j}" for j in range(n_props)},
        attributes={"arn": f"arn:aws:s3:::{address}"},
    )


def _state(n: int = 3, serial: int = 1) -> State:
    state = State(plan_name="shop", serial=serial)
    for i in range(n):
        address = f"prod.r{i}"
        state.resources[address] = _record(address)
    return state


@pytest.fixture
def make_state() -> Callable[..., State]:
    """`make_state(n=3, serial=1)`: a state with n resources of ten properties each."""
    return _state


@pytest.fixture
def make_record() -> Callable[..., ResourceRecord]:
    return _record


@pytest.fixture
def run_child() -> Iterator[Callable[[str, list[str]], subprocess.Popen[str]]]:
    """Start `python -c code args...` importing this checkout; children are killed at teardown."""
    children: list[subprocess.Popen[str]] = []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"

    def start(code: str, args: list[str]) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        children.append(child)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=10)
