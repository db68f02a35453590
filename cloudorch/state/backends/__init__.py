"""State backends: where a state document lives and how it is locked (`base.StateBackend`).

`local` is the default (files under `.cloudorch/`); remote stores (S3, GCS, Azure Blob) implement
the same interface with their own compare-and-swap. Backends never interpret resources.
`open_backend` turns a `--backend` URL or a plan's `backend:` block into one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cloudorch.errors import ConfigError
from cloudorch.state.backends.base import HistoryEntry, StateBackend
from cloudorch.state.backends.local import LocalBackend

__all__ = ["HistoryEntry", "LocalBackend", "StateBackend", "open_backend"]


def open_backend(url: str | None, block: Mapping[str, Any], *, key: str, local_root: Path) -> StateBackend:
    """The backend for `url` (from --backend) or else `block["url"]`; local under `local_root` by default.

    `block` holds the plan's per-backend options (endpoint, region, encryption, ...).
    """
    target = url or block.get("url")
    if not target:
        return LocalBackend(local_root, key)
    scheme, sep, rest = str(target).partition("://")
    if not sep:
        raise ConfigError(
            f"backend {target!r}: expected a URL such as s3://bucket/prefix or file://path",
            hint="schemes: s3://, gs://, azblob://, file://",
        )
    if scheme == "file":
        return LocalBackend(Path(rest), key)
    raise ConfigError(
        f"backend {target!r}: unknown scheme {scheme}://",
        hint="schemes: s3://, gs://, azblob://, file://",
    )
