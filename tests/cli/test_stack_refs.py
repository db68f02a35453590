"""Cross-stack references: `${stacks.NAME.outputs.OUT}` read from another stack's state at plan time."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stacks"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "stacks")
    monkeypatch.chdir(tmp_path / "stacks")
    return tmp_path / "stacks"


def _files_with(root: Path, secret: str) -> list[str]:
    found = (p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes())
    return sorted(str(p.relative_to(root)) for p in found)


def test_a_stack_reads_another_stacks_outputs_from_its_state(cli: Any, world: Path) -> None:
    secret = f"n3t-{uuid.uuid4().hex}"
    before = cli("plan", "app/plan.yaml", "--var", f"network_token={secret}")
    assert before.code == 1
    assert "app/plan.yaml:12" in before.err and "stack `network` has no state yet" in before.err

    assert cli("apply", "--auto-approve", "network/plan.yaml", "--var", f"token={secret}").code == 0
    net = cli("output", "network/plan.yaml", "--var", f"token={secret}", "--json").json()
    planned = cli("plan", "app/plan.yaml", "--var", f"network_token={secret}", "--json")
    assert planned.code == 0, planned.err
    changes = {c["address"]: c for c in planned.json()["changes"]}
    assert changes["svc"]["after"]["values"] == {"vpc": net["vpc_id"], "cidr": "10.0.0.0/16"}
    assert changes["auth"]["after"]["values"] == "(sensitive)"  # a sensitive output stays sensitive

    applied = cli("apply", "--auto-approve", "app/plan.yaml", "--var", f"network_token={secret}")
    assert applied.code == 0, applied.err
    assert cli("output", "app/plan.yaml", "--var", f"network_token={secret}", "--json").json()["vpc"] == net["vpc_id"]
    assert secret not in planned.out + planned.err + applied.out + applied.err
    assert _files_with(world, secret) == []


def test_a_saved_plan_is_stale_when_the_stack_it_reads_moved(cli: Any, world: Path) -> None:
    secret = f"n3t-{uuid.uuid4().hex}"
    assert cli("apply", "--auto-approve", "network/plan.yaml", "--var", f"token={secret}").code == 0
    assert cli("plan", "app/plan.yaml", "--var", f"network_token={secret}", "-o", "saved.json").code == 0
    # the network stack is re-created: its vpc id, which the saved plan holds, is another
    assert cli("apply", "--auto-approve", "network/plan.yaml", "--var", f"token={secret}", "--replace", "vpc").code == 0
    r = cli("apply", "saved.json", "--var", f"network_token={secret}")
    assert r.code != 0 and "changed since the plan was saved" in r.err


def test_stack_reference_errors_are_located(cli: Any, world: Path) -> None:
    assert cli("apply", "--auto-approve", "network/plan.yaml", "--var", "token=abcdefgh").code == 0
    # the network stack's required `token` is not needed to read its plain outputs from state...
    (world / "app" / "no_vars.yaml").write_text(
        "version: 1\nstacks:\n  network: {plan: ../network/plan.yaml}\n"
        "resources:\n  x: {type: core.null, properties: {values: {v: '${stacks.network.outputs.cidr}'}}}\n"
    )
    plain = cli("plan", "app/no_vars.yaml", "--json")
    assert plain.code == 0 and plain.json()["changes"][0]["after"]["values"] == {"v": "10.0.0.0/16"}
    # ...but a sensitive output is computed again from that plan, which needs it: `stacks.network.vars`
    (world / "app" / "no_vars_secret.yaml").write_text(
        "version: 1\nstacks:\n  network: {plan: ../network/plan.yaml}\n"
        "resources:\n  x: {type: core.null, properties: {values: {v: '${stacks.network.outputs.token}'}}}\n"
    )
    needs_vars = cli("plan", "app/no_vars_secret.yaml")
    assert needs_vars.code == 1 and "app/no_vars_secret.yaml:5" in needs_vars.err
    assert "variable `token` has no value" in needs_vars.err and "stacks.network.vars" in needs_vars.err
    missing = cli("plan", "app/missing_output.yaml", "--var", "network_token=abcdefgh")
    assert missing.code == 1
    assert "app/missing_output.yaml:10" in missing.err
    assert "has no output `subnet_id`" in missing.err and "cidr, token, vpc_id" in missing.err

    leaky = cli("plan", "app/leaky_output.yaml")
    assert leaky.code == 1 and "output `copied`" in leaky.err and "not declared sensitive" in leaky.err

    loop = cli("plan", "loop/a.yaml")
    assert loop.code == 1 and "cycle" in loop.err and "Traceback" not in loop.err

    (world / "app" / "undeclared.yaml").write_text(
        "version: 1\nresources:\n  x: {type: core.null, properties: {values: {v: '${stacks.net.outputs.a}'}}}\n"
    )
    undeclared = cli("plan", "app/undeclared.yaml")
    assert undeclared.code == 1 and "does not declare" in undeclared.err and "undeclared.yaml:3" in undeclared.err
