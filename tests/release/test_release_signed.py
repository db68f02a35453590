"""Signed approvals (`approval: {signed: true, allowed_signers: FILE}`), run through the CLI with
real ed25519 keys made by ssh-keygen: only a valid signature by a listed key counts, and it counts
as the principal the file lists, whatever CLOUDORCH_ACTOR says."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloudorch.release.ledger import APPROVE, LedgerStore, event, ledger_key

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DEPLOYED = "2026-11-23T10:00:00Z"


def _key(folder: Path, name: str) -> tuple[Path, str]:
    """A fresh ed25519 key pair without a passphrase: (private key file, public key line)."""
    key = folder / "keys" / name
    key.parent.mkdir(exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key, " ".join(key.with_suffix(".pub").read_text().split()[:2])


@pytest.fixture
def signed_plan(tmp_path: Path, run: Callable[..., Any]) -> dict[str, Any]:
    plan = tmp_path / "plan.yaml"
    shutil.copy(FIXTURES / "release_signed.yaml", plan)
    keys = {name: _key(tmp_path, name) for name in ("alice", "bob", "mallory")}
    # mallory's key exists but is not listed: it was never reviewed into the repository
    (tmp_path / "signers").write_text(f"alice {keys['alice'][1]}\nbob {keys['bob'][1]}\n")
    got = run("release", "deploy", str(plan), "--stage", "dev", "--version", "1.0.0", "--auto-approve", at=DEPLOYED)
    assert got.code == 0, got.err
    return {"plan": plan, "keys": {n: k[0] for n, k in keys.items()}, "folder": tmp_path}


def _approve(
    run: Callable[..., Any], ctx: dict[str, Any], signer: str | None, actor: str, version: str = "1.0.0"
) -> Any:
    args = ["release", "approve", str(ctx["plan"]), "--stage", "prod", "--version", version, "--json"]
    if signer is not None:
        args += ["--sign-key", str(ctx["keys"][signer])]
    return run(*args, actor=actor)


def _promote(run: Callable[..., Any], ctx: dict[str, Any]) -> Any:
    return run("release", "promote", str(ctx["plan"]), "--to", "prod", "--auto-approve", "--json")


def _approval_verdict(doc: dict[str, Any]) -> dict[str, Any]:
    return next(v for v in doc["gates"] if v["gate"] == "approval")


def test_two_signed_approvals_from_two_keys_pass_the_gate(run: Callable[..., Any], signed_plan: dict[str, Any]) -> None:
    first = _approve(run, signed_plan, "alice", actor="alice")
    assert first.code == 0, first.err
    assert first.json()["actor"] == "alice" and first.json()["approvals"] == ["alice"]
    # bob signs from a shell where CLOUDORCH_ACTOR says someone else: his key says bob
    second = _approve(run, signed_plan, "bob", actor="ci-runner")
    assert second.code == 0, second.err
    assert second.json()["actor"] == "bob" and second.json()["satisfied"] is True
    got = _promote(run, signed_plan)
    assert got.code == 0, got.out + got.err
    verdict = _approval_verdict(got.json())
    assert verdict["passed"] and verdict["data"]["approved_by"] == ["alice", "bob"]


def test_one_key_under_two_actor_names_counts_once(run: Callable[..., Any], signed_plan: dict[str, Any]) -> None:
    assert _approve(run, signed_plan, "alice", actor="alice").code == 0
    again = _approve(run, signed_plan, "alice", actor="bob")  # the old trick: another name, same person
    assert again.code == 0, again.err
    assert again.json()["actor"] == "alice" and again.json()["already_approved"] is True
    assert again.json()["approvals"] == ["alice"] and again.json()["satisfied"] is False
    got = _promote(run, signed_plan)
    assert got.code == 3
    verdict = _approval_verdict(got.json())
    assert not verdict["passed"] and verdict["data"]["approved_by"] == ["alice"]


def test_unsigned_and_unlisted_keys_are_refused(run: Callable[..., Any], signed_plan: dict[str, Any]) -> None:
    unsigned = _approve(run, signed_plan, None, actor="bob")
    assert unsigned.code == 3 and "signed" in unsigned.out
    unlisted = _approve(run, signed_plan, "mallory", actor="carol")
    assert unlisted.code == 3 and "not listed" in unlisted.out
    assert _promote(run, signed_plan).code == 3


def _store(ctx: dict[str, Any]) -> LedgerStore:
    from cloudorch.run.options import RunOptions
    from cloudorch.run.session import backend_for, plan_key, read_plan

    plan = read_plan(RunOptions(plan_file=ctx["plan"]))
    key = ledger_key(plan_key(plan))
    return LedgerStore(backend_for(plan, RunOptions(plan_file=ctx["plan"]), key=key), plan_key(plan), key)


def _recorded(ctx: dict[str, Any]) -> list[Any]:
    return [e for e in _store(ctx).read().events if e.kind == APPROVE]


def test_forged_or_moved_approvals_do_not_count(run: Callable[..., Any], signed_plan: dict[str, Any]) -> None:
    """What lands in the ledger without a valid signature (written by anyone with state access)."""
    from cloudorch.clock import parse_iso

    assert _approve(run, signed_plan, "alice", actor="alice").code == 0
    assert _approve(run, signed_plan, "bob", actor="bob", version="0.9.0").code == 0
    alice, bob = _recorded(signed_plan)
    store = _store(signed_plan)
    when = parse_iso(alice.at)
    forged = [
        # alice's signature copied onto an approval claiming to be bob's
        event(APPROVE, actor="bob", at=when, stage="prod", version="1.0.0",
              signed={**alice.detail["signed"], "approver": "bob"}, signature=alice.detail["signature"]),
        # bob's signature of 0.9.0 moved onto 1.0.0
        event(APPROVE, actor="bob", at=parse_iso(bob.at), stage="prod", version="1.0.0",
              signed=bob.detail["signed"], signature=bob.detail["signature"]),
        # a tampered signature
        event(APPROVE, actor="carol", at=when, stage="prod", version="1.0.0",
              signed={**alice.detail["signed"], "approver": "carol"},
              signature=alice.detail["signature"].replace("A", "B", 3)),
        # no signature at all
        event(APPROVE, actor="carol", at=when, stage="prod", version="1.0.0"),
    ]
    store.append(forged, command="test")
    got = _promote(run, signed_plan)
    assert got.code == 3, got.out
    verdict = _approval_verdict(got.json())
    assert verdict["data"]["approved_by"] == ["alice"]
    reasons = {(i["actor"], i["reason"]) for i in verdict["data"]["ignored"]}
    assert len(verdict["data"]["ignored"]) == 4, reasons
    assert ("carol", "not signed") in reasons
    assert "ignored: bob" in verdict["detail"]


def test_a_key_removed_from_allowed_signers_no_longer_counts(
    run: Callable[..., Any], signed_plan: dict[str, Any]
) -> None:
    assert _approve(run, signed_plan, "alice", actor="alice").code == 0
    assert _approve(run, signed_plan, "bob", actor="bob").code == 0
    signers = signed_plan["folder"] / "signers"
    signers.write_text("\n".join(line for line in signers.read_text().splitlines() if not line.startswith("bob")))
    got = _promote(run, signed_plan)
    assert got.code == 3
    verdict = _approval_verdict(got.json())
    assert verdict["data"]["approved_by"] == ["alice"]
    assert any(i["actor"] == "bob" and "does not list" in i["reason"] for i in verdict["data"]["ignored"])


def test_an_edited_plan_file_voids_the_signatures(run: Callable[..., Any], signed_plan: dict[str, Any]) -> None:
    assert _approve(run, signed_plan, "alice", actor="alice").code == 0
    assert _approve(run, signed_plan, "bob", actor="bob").code == 0
    plan: Path = signed_plan["plan"]
    plan.write_text(plan.read_text() + "# a change after the approvals\n")
    got = _promote(run, signed_plan)
    assert got.code == 3
    reasons = [i["reason"] for i in _approval_verdict(got.json())["data"]["ignored"]]
    assert reasons == ["signed for another revision of the plan file"] * 2


@pytest.mark.parametrize(
    ("gate", "message", "field"),
    [
        ("{min: 1, from: [alice], signed: true}", "needs `allowed_signers`", "signed"),
        ("{min: 1, from: [alice], signed: true, allowed_signers: missing}", "not found", "allowed_signers"),
        ("{min: 1, from: [alice], allowed_signers: signers}", "only by a signed approval gate", "allowed_signers"),
    ],
)
def test_the_gate_grammar_is_checked_with_locations(
    run: Callable[..., Any], tmp_path: Path, gate: str, message: str, field: str
) -> None:
    plan = tmp_path / "plan.yaml"
    text = (FIXTURES / "release_signed.yaml").read_text()
    plan.write_text(text.replace("{min: 2, from: [alice, bob, carol], signed: true, allowed_signers: signers}", gate))
    (tmp_path / "signers").write_text("")
    got = run("validate", str(plan), "--json")
    assert got.code == 1, got.out
    doc = got.json()
    assert message in doc["message"]
    assert doc["location"]["line"] == 12 and doc["location"]["field"].endswith(f"approval.{field}")
