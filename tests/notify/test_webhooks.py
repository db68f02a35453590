"""Webhooks to a real HTTP server on 127.0.0.1: each run delivers exactly its events, with the
documented payload, a verifiable HMAC-SHA256 signature and a delivery id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema

from cloudorch.notify.payload import PAYLOAD_SCHEMA
from cloudorch.notify.signing import verify

SECRET = "test-hook-secret"  # as conftest.py sets $HOOK_SECRET
Receiver = Any  # conftest.Receiver


def _check(hit: Any) -> dict[str, Any]:
    doc = hit.doc
    jsonschema.validate(doc, PAYLOAD_SCHEMA)
    assert hit.signature and verify(hit.body, SECRET, hit.signature)
    assert not verify(hit.body + b" ", SECRET, hit.signature)
    assert hit.delivery == doc["delivery_id"] and hit.event == doc["event"]
    return dict(doc)


def test_failed_apply_delivers_apply_failed_signed(cli: Any, plan_copy: Any, hook_env: Receiver) -> None:
    plan = plan_copy("notify_failing.yaml")
    r = cli("apply", str(plan), "--auto-approve")
    assert r.code == 1
    assert hook_env.events() == ["apply.failed"]
    doc = _check(hook_env.delivered()[0])
    assert doc["plan"] == "notify_failing" and doc["command"] == "apply" and doc["result"] == "failed"
    assert doc["exit_code"] == 1
    assert doc["failed"] == [{"address": "broken", "error": "create of broken failed (fail_on_create is set)"}]
    runs = cli("runs", "list", str(plan), "--json").json()["runs"]
    assert runs[0]["id"] == doc["run_id"] and runs[0]["result"] == "failed" and runs[0]["events"] == ["apply.failed"]

    # fixed: the next apply succeeds and says so, once
    r = cli("apply", str(plan), "--auto-approve", "--var", "fail=false")
    assert r.code == 0, r.err
    assert hook_env.events() == ["apply.failed", "apply.succeeded"]
    _check(hook_env.delivered()[1])


def test_rollback_on_failure_delivers_failed_and_rolled_back(cli: Any, plan_copy: Any, hook_env: Receiver) -> None:
    plan = plan_copy("notify_failing.yaml")
    r = cli("apply", str(plan), "--auto-approve", "--on-failure", "rollback")
    assert r.code == 1
    assert hook_env.events() == ["apply.failed", "apply.rolled_back"]
    for hit in hook_env.delivered():
        _check(hit)


def test_drift_seen_twice_notifies_once_then_resolved(cli: Any, plan_copy: Any, hook_env: Receiver) -> None:
    plan = plan_copy("notify_drift.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    assert cli("drift", str(plan)).code == 0
    assert hook_env.events() == []  # no drift, nothing was drifted before: silence

    notes = plan.parent / "out" / "notes.txt"
    notes.write_text("edited by hand\n")
    cli("drift", str(plan))
    cli("drift", str(plan))  # the same drift again: no second notification
    assert hook_env.events() == ["drift.detected"]
    first = _check(hook_env.delivered()[0])
    assert list(first["detail"]["drift"]) == ["notes"]

    (plan.parent / "out" / "other.txt").write_text("changed too\n")
    cli("drift", str(plan))  # the drift changed: a new notification
    assert hook_env.events() == ["drift.detected", "drift.detected"]
    assert sorted(_check(hook_env.delivered()[1])["detail"]["drift"]) == ["notes", "other"]

    notes.write_text("hello\n")
    (plan.parent / "out" / "other.txt").write_text("other\n")
    cli("drift", str(plan))
    cli("drift", str(plan))
    assert hook_env.events() == ["drift.detected", "drift.detected", "drift.resolved"]
    resolved = _check(hook_env.delivered()[2])
    assert sorted(resolved["detail"]["resolved"]) == ["notes", "other"]


def test_release_events_each_delivered_once(
    cli: Any, plan_copy: Any, hook_env: Receiver, monkeypatch: Any
) -> None:
    plan = str(plan_copy("notify_release.yaml"))
    monkeypatch.setenv("CLOUDORCH_ACTOR", "erin")
    assert cli("release", "deploy", plan, "--stage", "dev", "--version", "1.0", "--auto-approve").code == 0
    assert hook_env.events() == []  # dev is not watched

    r = cli("release", "promote", plan, "--to", "prod", "--version", "1.0", "--auto-approve")
    assert r.code == 3
    assert hook_env.events() == ["release.awaiting_approval"]
    waiting = _check(hook_env.delivered()[-1])
    assert waiting["stage"] == "prod" and waiting["versions"]["release"] == "1.0"

    monkeypatch.setenv("CLOUDORCH_ACTOR", "dana")
    assert cli("release", "approve", plan, "--stage", "prod", "--version", "1.0").code == 0
    assert cli("release", "promote", plan, "--to", "prod", "--version", "1.0", "--auto-approve").code == 0
    assert hook_env.events() == ["release.awaiting_approval", "release.promoted"]
    promoted = _check(hook_env.delivered()[-1])
    assert promoted["actor"] == "dana" and promoted["versions"]["release"] == "1.0"

    assert cli("release", "deploy", plan, "--stage", "dev", "--version", "2.0", "--auto-approve").code == 0
    assert cli("release", "approve", plan, "--stage", "prod", "--version", "2.0").code == 0
    assert cli("release", "promote", plan, "--to", "prod", "--version", "2.0", "--auto-approve").code == 0
    assert hook_env.events()[-1] == "release.promoted"

    assert cli("release", "rollback", plan, "--stage", "prod", "--auto-approve").code == 0
    assert hook_env.events()[-1] == "release.rolled_back"
    back = _check(hook_env.delivered()[-1])
    assert back["versions"] == {"cloudorch": back["versions"]["cloudorch"], "release": "1.0", "previous": "2.0"}

    before = len(hook_env.delivered())
    assert cli("release", "reject", plan, "--version", "2.0", "--reason", "INC-1: broken carts").code == 0
    # two targets want rejections: the signed one (prod only: a rejection has no stage) does not,
    # the unsigned one for every stage does
    assert hook_env.events()[before:] == ["release.rejected"]
    rejected = hook_env.delivered()[-1]
    assert rejected.signature is None
    jsonschema.validate(rejected.doc, PAYLOAD_SCHEMA)
    assert rejected.doc["detail"]["reason"] == "INC-1: broken carts"
    assert cli("release", "reject", plan, "--version", "2.0", "--reason", "again").code == 0
    assert hook_env.events()[before:] == ["release.rejected"]  # already rejected: no news


def test_webhook_500_three_times_is_delivered_on_the_fourth_try(
    cli: Any, plan_copy: Any, hook_env: Receiver
) -> None:
    plan = plan_copy("notify_failing.yaml")
    hook_env.fail_with = [500, 500, 500]
    r = cli("apply", str(plan), "--auto-approve")
    assert r.code == 1
    assert [h.status for h in hook_env.hits] == [500, 500, 500, 200]
    assert len({h.delivery for h in hook_env.hits}) == 1  # one delivery id, four attempts
    assert "not delivered" not in r.err
    status = cli("notifications", "status", str(plan), "--json")
    assert status.code == 0
    doc = status.json()
    assert doc["pending"] == [] and doc["delivered"][0]["attempts"] == 4


def test_undeliverable_waits_warns_and_never_fails_the_apply(
    cli: Any, plan_copy: Any, hook_env: Receiver, monkeypatch: Any
) -> None:
    plan = plan_copy("notify_failing.yaml")
    monkeypatch.setenv("CLOUDORCH_NOTIFY_BUDGET", "0.2")
    hook_env.fail_with = [503] * 1000
    r = cli("apply", str(plan), "--auto-approve", "--var", "fail=false")
    assert r.code == 0  # the apply succeeded; only its notification did not get through
    assert "not delivered" in r.err and "HTTP 503" in r.err
    assert "cloudorch-token-abcdef" not in r.err  # the URL's path is masked
    status = cli("notifications", "status", str(plan), "--json")
    assert status.code == 1
    (pending,) = status.json()["pending"]
    assert pending["event"] == "apply.succeeded" and "HTTP 503" in pending["last_error"]
    assert "cloudorch-token-abcdef" not in status.out

    hook_env.fail_with = []
    retried = cli("notifications", "retry", str(plan), "--json")
    assert retried.code == 0
    assert [e["delivery_id"] for e in retried.json()["delivered"]] == [pending["delivery_id"]]
    assert hook_env.delivered()[-1].delivery == pending["delivery_id"]
    assert cli("notifications", "status", str(plan), "--json").json()["pending"] == []


def test_outbox_retried_by_the_next_command_with_the_same_delivery_id(
    cli: Any, plan_copy: Any, hook_env: Receiver, monkeypatch: Any
) -> None:
    plan = plan_copy("notify_failing.yaml")
    monkeypatch.setenv("CLOUDORCH_NOTIFY_BUDGET", "0")
    hook_env.fail_with = [502]
    assert cli("apply", str(plan), "--auto-approve").code == 1
    (first,) = hook_env.hits
    monkeypatch.setenv("CLOUDORCH_NOTIFY_BUDGET", "10")
    assert cli("plan", str(plan)).code == 0  # any later command on this plan's state flushes the outbox
    assert [h.delivery for h in hook_env.delivered()] == [first.delivery]
    assert hook_env.delivered()[0].body == first.body


def test_secrets_in_urls_are_masked_in_history_and_status(
    cli: Any, plan_copy: Any, hook_env: Receiver, tmp_path: Path
) -> None:
    plan = plan_copy("notify_failing.yaml")
    cli("apply", str(plan), "--auto-approve")
    run_id = cli("runs", "list", str(plan), "--json").json()["runs"][0]["id"]
    shown = cli("runs", "show", str(plan), run_id, "--json")
    assert shown.code == 0
    deliveries = shown.json()["events"][0]["deliveries"]
    assert deliveries[0]["target"].startswith("http://127.0.0.1:") and deliveries[0]["target"].endswith("/***")
    stored = b"".join(p.read_bytes() for p in (tmp_path / ".cloudorch" / "runs").rglob("*.json"))
    assert b"cloudorch-token-abcdef" not in stored


def test_policy_block_override_and_revert_each_deliver_their_event(
    cli: Any, plan_copy: Any, hook_env: Receiver, tmp_path: Path
) -> None:
    """`--notify URL` hears of every event: each command delivers exactly its own."""
    policed = plan_copy("policed.yaml")
    url = hook_env.url
    assert cli("apply", str(policed), "--auto-approve", "--notify", url).code == 3
    assert hook_env.events() == ["policy.blocked"]
    blocked = hook_env.delivered()[-1].doc
    assert blocked["result"] == "blocked" and blocked["exit_code"] == 3
    assert "no-tmp-files" in blocked["detail"]["policies"]
    assert hook_env.delivered()[-1].signature is None  # ad hoc, and no CLOUDORCH_NOTIFY_SECRET set

    r = cli("apply", str(policed), "--auto-approve", "--notify", url, "--override", "no-tmp-files",
            "--reason", "INC-7: hotfix")
    assert r.code == 0, r.err
    assert hook_env.events()[1:] == ["policy.overridden", "apply.succeeded"]
    overridden = hook_env.delivered()[1].doc
    assert overridden["detail"]["policies"][0]["policy_id"] == "no-tmp-files"

    plan = plan_copy("notify_failing.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 1  # serial 1: `fine` only
    assert cli("apply", str(plan), "--auto-approve", "--var", "fail=false").code == 0  # serial 2
    before = len(hook_env.delivered())
    r = cli("rollback", str(plan), "--to", "1", "--auto-approve", "--var", "fail=false")
    assert r.code == 0, r.err
    assert hook_env.events()[before:] == ["apply.rolled_back"]
    assert _check(hook_env.delivered()[-1])["command"] == "rollback"
