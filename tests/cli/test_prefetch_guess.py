"""The store guess of `cli/prefetch.py` reads only the top-level `backend:` block's own `url:` key."""

from __future__ import annotations

import pytest

from cloudorch.cli.prefetch import scheme_in_plan


@pytest.mark.parametrize(
    ("text", "scheme"),
    [
        ("backend:\n  # url: s3://old/place\n  url: gs://b/p\n", "gs"),  # a commented-out url is not the url
        ("backend:\n  # url: s3://old/place\n  lease_seconds: 30\n", None),
        ("backend:\n  url: s3://b/p#not-a-comment\n", "s3"),
        ("backend:\n  kms_url: s3://not/the/store\n", None),
        ("backend:\n  encryption: {key_url: 's3://k'}\n", None),
        ("backend: {lease_seconds: 30, url: \"azblob://a/c/p\"}  # flow style\n", "azblob"),
        ("'backend':\n  url: s3://b/p\n", "s3"),
    ],
)
def test_only_the_blocks_own_url_counts(text: str, scheme: str | None) -> None:
    assert scheme_in_plan(text) == scheme
