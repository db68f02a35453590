"""core.file stays inside its folder and never follows a link (tests/fixtures/hostile/core_file_*).

A plan file from a pull request, or links planted in a cloned repository, must not make
cloudorch read a file outside the plan's folder (drift would print it) or write one there.
Run through the CLI, with the plan in `plan/` and a victim folder beside it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cloudorch.cli import main

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    got = capsys.readouterr()
    return code, got.out, got.err


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    plan_dir, outside = tmp_path / "plan", tmp_path / "outside"
    plan_dir.mkdir()
    outside.mkdir()
    (outside / "victim.txt").write_text("SECRET-OUTSIDE")
    (tmp_path / "home").mkdir(exist_ok=True)
    return {"plan": plan_dir, "outside": outside, "root": tmp_path}


def _copy(world: dict[str, Path], name: str) -> Path:
    dest = world["plan"] / name
    shutil.copy(HOSTILE / name, dest)
    return dest


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mode)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _outside_plan(world: dict[str, Path]) -> list[str]:
    """Files anywhere under the test's folder but outside plan/ (cloudorch's own home is allowed)."""
    return sorted(
        str(p.relative_to(world["root"]))
        for p in world["root"].rglob("*")
        if p.is_file() and world["plan"] not in p.parents and p != world["outside"] / "victim.txt"
    )


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("core_file_absolute.yaml", 8),
        ("core_file_dotdot.yaml", 8),
        ("core_file_home.yaml", 8),
        ("core_file_dotdot_deep.yaml", 8),
    ],
)
@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
def test_a_path_leading_out_is_a_located_error(
    capsys: pytest.CaptureFixture[str], world: dict[str, Path], name: str, line: int, command: str
) -> None:
    plan = _copy(world, name)
    args = [command, str(plan)] + (["--auto-approve"] if command == "apply" else [])
    code, out, err = _cli(capsys, *args)
    assert code == 1, out + err
    assert f"{name}:{line}" in err and "properties.path" in err, err
    assert "hint:" in err and "Traceback" not in err + out
    assert _outside_plan(world) == []
    assert (world["outside"] / "victim.txt").read_text() == "SECRET-OUTSIDE"


def test_the_json_error_names_the_field(capsys: pytest.CaptureFixture[str], world: dict[str, Path]) -> None:
    plan = _copy(world, "core_file_absolute.yaml")
    code, out, _ = _cli(capsys, "validate", str(plan), "--json")
    doc = json.loads(out)
    assert code == 1 and doc["location"]["field"] == "resources.leak.properties.path" and doc["location"]["line"] == 8


def test_a_folder_linked_outside_is_refused_before_anything_is_written(
    capsys: pytest.CaptureFixture[str], world: dict[str, Path]
) -> None:
    plan = _copy(world, "core_file_links.yaml")
    (world["plan"] / "linked").symlink_to(world["outside"], target_is_directory=True)
    before = _snapshot(world["outside"])
    code, out, err = _cli(capsys, "apply", "--auto-approve", str(plan))
    assert code == 1, out + err
    assert "through_folder" in out + err and "leads outside" in out + err
    assert _snapshot(world["outside"]) == before
    assert not (world["outside"] / "x.txt").exists()


def test_a_link_at_the_target_is_replaced_never_written_through(
    capsys: pytest.CaptureFixture[str], world: dict[str, Path]
) -> None:
    plan = _copy(world, "core_file_target.yaml")
    victim = world["outside"] / "victim.txt"
    (world["plan"] / "target.txt").symlink_to(victim)
    code, out, err = _cli(capsys, "apply", "--auto-approve", str(plan))
    assert code == 0, out + err
    target = world["plan"] / "target.txt"
    assert not target.is_symlink() and target.read_text() == "managed"
    assert os.stat(target).st_mode & 0o777 == 0o666  # the mode asked for, set on the new file only
    assert victim.read_text() == "SECRET-OUTSIDE" and victim.stat().st_mode & 0o777 != 0o666


def test_reading_a_managed_file_refuses_a_link(capsys: pytest.CaptureFixture[str], world: dict[str, Path]) -> None:
    plan = _copy(world, "core_file_target.yaml")
    assert _cli(capsys, "apply", "--auto-approve", str(plan))[0] == 0
    target = world["plan"] / "target.txt"
    target.unlink()
    target.symlink_to(world["outside"] / "victim.txt")
    for command in ("drift", "plan"):
        code, out, err = _cli(capsys, command, str(plan))
        assert code == 1, (command, out, err)
        assert "symbolic link" in out + err
        assert "SECRET-OUTSIDE" not in out + err


def test_a_link_planted_at_the_temp_name_is_not_followed(
    capsys: pytest.CaptureFixture[str], world: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cloudorch.provider import core

    plan = _copy(world, "core_file_target.yaml")
    victim = world["outside"] / "victim.txt"
    # the old, predictable temp name, and (had the attacker guessed it) the random one
    (world["plan"] / ".target.txt.cloudorch-tmp").symlink_to(victim)
    monkeypatch.setattr(core.secrets, "token_hex", lambda n: "guessed")
    (world["plan"] / ".target.txt.guessed.cloudorch-tmp").symlink_to(victim)
    code, out, err = _cli(capsys, "apply", "--auto-approve", str(plan))
    assert code == 1, out + err  # the one name it may use is taken: it fails, it does not follow
    assert victim.read_text() == "SECRET-OUTSIDE" and victim.stat().st_mode & 0o777 != 0o666
    monkeypatch.undo()
    code, out, err = _cli(capsys, "apply", "--auto-approve", str(plan))
    assert code == 0, out + err
    assert (world["plan"] / "target.txt").read_text() == "managed"
    assert victim.read_text() == "SECRET-OUTSIDE"


def test_an_explicit_root_confines_paths_to_it(capsys: pytest.CaptureFixture[str], world: dict[str, Path]) -> None:
    plan = _copy(world, "core_file_root.yaml")
    code, out, err = _cli(capsys, "apply", "--auto-approve", str(plan))
    assert code == 0, out + err
    assert (world["plan"] / "out" / "sub" / "a.txt").read_text() == "in the root"
    assert not (world["plan"] / "sub").exists()
    code, out, err = _cli(capsys, "drift", str(plan))
    assert code == 0, out + err


def test_the_lexical_rule() -> None:
    from cloudorch.provider.core import lexical_escape

    for bad in ("/etc/hostname", "~/x", "~root/x", "..", "../x", "a/../../x", "a/..", "", "x\n", "C:\\x", "\\\\h\\s"):
        assert lexical_escape(bad) is not None, bad
    for good in ("x", "a/b.txt", "a/../b", "./x", "a/./b/../c", "a/b/.."):
        assert lexical_escape(good) is None, good


def test_a_write_killed_half_way_leaves_no_temp_file_behind_the_next_one(
    world: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A kill between creating the temp file and renaming it leaves `.NAME.<hex>.cloudorch-tmp`; its
    name is unpredictable, so the next write or delete of NAME removes it (a link planted under
    such a name is removed, not followed)."""
    plan = world["plan"] / "note.yaml"
    plan.write_text(
        "version: 1\nname: note\nvariables: {text: {type: string, default: one}}\n"
        "resources:\n  note: {type: core.file, properties: {path: note.txt, content: '${var.text}'}}\n"
    )
    leftover = world["plan"] / ".note.txt.0123456789abcdef.cloudorch-tmp"
    leftover.write_text("half")
    planted = world["plan"] / ".note.txt.fedcba9876543210.cloudorch-tmp"
    planted.symlink_to(world["outside"] / "victim.txt")
    other = world["plan"] / ".other.txt.0123456789abcdef.cloudorch-tmp"  # another file's: kept
    other.write_text("not ours")
    assert _cli(capsys, "apply", str(plan), "--auto-approve")[0] == 0
    assert not leftover.exists() and not planted.is_symlink() and other.exists()
    assert (world["outside"] / "victim.txt").read_text() == "SECRET-OUTSIDE"
    leftover.write_text("half again")
    assert _cli(capsys, "destroy", str(plan), "--auto-approve")[0] == 0
    assert not leftover.exists() and not (world["plan"] / "note.txt").exists()


def test_a_folder_linked_outside_is_refused_when_planned(
    capsys: pytest.CaptureFixture[str], world: dict[str, Path]
) -> None:
    plan = _copy(world, "core_file_links.yaml")
    (world["plan"] / "linked").symlink_to(world["outside"], target_is_directory=True)
    code, out, err = _cli(capsys, "plan", str(plan))
    assert code == 1, out + err
    assert "leads outside" in out + err and "Traceback" not in out + err
    assert "through_folder" in err and "core_file_links.yaml:8" in err, err
