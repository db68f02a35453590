"""Gates that need no cloud: window (and the stage reaching policies), http, command, overrides."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

Result = Any  # the `run` fixture's result (tests/release/conftest.py)

MONDAY_MORNING = "2026-11-23T09:30:00Z"  # 10:30 in Paris
FRIDAY_MORNING = "2026-11-27T09:30:00Z"
SUNDAY_NOON = "2026-11-29T12:00:00Z"


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def health_url() -> Iterator[tuple[str, type[_Health]]]:
    handler = type("Handler", (_Health,), {"status": 200})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health", handler
    finally:
        server.shutdown()
        server.server_close()


def _ready(run: Callable[..., Result], plan: Path, version: str = "1.0.0") -> None:
    got = run("release", "deploy", str(plan), "--stage", "dev", "--version", version, "--auto-approve", at=SUNDAY_NOON)
    assert got.code == 0, got.err


def _gates(got: Result) -> dict[str, bool]:
    return {g["gate"]: g["passed"] for g in got.json()["gates"]}


def test_window_http_and_command_gates(
    run: Callable[..., Result], release_plan: Callable[[str], Path], health_url: tuple[str, type[_Health]]
) -> None:
    plan = release_plan("release_two_stage.yaml")
    url, handler = health_url
    _ready(run, plan)
    promote = ("release", "promote", str(plan), "--to", "prod", "--dry-run", "--json", "--var", f"check_url={url}")

    got = run(*promote, at=MONDAY_MORNING)
    assert got.code == 0, got.err
    assert _gates(got) == {"policy": True, "window": True, "health.http": True, "health.command": True}

    # Friday is outside the stage's window but inside the prod-hours policy's
    got = run(*promote, at=FRIDAY_MORNING)
    assert got.code == 3 and _gates(got)["window"] is False and _gates(got)["policy"] is True

    # Sunday: the change_window policy matched to stage prod blocks too (the stage reached the policy input)
    got = run(*promote, at=SUNDAY_NOON)
    assert got.code == 3
    assert _gates(got) == {"policy": False, "window": False, "health.http": True, "health.command": True}
    assert "prod-hours" in next(g["detail"] for g in got.json()["gates"] if g["gate"] == "policy")

    handler.status = 503
    got = run(*promote, at=MONDAY_MORNING)
    detail = {g["gate"]: g["detail"] for g in got.json()["gates"]}
    assert got.code == 3 and "answered 503 after 2 attempt(s)" in detail["health.http"]
    handler.status = 200

    # the command check sees the version in CLOUDORCH_VERSION; --dry-run runs no command
    _ready(run, plan, "6.6.6")
    got = run(*promote, at=MONDAY_MORNING)
    detail = {g["gate"]: g["detail"] for g in got.json()["gates"]}
    assert got.code == 0 and "not run (--dry-run" in detail["health.command"]
    got = run(*[a for a in promote if a != "--dry-run"], at=MONDAY_MORNING)
    assert got.code == 3 and _gates(got)["health.command"] is False


def test_override_waives_a_gate_and_is_recorded(
    run: Callable[..., Result], release_plan: Callable[[str], Path], health_url: tuple[str, type[_Health]]
) -> None:
    plan = release_plan("release_two_stage.yaml")
    url, _ = health_url
    _ready(run, plan)
    args = ("release", "promote", str(plan), "--to", "prod", "--auto-approve", "--var", f"check_url={url}")
    got = run(*args, "--override", "window", at=FRIDAY_MORNING)
    assert got.code == 1 and "--override needs --reason" in got.err
    got = run(*args, "--override", "window", "--reason", "INC-7 hotfix", actor="dana", at=FRIDAY_MORNING)
    assert got.code == 0, got.err
    assert "OVERRIDDEN" in got.out
    events = run("release", "history", str(plan), "--stage", "prod", "--json").json()["events"]
    assert [(e["kind"], e["actor"], e["reason"]) for e in events] == [
        ("override", "dana", "INC-7 hotfix"),
        ("promote", "dana", None),
    ]
    assert events[0]["detail"]["gate"] == "window"


def test_plain_commands_on_a_staged_plan_name_their_stage(
    run: Callable[..., Result], release_plan: Callable[[str], Path]
) -> None:
    plan = release_plan("release_two_stage.yaml")
    got = run("plan", str(plan))
    assert got.code == 1 and "has release stages (dev, prod)" in got.err and "--stage dev" in got.err
    got = run("apply", str(plan), "--stage", "prod", "--var", "version=3.0.0", "--auto-approve", at=SUNDAY_NOON)
    assert got.code == 3 and "prod-hours" in got.err  # the policy matched to prod blocks plain applies too
    assert "stage prod has release gates; `cloudorch apply` does not evaluate them" in got.err
    got = run("apply", str(plan), "--stage", "dev", "--var", "version=3.0.0", "--auto-approve", at=SUNDAY_NOON)
    assert got.code == 0, got.err
    assert run("output", str(plan), "label", "--stage", "dev").out.strip() == "dev-3.0.0"


def test_a_plan_saved_for_a_stage_applies_to_that_stage(
    run: Callable[..., Result], release_plan: Callable[[str], Path]
) -> None:
    plan = release_plan("release_two_stage.yaml")
    saved = plan.parent / "dev.plan.json"
    got = run("plan", str(plan), "--stage", "dev", "--var", "version=4.0.0", "-o", str(saved))
    assert got.code == 0, got.err
    got = run("apply", str(saved))  # no --stage: the saved plan knows its state document
    assert got.code == 0, got.err
    assert run("output", str(plan), "label", "--stage", "dev").out.strip() == "dev-4.0.0"
