"""State backends: where a state document lives and how it is locked (`base.StateBackend`): local
files under `.cloudorch/` by default, or S3, GCS and Azure Blob (`remote`), sealed when configured.

Backends never interpret resources; cloud SDKs are imported only when a remote backend is opened.
Like the rest of `state`, they import nothing of cloudorch above the ground floor.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudorch.errors import ConfigError, Location
from cloudorch.state import lazy_exports

if TYPE_CHECKING:
    from cloudorch.state.backends.base import HistoryEntry, StateBackend
    from cloudorch.state.backends.local import LocalBackend
    from cloudorch.state.backends.store import LockSlot, ObjectStore
    from cloudorch.state.backends.url import BackendURL, CommonOptions, Locate, parse_backend_url

# loaded on first use, as in `cloudorch.state`: a store worker imports this package for `worker`
_EXPORTS = {
    "BackendURL": "cloudorch.state.backends.url",
    "HistoryEntry": "cloudorch.state.backends.base",
    "LocalBackend": "cloudorch.state.backends.local",
    "StateBackend": "cloudorch.state.backends.base",
    "parse_backend_url": "cloudorch.state.backends.url",
}

__all__ = ["BackendURL", "HistoryEntry", "LocalBackend", "StateBackend", "open_backend", "parse_backend_url"]


__getattr__ = lazy_exports(globals(), _EXPORTS)


def open_backend(
    url: str | None,
    block: Mapping[str, Any],
    *,
    key: str,
    local_root: Path,
    locate: Locate | None = None,
    env: Mapping[str, str] | None = None,
) -> StateBackend:
    """The backend for `url` (from --backend) or else `block["url"]`; local under `local_root` by default.

    `block` holds the plan's per-backend options (endpoint, region, encryption, ...), validated
    for the URL's scheme (a block with only common options means local state with those options;
    any backend, local too, seals documents when it has `encryption:`, see `state/crypto.py`).
    `locate(*field)` gives the file:line of a field of the block for errors. Local state keeps its
    journal under `local_root`; remote state keeps it beside the state.
    """
    from cloudorch.state.backends.url import parse_backend_url, parse_options

    environ = os.environ if env is None else env
    target = url or block.get("url")
    if not target:
        if _only_common(block):
            options = parse_options("file", block, locate)
            return _open_local(local_root, key, options, environ, locate)
        raise ConfigError(
            "backend: options without a `url`",
            hint="add `url: s3://bucket/prefix` (or gs://, azblob://, file://) to the backend block",
            location=locate() if locate is not None else None,
        )
    where: Location | None
    if url:
        where = Location("--backend")
    else:
        where = locate("url") if locate is not None else Location("backend", field="backend.url")
    parsed = parse_backend_url(str(target), where)
    options = parse_options(parsed.scheme, block, locate)
    if parsed.scheme == "file":
        return _open_local(Path(parsed.prefix), key, options, environ, locate)
    return _open_remote(parsed, options, key=key, local_root=local_root, env=environ)


def _open_local(
    root: Path, key: str, options: CommonOptions, env: Mapping[str, str], locate: Locate | None
) -> LocalBackend:
    from cloudorch.state.backends.local import LocalBackend

    cipher = None
    if options.encryption is not None:
        from cloudorch.state.crypto import cipher_from_options

        try:
            cipher = cipher_from_options(options.encryption, dict(env))
        except ConfigError as exc:
            # a key that is unset or malformed is a mistake in the plan's block: say where it is
            if exc.location is None and locate is not None:
                exc.location = locate("encryption")
            raise
    return LocalBackend(root, key, options.history_limit, lease_seconds=options.lease_seconds, cipher=cipher)


#: the SDK module each scheme needs, and the distribution that brings it
SDKS = {
    "s3": ("botocore", "cloudorch[aws]"),
    "gs": ("google.cloud.storage", "cloudorch[gcp]"),
    "azblob": ("azure.storage.blob", "cloudorch[azure]"),
}


def sdk_installed(scheme: str) -> bool:
    """Whether the SDK a remote scheme needs can be imported (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(SDKS[scheme][0]) is not None
    except ModuleNotFoundError:  # a parent package (google.cloud, azure.storage) is missing
        return False


def _require_sdk(scheme: str) -> None:
    """A missing SDK is a ConfigError naming what to install, not an ImportError later."""
    if not sdk_installed(scheme):
        module, extra = SDKS[scheme]
        raise ConfigError(
            f"backend {scheme}://: the {module} package is not installed",
            hint=f"pip install '{extra}' (its provider brings the SDK the backend uses)",
        )


def _only_common(block: Mapping[str, Any]) -> bool:
    return set(block) <= {"url", "lease_seconds", "history_limit", "encryption"}


def store_class(scheme: str) -> type[ObjectStore]:
    """The `ObjectStore` of a remote scheme (importing its module, not yet its SDK)."""
    if scheme == "s3":
        from cloudorch.state.backends.s3 import S3Store

        return S3Store
    if scheme == "gs":
        from cloudorch.state.backends.gcs import GcsStore

        return GcsStore
    from cloudorch.state.backends.azblob import AzureStore

    return AzureStore


def store_and_slot(
    parsed: BackendURL, options: Any, state_name: str, lock_name: str, env: Mapping[str, str]
) -> tuple[ObjectStore, LockSlot]:
    """The object store for `parsed` and the slot the lock of its object `state_name` lives in.

    A store worker passes plain copies of `parsed` and `options` (same attributes, no pydantic)."""
    from cloudorch.state.backends.store import ObjectLock

    if parsed.scheme == "s3":
        from cloudorch.state.backends.s3 import DynamoLock, S3Store

        s3 = S3Store(parsed, options, env)
        if options.lock_table:
            return s3, DynamoLock(s3, options.lock_table, f"{parsed.bucket}/{state_name}")
        return s3, ObjectLock(s3, lock_name)
    if parsed.scheme == "gs":
        from cloudorch.state.backends.gcs import GcsStore

        gcs = GcsStore(parsed, options, env)
        return gcs, ObjectLock(gcs, lock_name)
    from cloudorch.state.backends.azblob import AzureLeaseLock, AzureStore

    az = AzureStore(parsed, options, env)
    return az, AzureLeaseLock(az, lock_name, options.lease_seconds)


def _open_remote(
    parsed: BackendURL, options: Any, *, key: str, local_root: Path, env: Mapping[str, str]
) -> StateBackend:
    from cloudorch.state.backends import worker as workers
    from cloudorch.state.backends.remote import RemoteBackend
    from cloudorch.state.crypto import cipher_from_options

    _require_sdk(parsed.scheme)
    state_name, lock_name = parsed.object_name(key, ".json"), parsed.object_name(key, ".lock")
    store: ObjectStore
    slot: LockSlot
    # the CLI starts a worker early so the SDK loads on another core; the library runs stores here
    worker = workers.running(parsed.scheme)
    if worker is not None:
        handle = worker.open(parsed, options, state_name, lock_name, env)
        store, slot = workers.WorkerStore(worker, handle), workers.WorkerSlot(worker, handle)
    else:
        store, slot = store_and_slot(parsed, options, state_name, lock_name, env)
    return RemoteBackend(
        store,
        slot,
        state_name=state_name,
        key=key,
        local_root=local_root,
        cipher=cipher_from_options(options.encryption, dict(env)),
        lease_seconds=options.lease_seconds,
        history_limit=options.history_limit,
        # renewals on a client of their own in this process: never queued behind a slow upload
        renewal_slot=lambda: store_and_slot(parsed, options, state_name, lock_name, env)[1],
    )
