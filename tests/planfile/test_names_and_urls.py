"""Plan names, stage names and backend prefixes name files and objects: hostile ones are refused
by `validate` (and every command that loads the plan) with file:line, before anything is written.

Cases are in tests/fixtures/hostile/names/; a `--backend` address is checked the same way and
the error names the flag.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloudorch.cli import main

NAMES = Path(__file__).resolve().parents[1] / "fixtures" / "hostile" / "names"
MINIMAL = Path(__file__).resolve().parents[1] / "fixtures" / "planfile" / "good" / "minimal.yaml"


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


@pytest.mark.parametrize(
    ("fixture", "line", "what"),
    [
        ("plan_name_dotdot.yaml", 3, "invalid plan name '../x'"),
        ("plan_name_control.yaml", 3, "invalid plan name 'app\\nx'"),
        ("stage_slash.yaml", 8, "invalid stage name 'a/b'"),
        ("backend_dotdot.yaml", 5, "cannot hold `.` or `..` segments"),
    ],
)
def test_validate_refuses_a_hostile_name_with_its_location(
    cli: Callable[..., Result], tmp_path: Path, fixture: str, line: int, what: str
) -> None:
    plan = tmp_path / fixture
    plan.write_bytes((NAMES / fixture).read_bytes())
    result = cli("validate", str(plan))
    assert result.code == 1
    assert f"{plan}:{line}:" in result.err and what in result.err, result.err
    assert "Traceback" not in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == [fixture]  # nothing written


@pytest.mark.parametrize(
    "name",
    ["app", "shop.prod-2", "_x", "A1"],
)
def test_ordinary_plan_names_pass(cli: Callable[..., Result], tmp_path: Path, name: str) -> None:
    plan = tmp_path / "p.yaml"
    plan.write_text(f"version: 1\nname: {name}\nstages:\n  dev-1: {{}}\n  prod_eu: {{needs: [dev-1]}}\n")
    result = cli("validate", str(plan))
    assert result.code == 0, result.err


@pytest.mark.parametrize("name", ["", ".hidden", "-x", "a..b", "a.", "a b", "a/b", "a\\\\b", "\\t"])
def test_each_rejected_plan_name_is_located(cli: Callable[..., Result], tmp_path: Path, name: str) -> None:
    plan = tmp_path / "p.yaml"
    plan.write_text(f'version: 1\nname: "{name}"\n')
    result = cli("validate", str(plan))
    assert result.code == 1 and f"{plan}:2:" in result.err and "invalid plan name" in result.err, result.err


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("s3://bkt-one/team/../other", "`.` or `..` segments"),
        ("gs://bkt-one/./x", "`.` or `..` segments"),
        ("s3://bkt-one/a?versionId=1", "'?' is not allowed"),
        ("azblob://acct1/cont1/p#frag", "'#' is not allowed"),
        ("s3://bkt-one/a\nb", "control characters"),
        ("file://.cloudorch\x1b[2J", "control characters"),
    ],
)
def test_a_hostile_backend_address_is_refused(cli: Callable[..., Result], tmp_path: Path, url: str, why: str) -> None:
    # from the plan's `backend:` block: located at the url line, at validate
    plan = tmp_path / "p.yaml"
    plan.write_text("version: 1\nbackend:\n  url: " + _yaml_quoted(url) + "\n")
    located = cli("validate", str(plan))
    assert located.code == 1 and f"{plan}:3:" in located.err and why in located.err, located.err
    # from --backend: the error names the flag (and nothing is contacted or written)
    flag = cli("plan", str(MINIMAL), "--backend", url, "--state-dir", str(tmp_path / "state"))
    assert flag.code == 1 and "--backend" in flag.err and why in flag.err, flag.err
    assert not (tmp_path / "state").exists()


def _yaml_quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace("\n", "\\n").replace("\x1b", "\\e").replace('"', '\\"') + '"'
