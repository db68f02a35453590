"""The conformance kit catches deliberately broken types: it is run with `pytester` on the toy
provider of tests/testing/toy_cloud.py (installed as a real plugin distribution), one correct
type and three broken ones, and the table it writes must name exactly the checks that broke."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from cloudorch.provider.registry import ENTRY_POINT_GROUP

pytest_plugins = ["pytester"]

HERE = Path(__file__).resolve().parent

TEST_MODULE = '''
import pytest
from toy_cloud import SEAM, census
from cloudorch.testing.conformance import ConformanceEnv, ConformanceExample, ConformanceSuite

XFAIL = {xfail}

@pytest.fixture(autouse=True)
def toy_cloud(tmp_path, monkeypatch):
    monkeypatch.setenv("TOY_CLOUD", str(tmp_path / "cloud"))

@pytest.fixture
def conformance_env():
    return ConformanceEnv(seam=SEAM)

def example(type_name):
    return ConformanceExample(
        type=type_name,
        minimal={{"name": "a-{{run}}"}},
        full={{"name": "a-{{run}}", "size": 3, "secret": "hunter2-{{run}}"}},
        updates={{"size": 4}},
        force_new={{"name": "b-{{run}}"}},
        census=census,
        xfail=XFAIL.get(type_name, {{}}),
    )

class TestToy(ConformanceSuite):
    examples = [example(t) for t in {types}]
'''


@pytest.fixture
def toy(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The toy provider installed as a distribution in a folder on PYTHONPATH (the pytester run and
    the crash check's `cloudorch apply` subprocesses both find it through its entry point)."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(HERE / "toy_cloud.py", site / "toy_cloud.py")
    info = site / "cloudorch_toy-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cloudorch-toy\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\ntoy = toy_cloud:ToyProvider\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    return tmp_path / "conformance.json"


def _run(pytester: pytest.Pytester, report: Path, types: list[str], xfail: dict[str, Any] | None = None,
         *args: str) -> tuple[pytest.RunResult, dict[str, dict[str, str]]]:
    pytester.makepyfile(test_toy=TEST_MODULE.format(types=repr(types), xfail=repr(xfail or {})))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-q", "--conformance-report", str(report), *args
    )
    table = json.loads(report.read_text())
    return result, {t: row["checks"] for t, row in table["types"].items()}


def test_a_correct_type_passes_every_check_and_broken_types_fail_the_right_ones(
    pytester: pytest.Pytester, toy: Path
) -> None:
    result, checks = _run(
        pytester, toy, ["toy.item", "toy.dup", "toy.rekey", "toy.leak"], None, "--conformance-seed", "4242"
    )
    good = checks["toy.item"]
    assert {c for c, s in good.items() if s not in ("pass", "n/a")} == set(), good
    for check in ("create", "update[size]", "force_new[name]", "delete", "import", "find", "sensitive",
                  "fault_transient[create]", "fault_lost[create]", "fault_lost[update]", "fault_lost[delete]",
                  "crash"):
        assert good[check] == "pass", check
    assert good["read_many"] == good["drift"] == "n/a"  # not overridden; no out-of-band mutation declared

    # a create that is not idempotent: a lost response makes a second object
    assert checks["toy.dup"]["fault_lost[create]"] == "fail"
    assert checks["toy.dup"]["create"] == checks["toy.dup"]["fault_transient[create]"] == "pass"
    # an update that changes the id
    assert checks["toy.rekey"]["update[size]"] == "fail"
    assert checks["toy.rekey"]["create"] == checks["toy.rekey"]["force_new[name]"] == "pass"
    # a read that hands a sensitive value back in clear
    assert checks["toy.leak"]["sensitive"] == "fail"
    assert checks["toy.leak"]["create"] == checks["toy.leak"]["update[size]"] == "pass"

    failed = {c for t in ("toy.dup", "toy.rekey", "toy.leak") for c, s in checks[t].items() if s == "fail"}
    assert failed >= {"fault_lost[create]", "update[size]", "sensitive"}
    result.assert_outcomes(failed=sum(s == "fail" for row in checks.values() for s in row.values()),
                           passed=sum(s == "pass" for row in checks.values() for s in row.values()),
                           skipped=sum(s == "n/a" for row in checks.values() for s in row.values()))
    # every failure names the seed that repeats it
    result.stdout.fnmatch_lines(["*seed 4242: rerun with --conformance-seed 4242*"])


def test_a_known_defect_is_a_strict_xfail_that_fails_once_fixed(pytester: pytest.Pytester, toy: Path) -> None:
    xfail = {
        "toy.dup": {"fault_lost[create]": "a lost create response makes a duplicate"},
        "toy.item": {"update": "not a defect: this xfail must turn into a failure"},
    }
    _, checks = _run(pytester, toy, ["toy.item", "toy.dup"], xfail, "-k", "update or fault_lost-create")
    assert checks["toy.dup"]["fault_lost[create]"] == "xfail"
    assert checks["toy.item"]["update[size]"] == "fail"  # XPASS(strict)
    assert checks["toy.item"]["fault_lost[create]"] == "pass"


def test_the_table_is_rendered_into_the_docs_and_merged_by_type(pytester: pytest.Pytester, toy: Path) -> None:
    doc = pytester.path / "providers.md"
    doc.write_text("# Providers\n\n<!-- conformance-table:start -->\nold\n<!-- conformance-table:end -->\n\nafter\n")
    toy.write_text(json.dumps({"format": 1, "types": {"other.kept": {"checks": {"create": "pass"}}}}))
    _run(pytester, toy, ["toy.item"], None, "-k", "create and not fault", "--conformance-docs", str(doc))
    text = doc.read_text()
    assert "old" not in text and text.endswith("after\n")
    row = next(line for line in text.splitlines() if line.startswith("| `toy.item`"))
    assert row.split("|")[2].strip() == "pass"  # the create column
    assert "| `other.kept` |" in text  # a type not run this time keeps its row
