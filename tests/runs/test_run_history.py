"""The run history: records beside state, the index, filters, retention, and recording that never
gets in the way of the command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cloudorch.runs.history import RunHistory
from cloudorch.runs.record import RunRecord, new_run_id
from cloudorch.runs.storage import LocalRunStorage

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    from cloudorch.cli import main

    class Result:
        def __init__(self, code: int, out: str, err: str) -> None:
            self.code, self.out, self.err = code, out, err

        def json(self) -> Any:
            return json.loads(self.out)

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def _plan(tmp_path: Path, name: str = "failing.yaml") -> Path:
    target = tmp_path / name
    target.write_text((FIXTURES / name).read_text())
    return target


def test_each_command_is_recorded_with_its_result(cli: Any, tmp_path: Path, monkeypatch: Any) -> None:
    plan = _plan(tmp_path)
    monkeypatch.setenv("CLOUDORCH_ACTOR", "alice")
    assert cli("plan", str(plan)).code == 0
    assert cli("apply", str(plan), "--auto-approve").code == 1
    assert cli("recover", str(plan)).code == 0
    runs = cli("runs", "list", str(plan), "--json").json()["runs"]
    assert [r["command"] for r in runs] == ["recover", "apply", "plan"]
    recover, apply, plan_run = runs
    assert plan_run["result"] == "succeeded" and plan_run["counts"] == {"create": 3}
    assert apply["result"] == "failed" and apply["exit_code"] == 1 and apply["actor"] == "alice"
    assert apply["failed"] == 1

    shown = cli("runs", "show", str(plan), apply["id"][:22], "--json").json()
    assert shown["changed"] == ["fine"]
    assert shown["failed"] == [{"address": "broken", "error": "create of broken failed (fail_on_create is set)"}]
    assert shown["host"] and shown["started"] <= shown["ended"]

    failed = cli("runs", "list", str(plan), "--failed", "--json").json()["runs"]
    assert [r["id"] for r in failed] == [apply["id"]]
    assert cli("runs", "list", str(plan), "--since", "2999-01-01", "--json").json()["runs"] == []
    assert len(cli("runs", "list", str(plan), "--since", "1h", "--json").json()["runs"]) == 3
    assert cli("runs", "list", str(plan), "--limit", "1", "--json").json()["runs"][0]["id"] == recover["id"]

    text = cli("runs", "list", str(plan))
    assert text.code == 0 and apply["id"] in text.out and "failed (exit 1" in text.out
    shown_text = cli("runs", "show", str(plan), apply["id"])
    assert "failed: broken: create of broken failed" in shown_text.out

    # without a plan file: every plan with local state here
    monkeypatch.chdir(tmp_path)
    assert len(cli("runs", "list", "--json").json()["runs"]) == 3


def test_unknown_run_and_bad_since_are_clear_errors(cli: Any, tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    cli("plan", str(plan))
    r = cli("runs", "show", str(plan), "nope", "--json")
    assert r.code == 1 and "no run 'nope'" in r.json()["message"]
    r = cli("runs", "list", str(plan), "--since", "yesterday-ish", "--json")
    assert r.code == 1 and "--since" in r.json()["message"]


def test_a_policy_block_is_recorded_as_blocked(cli: Any, tmp_path: Path) -> None:
    plan = _plan(tmp_path, "policed.yaml")
    r = cli("plan", str(plan))
    runs = cli("runs", "list", str(plan), "--json").json()["runs"]
    assert r.code == 3 and runs[0]["result"] == "blocked" and runs[0]["exit_code"] == 3
    assert runs[0]["events"] == ["policy.blocked"]
    shown = cli("runs", "show", str(plan), runs[0]["id"], "--json").json()
    assert any(p["blocking"] for p in shown["policy"])


def test_retention_keeps_the_newest_and_deletes_older_records(
    cli: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    plan = _plan(tmp_path)
    monkeypatch.setenv("CLOUDORCH_RUNS_KEEP", "2")
    for _ in range(4):
        cli("plan", str(plan))
    runs = cli("runs", "list", str(plan), "--json").json()["runs"]
    assert len(runs) == 2
    folder = tmp_path / ".cloudorch" / "runs" / "failing..runs"
    assert sorted(p.name for p in folder.glob("run-*.json")) == sorted(f"run-{r['id']}.json" for r in runs)


def test_a_run_history_that_cannot_be_written_only_warns(cli: Any, tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    (tmp_path / ".cloudorch").mkdir()
    (tmp_path / ".cloudorch" / "runs").write_text("a file where the run folder would be")
    r = cli("apply", str(plan), "--auto-approve", "--target", "fine")
    assert r.code == 0  # the apply itself succeeded
    assert "this run was not recorded in the run history" in r.err
    state = json.loads((tmp_path / ".cloudorch" / "state" / "failing.json").read_text())
    assert "fine" in state["state"]["resources"]


def test_concurrent_index_updates_lose_nothing(tmp_path: Path) -> None:
    import threading

    history = RunHistory(LocalRunStorage(tmp_path / "runs"))

    def record(n: int) -> None:
        for i in range(10):
            run = RunRecord(id=new_run_id(), command="plan", plan="p", plan_file="p.yaml", stage=str(n),
                            actor="a", host="h", started=f"2026-12-05T00:00:{i:02d}Z")
            history.record(run)

    threads = [threading.Thread(target=record, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(history.runs()) == 40
