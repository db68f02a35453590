"""Email through apprise to a local SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from typing import Any

import pytest

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
pytest.importorskip("apprise")


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:  # a free port (the controller's ready check cannot use port 0)
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    from aiosmtpd.smtp import AuthResult

    # apprise logs in when the URL has credentials: accept any, over plain SMTP (this is a test server)
    controller = aiosmtpd_controller.Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        auth_require_tls=False,
        authenticator=lambda *args: AuthResult(success=True),
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_failed_apply_is_mailed_through_apprise(
    cli: Any, plan_copy: Any, smtp: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, port = smtp
    plan = plan_copy("notify_failing.yaml")
    monkeypatch.setenv("HOOK_URL", "https://hooks.invalid/unused")  # the plan's webhook is not tested here
    monkeypatch.setenv("CLOUDORCH_NOTIFY_BUDGET", "0")
    url = f"mailto://ops:pw-secret-123@example.com?smtp=127.0.0.1&port={port}&mode=insecure&to=oncall@example.com"
    r = cli("apply", str(plan), "--auto-approve", "--notify", url)
    assert r.code == 1
    assert "pw-secret-123" not in r.err
    (msg,) = inbox.messages
    assert "apply.failed" in str(msg["Subject"]) and "notify_failing" in str(msg["Subject"])
    parts = [p.get_payload(decode=True) for p in msg.walk() if not p.is_multipart()]
    assert any(b"broken: create of broken failed" in p for p in parts)
