"""State in Google Cloud Storage: the object store adapter and its lock object.

Generation preconditions do the compare-and-swap: `if_generation_match=0` creates the lock only
if absent, `if_generation_match=<gen>` replaces the state (or renews the lock) only if nobody
wrote since we read generation `<gen>`. Reads report the store's clock (the response's `Date`,
the object's `Last-Modified`), so a lock's age is judged on it, not on this machine's clock.
History is the bucket's noncurrent versions (object versioning must be on). google-cloud-storage is
imported only when a backend is opened.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from cloudorch.errors import StateError
from cloudorch.state.backends.store import (
    ObjectStore,
    ObjectVersion,
    PreconditionFailed,
    StoredObject,
    http_date,
)

if TYPE_CHECKING:  # not at run time: a store worker hosts stores without pydantic
    from cloudorch.state.backends.url import BackendURL, GcsOptions


class GcsStore(ObjectStore):
    """One bucket, with Application Default Credentials (anonymous against an emulator endpoint)."""

    def __init__(self, url: BackendURL, options: GcsOptions, env: Mapping[str, str]) -> None:
        self.bucket_name = url.bucket
        self.options = options
        self.endpoint = options.endpoint or env.get("STORAGE_EMULATOR_HOST") or None
        self._bucket: Any = None
        self._lock = threading.Lock()
        self._times = threading.local()

    def bucket(self) -> Any:
        with self._lock:
            if self._bucket is None:
                client = self._make_client()
                # the store's clock (lock expiry): each response's Date and Last-Modified, kept per
                # thread, since a download hands back only the bytes
                session = getattr(client, "_http", None)
                hooks = getattr(session, "hooks", None)
                if isinstance(hooks, dict):
                    hooks.setdefault("response", []).append(self._remember_times)
                self._bucket = client.bucket(self.bucket_name)
            return self._bucket

    def _remember_times(self, response: Any, *args: Any, **kwargs: Any) -> None:
        headers = getattr(response, "headers", None) or {}
        self._times.last = (http_date(headers.get("Last-Modified")), http_date(headers.get("Date")))

    @classmethod
    def warm_up(cls) -> None:
        import google.auth  # noqa: F401
        from google.cloud import storage  # type: ignore[import-untyped,unused-ignore]  # noqa: F401

    def _make_client(self) -> Any:
        from google.cloud import storage  # type: ignore[import-untyped,unused-ignore]

        if self.endpoint:
            from google.auth.credentials import AnonymousCredentials

            credentials: Any = AnonymousCredentials()  # type: ignore[no-untyped-call,unused-ignore]
            return storage.Client(
                project=self.options.project or "cloudorch-local",
                credentials=credentials,
                client_options={"api_endpoint": self.endpoint},
            )
        import google.auth

        try:
            credentials, project = google.auth.default(scopes=["https://www.googleapis.com/auth/devstorage.read_write"])
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise StateError(
                f"backend gs://{self.bucket_name}: no Google credentials: {exc}",
                hint="run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS",
            ) from exc
        return storage.Client(project=self.options.project or project, credentials=credentials)

    @contextlib.contextmanager
    def errors(self, doing: str, name: str = "") -> Iterator[None]:
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as aexc

        try:
            yield
        except gexc.PreconditionFailed as exc:
            raise PreconditionFailed(str(exc)) from exc
        except gexc.NotFound as exc:
            raise StateError(
                f"could not {doing} {self.url(name)}: {exc.message}",
                hint=f"create the bucket with versioning on: gcloud storage buckets create gs://{self.bucket_name} "
                f"&& gcloud storage buckets update gs://{self.bucket_name} --versioning",
            ) from exc
        except gexc.Forbidden as exc:
            raise StateError(
                f"could not {doing} {self.url(name)}: {exc.message}",
                hint="check the credentials' roles on the bucket (roles/storage.objectAdmin)",
            ) from exc
        except (gexc.GoogleAPIError, aexc.GoogleAuthError, OSError) as exc:
            raise StateError(
                f"could not {doing} {self.url(name)}: {exc}", hint="check the endpoint, network and credentials"
            ) from exc

    # -- ObjectStore -----------------------------------------------------------------------

    def url(self, name: str) -> str:
        return f"gs://{self.bucket_name}/{name}"

    def _read(
        self, name: str, doing: str, *, generation: int | None = None, n: int | None = None
    ) -> StoredObject | None:
        from google.api_core import exceptions as gexc

        with self.errors(doing, name):
            blob = self.bucket().blob(name, generation=generation)
            try:
                data = blob.download_as_bytes() if n is None else blob.download_as_bytes(start=0, end=n - 1)
            except gexc.NotFound:
                if generation is not None:
                    raise
                return None
            except gexc.RequestRangeNotSatisfiable:
                return None
            modified, server_now = getattr(self._times, "last", (None, None))
            return StoredObject(data, str(blob.generation), blob.updated or modified, server_now)

    def get_lock(self, name: str) -> StoredObject | None:
        return self._read(name, "read the state lock in")

    def get(self, name: str) -> StoredObject | None:
        return self._read(name, "read state from")

    def get_head(self, name: str, n: int, version_id: str | None = None) -> StoredObject | None:
        return self._read(name, "read state from", generation=None if version_id is None else int(version_id), n=n)

    def get_version(self, name: str, version_id: str) -> bytes:
        got = self._read(name, "read state history from", generation=int(version_id))
        assert got is not None
        return got.data

    def put(self, name: str, data: bytes, *, if_token: str | None) -> str:
        with self.errors("write", name):
            blob = self.bucket().blob(name, kms_key_name=self.options.kms_key_name)
            blob.upload_from_string(
                data, content_type="application/json", if_generation_match=0 if if_token is None else int(if_token)
            )
            return str(blob.generation)

    def delete(self, name: str, *, if_token: str) -> None:
        from google.api_core import exceptions as gexc

        with self.errors("remove", name), contextlib.suppress(gexc.NotFound):
            self.bucket().blob(name).delete(if_generation_match=int(if_token))

    def list_names(self, prefix: str) -> list[str]:
        with self.errors("list the journal in", prefix):
            return [str(b.name) for b in self.bucket().client.list_blobs(self.bucket_name, prefix=prefix)]

    def delete_many(self, names: list[str]) -> None:
        from google.api_core import exceptions as gexc

        bucket = self.bucket()
        for name in names:
            with self.errors("remove the journal in", name), contextlib.suppress(gexc.NotFound):
                bucket.blob(name).delete()

    def delete_version(self, name: str, version_id: str) -> None:
        from google.api_core import exceptions as gexc

        with self.errors("remove an old version of", name), contextlib.suppress(gexc.NotFound):
            self.bucket().blob(name, generation=int(version_id)).delete()

    def versions(self, name: str, limit: int) -> list[ObjectVersion]:
        with self.errors("list state history in", name):
            # "true", not True: the client would send `versions=True`, which the GCS API accepts
            # but fake-gcs-server ignores; the lowercase value is what the API documents.
            versions: Any = "true"
            blobs = [b for b in self.bucket().client.list_blobs(self.bucket_name, prefix=name, versions=versions)]
        found = sorted((b for b in blobs if b.name == name), key=lambda b: int(b.generation), reverse=True)
        return [ObjectVersion(str(b.generation), b.time_deleted is None) for b in found[:limit]]

    def require_history(self) -> None:
        with self.errors("check versioning of", ""):
            bucket = self.bucket()
            bucket.reload()
            enabled = bool(bucket.versioning_enabled)
        if not enabled:
            raise StateError(
                f"bucket {self.bucket_name} has object versioning off: cloudorch keeps state history (state "
                "history, rollback) in object versions and will not write state without them",
                hint=f"gcloud storage buckets update gs://{self.bucket_name} --versioning",
            )
