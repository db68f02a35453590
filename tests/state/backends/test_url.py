"""Backend URLs and `backend:` options: parsed, or refused with the field and a hint (no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudorch.errors import ConfigError, Location
from cloudorch.state.backends import LocalBackend, open_backend, parse_backend_url


@pytest.mark.parametrize(
    ("text", "scheme", "bucket", "container", "prefix"),
    [
        ("s3://team-state/shop", "s3", "team-state", "", "shop"),
        ("s3://team-state", "s3", "team-state", "", ""),
        ("gs://team-state/a/b/", "gs", "team-state", "", "a/b"),
        ("azblob://acct1/tfstate/shop", "azblob", "acct1", "tfstate", "shop"),
        ("file:///srv/state", "file", "", "", "/srv/state"),
    ],
)
def test_urls_parse(text: str, scheme: str, bucket: str, container: str, prefix: str) -> None:
    url = parse_backend_url(text)
    assert (url.scheme, url.bucket, url.container, url.prefix) == (scheme, bucket, container, prefix)


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("team-state/shop", "expected a URL", "s3://"),
        ("gcs://b/p", "unknown scheme gcs://", "gs://bucket/prefix"),
        ("s4://bucket", "unknown scheme s4://", "s3"),
        ("s3://", "needs a bucket", "s3://"),
        ("s3://Team_State/x", "not a valid bucket name", "lowercase"),
        ("azblob://acct1", "needs an account and a container", "azblob://"),
        ("azblob://Acct/c0ntainer", "not a storage account name", "lowercase"),
    ],
)
def test_bad_urls_say_why(text: str, message: str, hint: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_backend_url(text, Location("plan.yaml", 4, field="backend.url"))
    assert message in err.value.message
    assert err.value.hint is not None and hint in err.value.hint
    assert str(err.value).startswith("plan.yaml:4")


def _locate(*field: str | int) -> Location:
    return Location("plan.yaml", 7, field=".".join(["backend", *map(str, field)]))


def test_options_are_checked_per_scheme(tmp_path: Path) -> None:
    def open_(url: str, **block: object) -> object:
        return open_backend(url, block, key="shop", local_root=tmp_path, locate=_locate)

    with pytest.raises(ConfigError, match=r"backend\.kms_key_name: unknown option") as err:
        open_("s3://team-state/shop", kms_key_name="k")
    assert err.value.hint is not None and "gs://" in err.value.hint
    assert err.value.location is not None and err.value.location.line == 7
    with pytest.raises(ConfigError, match="lease_seconds"):
        open_("gs://team-state/shop", lease_seconds=0)
    with pytest.raises(ConfigError, match="exactly one of key_env and key_file"):
        open_("s3://team-state/shop", encryption={"key_env": "A", "key_file": "b"})
    # local state takes encryption too; an unset key variable is located at the block
    with pytest.raises(ConfigError, match="NO_SUCH_STATE_KEY_VAR is not set") as unset:
        open_("file://" + str(tmp_path), encryption={"key_env": "NO_SUCH_STATE_KEY_VAR"})
    assert unset.value.location is not None and unset.value.location.line == 7
    with pytest.raises(ConfigError, match="options without a `url`"):
        open_backend(None, {"region": "eu-west-1"}, key="shop", local_root=tmp_path, locate=_locate)


def test_local_stays_the_default(tmp_path: Path) -> None:
    backend = open_backend(None, {}, key="shop", local_root=tmp_path)
    assert isinstance(backend, LocalBackend) and backend.root == tmp_path
    moved = open_backend(f"file://{tmp_path / 'elsewhere'}", {"lease_seconds": 5}, key="shop", local_root=tmp_path)
    assert isinstance(moved, LocalBackend) and moved.root == tmp_path / "elsewhere" and moved.lease_seconds == 5
