"""Saved plans are tamper-evident and private: a digest over their content, mode 0600, no symlinks."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloudorch.cli import main


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


def _saved(cli: Callable[..., Result], fixture_plan: Callable[[str], Path], tmp_path: Path) -> Path:
    plan = fixture_plan("lifecycle.yaml")
    saved = tmp_path / "saved.json"
    assert cli("plan", str(plan), "-o", str(saved)).code == 0
    return saved


def test_saved_plan_is_private_and_carries_a_digest(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    os.umask(0o022)
    saved = _saved(cli, fixture_plan, tmp_path)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text())["digest"].startswith("sha256:")
    assert not list(tmp_path.glob(".saved.json.tmp-*"))
    r = cli("apply", str(saved), "--json")
    assert r.code == 0, r.err
    assert (tmp_path / "out" / "note.txt").exists()


@pytest.mark.parametrize(
    "edit",
    [
        lambda doc: doc["changes"][1]["after"].__setitem__("path", "elsewhere.txt"),
        lambda doc: doc.__setitem__("state_serial", doc["state_serial"]),  # no-op edit: must still apply
        lambda doc: doc["inputs"].__setitem__("vars", {"owner": "mallory"}),
        lambda doc: doc.__setitem__("state_lineage", "someone-else"),
        lambda doc: doc.pop("digest"),
    ],
    ids=["changes", "unchanged", "inputs", "lineage", "no-digest"],
)
def test_a_changed_saved_plan_is_refused(cli, fixture_plan, tmp_path, edit) -> None:  # type: ignore[no-untyped-def]
    saved = _saved(cli, fixture_plan, tmp_path)
    doc = json.loads(saved.read_text())
    before = json.dumps(doc, sort_keys=True)
    edit(doc)
    saved.write_text(json.dumps(doc))
    r = cli("apply", str(saved))
    if json.dumps(doc, sort_keys=True) == before:
        assert r.code == 0, r.err
        return
    assert r.code != 0
    assert "saved plan" in r.err and ("changed after it was saved" in r.err or "no digest" in r.err)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "elsewhere.txt").exists()
    assert not (tmp_path / ".cloudorch" / "state" / "lifecycle.json").exists()


def test_saving_over_a_symlink_does_not_write_through_it(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    saved = tmp_path / "saved.json"
    saved.symlink_to(victim)
    plan = fixture_plan("lifecycle.yaml")
    assert cli("plan", str(plan), "-o", str(saved)).code == 0
    assert victim.read_text() == "keep me\n"
    assert not saved.is_symlink()
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
