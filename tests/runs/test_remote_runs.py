"""Runs and the outbox kept beside remote state: S3 (moto), GCS (fake-gcs-server), Azure Blob
(Azurite), through the real SDK clients, with the same conditional writes as state."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

_KIT = Path(__file__).parent.parent / "state" / "backends" / "remote_testkit.py"
_spec = importlib.util.spec_from_file_location("remote_testkit_for_runs", _KIT)
assert _spec is not None and _spec.loader is not None
kit = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = kit  # its dataclasses look their module up
_spec.loader.exec_module(kit)

PLAN = """\
version: 1
name: remote_runs
resources:
  marker:
    type: core.null
    properties: {values: {a: 1}}
"""
SERVERS = {"s3": "moto_server", "gs": "fake_gcs", "azblob": "azurite"}


@pytest.fixture(params=kit.SCHEMES)
def remote(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    scheme = request.param
    r = kit.make_remote(scheme, {scheme: request.getfixturevalue(SERVERS[scheme])})
    for k, v in r.env.items():
        monkeypatch.setenv(k, v)
    return r


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    from cloudorch.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_runs_and_outbox_live_beside_remote_state(
    cli: Any, remote: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = tmp_path / "remote_runs.yaml"
    plan.write_text(PLAN)
    monkeypatch.setenv("CLOUDORCH_NOTIFY_BUDGET", "0")
    # a webhook nobody answers (a closed port on this machine): the event waits in the remote outbox
    monkeypatch.setenv("CLOUDORCH_NOTIFY", "http://127.0.0.1:9/hook-token-xyz")
    code, _, err = cli("apply", str(plan), "--auto-approve", "--backend", remote.url)
    assert code == 0, err
    assert "not delivered" in err and "hook-token-xyz" not in err
    code, out, err = cli("runs", "list", str(plan), "--backend", remote.url, "--json")
    assert code == 0, err
    doc = json.loads(out)
    (run,) = doc["runs"]
    assert run["command"] == "apply" and run["result"] == "succeeded"
    assert doc["storage"][0].startswith(f"{remote.scheme}://")
    raw = remote.raw_get("team/shop/remote_runs..runs/index.json")
    header, *lines = raw.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [run["id"]]
    (waiting,) = json.loads(header)["outbox"]
    assert waiting["event"] == "apply.succeeded" and b"hook-token-xyz" not in raw
    record = json.loads(remote.raw_get(f"team/shop/remote_runs..runs/run-{run['id']}.json"))
    assert record["changed"] == ["marker"]
    assert not (tmp_path / ".cloudorch" / "runs").exists()  # nothing local

    # two writers of the index at once: the conditional write makes one retry, nothing is lost
    from cloudorch.runs.history import RunHistory
    from cloudorch.runs.record import RunRecord, new_run_id
    from cloudorch.runs.storage import storage_beside

    history = RunHistory(storage_beside(remote.backend("remote_runs..runs")))

    def record(n: int) -> None:
        for _ in range(3):
            history.record(RunRecord(id=new_run_id(), command="plan", plan="remote_runs", plan_file="x",
                                     stage=str(n), actor="a", host="h", started=run["started"]))

    threads = [threading.Thread(target=record, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(history.runs()) == 10
