"""Target URLs are shown masked: nothing that could be a token, a password or a key survives."""

from __future__ import annotations

import pytest

from cloudorch.notify.targets import Target, mask_text, mask_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T000/B000/XXXXSECRET", "https://hooks.slack.com/***"),
        ("https://user:pa55word@hooks.example.com:8443/x?token=abc123", "https://hooks.example.com:8443/***"),
        ("https://hooks.example.com", "https://hooks.example.com"),
        ("http://[::1]:9000/hook-secret", "http://[::1]:9000/***"),
        ("slack://TokenA/TokenB/TokenC/#ops", "slack://***"),
        ("mailtos://ops:pw-secret@example.com?to=oncall@example.com", "mailtos://***"),
        ("not a url", "***"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_mask_text_hides_the_url_and_its_secret_parts() -> None:
    t = Target("mailtos://ops:pw-secret-9@example.com?to=oncall@example.com")
    text = f"could not log in to {t.url} as ops with pw-secret-9"
    masked = mask_text(text, [t])
    assert "pw-secret-9" not in masked and "mailtos://***" in masked


def test_the_same_url_signed_and_unsigned_are_two_targets() -> None:
    a, b = Target("https://h.example.com/x", secret_env="S"), Target("https://h.example.com/x")
    assert a.id != b.id and a.display == b.display
    assert Target("https://h.example.com/x", on=frozenset({"apply.failed"})).wants("apply.failed", None)
    assert not Target("https://h.example.com/x", stages=frozenset({"prod"})).wants("apply.failed", None)
