"""`cloudorch providers --conformance` shows the table the kit's last run wrote, and says so
plainly when no run left one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudorch.cli import main


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    got = capsys.readouterr()
    return code, got.out, got.err


TABLE = {
    "format": 1,
    "types": {
        "aws.vpc": {
            "checks": {"create": "pass", "update[tags]": "pass", "update[enable_dns_hostnames]": "fail",
                       "fault_lost[create]": "xfail", "sensitive": "n/a"},
            "seed": 7,
            "at": "2026-12-05T10:00:00+00:00",
        },
        "core.null": {"checks": {"create": "pass", "crash": "n/a"}, "seed": 7},
    },
}


def test_the_table_is_shown_by_type_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "conformance.json"
    path.write_text(json.dumps(TABLE))
    code, out, _ = _run(capsys, "providers", "--conformance-file", str(path), "--json")
    assert code == 0
    doc = json.loads(out)
    rows = {r["type"]: r for r in doc["types"]}
    assert rows["aws.vpc"]["cells"]["update"] == "fail (1/2 pass)"
    assert rows["aws.vpc"]["cells"]["fault_lost"] == "xfail"
    assert rows["aws.vpc"]["cells"]["crash"] == ""  # not run: neither pass nor n/a
    assert rows["core.null"]["cells"]["crash"] == "n/a"

    code, out, _ = _run(capsys, "providers", "--conformance-file", str(path))
    assert code == 0
    vpc = next(line for line in out.splitlines() if line.strip().startswith("aws.vpc"))
    assert "fail (1/2 pass)" in vpc and "xfail" in vpc
    assert "aws.vpc update[enable_dns_hostnames]" in out  # the failure is named


def test_without_a_run_it_says_there_is_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = _run(capsys, "providers", "--conformance")
    assert code == 0
    assert "No conformance run recorded" in out and str(tmp_path / ".cloudorch" / "conformance.json") in out
    code, out, _ = _run(capsys, "providers", "--conformance", "--json")
    assert json.loads(out)["conformance"] is None


def test_a_file_that_is_not_a_table_is_a_located_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "conformance.json"
    path.write_text("[1, 2]")
    code, _, err = _run(capsys, "providers", "--conformance-file", str(path))
    assert code != 0
    assert str(path) in err and "Traceback" not in err
