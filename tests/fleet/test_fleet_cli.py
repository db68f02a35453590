"""`cloudorch fleet` through the CLI on a local process pool: order, skips, selection and reports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloudorch.cli import main


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _state(root: Path, folder: str, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((root / folder / ".cloudorch" / "state" / f"{name}.json").read_text())["state"]
    return doc


def test_plan_apply_and_replan_in_dependency_order(
    capsys: pytest.CaptureFixture[str], make_fleet: Callable[..., Path]
) -> None:
    root = make_fleet(services=6)
    code, out, err = _cli(capsys, "fleet", "plan", str(root), "--json")
    assert code == 2, err
    doc = json.loads(out)
    assert doc["counts"] == {"changes": 8}  # network, 6 services, edge: none applied yet, none fails
    assert doc["stacks"][0]["name"] == "network" and doc["stacks"][-1]["name"] == "edge"

    code, out, err = _cli(capsys, "fleet", "apply", str(root), "--auto-approve", "--json")
    assert code == 0, err
    finished = [line.split("] ", 1)[1].split(":")[0] for line in err.splitlines() if line.startswith("[")]
    assert finished[0] == "network" and finished[-1] == "edge"  # each started after what it reads
    vpc = _state(root, "network", "network")["outputs"]["vpc_id"]["value"]
    for i in range(6):
        app = _state(root, "services", f"svc{i}")["resources"]["app"]
        assert app["properties"]["values"]["vpc"] == vpc
    edge = _state(root, "edge", "edge")["resources"]["route"]["properties"]["values"]["to"]
    assert edge == _state(root, "services", "svc0")["outputs"]["app_id"]["value"]

    code, out, err = _cli(capsys, "fleet", "plan", str(root), "--json")
    assert code == 0, err
    assert json.loads(out)["counts"] == {"ok": 8}


def test_a_failed_stack_skips_only_the_stacks_that_read_it(
    capsys: pytest.CaptureFixture[str], make_fleet: Callable[..., Path]
) -> None:
    root = make_fleet(services=4, failing=(0,))
    code, out, _ = _cli(capsys, "fleet", "apply", str(root), "--auto-approve", "--json")
    assert code == 1
    status = {s["name"]: s for s in json.loads(out)["stacks"]}
    assert status["svc0"]["status"] == "failed" and "app" in status["svc0"]["message"]
    assert status["edge"]["status"] == "skipped" and "svc0" in status["edge"]["message"]
    assert all(status[f"svc{i}"]["status"] == "ok" for i in (1, 2, 3))
    assert status["network"]["status"] == "ok"
    assert not (root / "edge" / ".cloudorch" / "state" / "edge.json").exists()


def test_selection_reports_and_graph(
    capsys: pytest.CaptureFixture[str], make_fleet: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_fleet(services=3)
    assert _cli(capsys, "fleet", "apply", str(root), "--auto-approve")[0] == 0

    # --target-stack brings what reads it; --exclude-stack drops what reads it
    code, out, _ = _cli(capsys, "fleet", "plan", str(root), "--target-stack", "svc0", "--json")
    assert code == 0 and sorted(s["name"] for s in json.loads(out)["stacks"]) == ["edge", "svc0"]
    code, out, _ = _cli(capsys, "fleet", "plan", str(root), "--exclude-stack", "svc0", "--json")
    assert code == 0 and sorted(s["name"] for s in json.loads(out)["stacks"]) == ["network", "svc1", "svc2"]
    code, out, err = _cli(capsys, "fleet", "plan", str(root), "--exclude-stack", "network")
    assert code == 1 and "no stack matches" in err  # everything reads the network
    code, _, err = _cli(capsys, "fleet", "plan", str(root), "--target-stack", "nope")
    assert code == 1 and "no stack of this fleet matches" in err

    report = tmp_path / "junit.xml"
    code, out, _ = _cli(capsys, "fleet", "drift", str(root), "--format", "junit", "--report", str(report))
    assert code == 0
    suite = ET.fromstring(report.read_text()).find("testsuite")
    assert suite is not None and suite.get("tests") == "5" and suite.get("failures") == "0"
    assert ET.fromstring(out).find("testsuite") is not None

    code, out, _ = _cli(capsys, "fleet", "plan", str(root), "--format", "markdown")
    assert code == 0 and "| `network` |" in out and out.startswith("### cloudorch fleet plan: 5 stacks")

    code, out, _ = _cli(capsys, "fleet", "graph", str(root), "--format", "json")
    reads = {s["name"]: s["reads"] for s in json.loads(out)["stacks"]}
    assert reads["edge"] == ["svc0"] and reads["svc2"] == ["network"] and reads["network"] == []

    code, out, _ = _cli(capsys, "fleet", "status", str(root), "--json")
    rows = {r["name"]: r for r in json.loads(out)["stacks"]}
    assert rows["network"]["serial"] == 1 and rows["svc1"]["resources"] == 1 and rows["edge"]["waiting"] is None
    # from the run history: the newest run and what the newest drift check found
    assert rows["svc1"]["drift"] == "clean" and rows["svc1"]["last_run"]["command"] in ("drift", "plan")


def test_fleet_yaml_stages_tags_and_limits(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = tmp_path / "staged"
    (root / "apps").mkdir(parents=True)
    (root / "apps" / "web.yaml").write_text(
        "version: 1\nname: web\nstages:\n  dev: {}\n  prod: {needs: [dev]}\n"
        "resources:\n  site: {type: core.null, properties: {values: {stage: '${stage.name}'}}}\n"
    )
    (root / "fleet.yaml").write_text(
        "version: 1\nstacks:\n  - {path: 'apps/*.yaml', stages: [dev, prod], tags: [web], account: core-local}\n"
        "limits: {core-local: 1}\n"
    )
    fleet_file = str(root / "fleet.yaml")
    code, out, err = _cli(capsys, "fleet", "apply", fleet_file, "--stage", "dev", "--auto-approve", "--json")
    assert code == 0, err
    assert [s["name"] for s in json.loads(out)["stacks"]] == ["web.dev"]
    code, out, _ = _cli(capsys, "fleet", "plan", str(root / "fleet.yaml"), "--tag", "web", "--json")
    statuses = {s["name"]: s["status"] for s in json.loads(out)["stacks"]}
    assert code == 2 and statuses == {"web.dev": "ok", "web.prod": "changes"}

    # a fleet file from a pull request cannot name plans elsewhere on the machine
    for pattern in ("../*.yaml", "/etc/*.yaml", "apps/../../x.yaml", "~/plans/*.yaml"):
        (root / "fleet.yml").write_text(f"version: 1\nstacks:\n  - {{path: '{pattern}'}}\n")
        code, _, err = _cli(capsys, "fleet", "plan", str(root / "fleet.yml"))
        assert code == 1 and "fleet.yml:3" in err, (pattern, err)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "other.yaml").write_text("version: 1\nresources:\n  x: {type: core.null}\n")
    (root / "outside").symlink_to(elsewhere, target_is_directory=True)
    (root / "fleet.yml").write_text("version: 1\nstacks:\n  - {path: 'outside/*.yaml'}\n")
    code, _, err = _cli(capsys, "fleet", "plan", str(root / "fleet.yml"))
    assert code == 1 and "through a link" in err, err
    (root / "fleet.yml").unlink()
    (root / "outside").unlink()

    (root / "bad.yaml").write_text("version: 1\nstacks:\n  - {path: 'nothing/*.yaml'}\n")
    (root / "bad.yaml").rename(root / "fleet.yml")
    code, _, err = _cli(capsys, "fleet", "plan", str(root / "fleet.yml"))
    assert code == 1 and "fleet.yml:3" in err and "matches no plan file" in err


def test_apply_refuses_to_guess_without_a_terminal(
    capsys: pytest.CaptureFixture[str], make_fleet: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    root = make_fleet(services=1)
    code, _, err = _cli(capsys, "fleet", "apply", str(root))
    assert code == 1 and "--auto-approve" in err
    assert not (root / "network" / ".cloudorch").exists()


def test_a_cycle_between_stacks_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    loop = Path(__file__).resolve().parents[1] / "fixtures" / "stacks" / "loop"
    code, _, err = _cli(capsys, "fleet", "plan", str(loop))
    assert code == 1 and "cycle" in err and "Traceback" not in err
