"""State in Azure Blob Storage: the object store adapter and the blob-lease lock.

The state blob is replaced with `if_match` on the ETag we read. Before each replacement the
current version is kept as a blob snapshot taken on that same ETag, so history works on every
account (blob versioning is an account option; Azurite has none). The lock is a lease on
`prefix/KEY.lock`, renewed while the command runs, so it frees itself within the lease (15-60 s)
when a runner dies; the blob's content names the holder, and a holder whose cloudorch lease ran
out is broken on the ETag that was judged. azure-storage-blob is imported only when opened.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from cloudorch.errors import StateError
from cloudorch.state.backends.store import (
    Acquired,
    LockSlot,
    ObjectStore,
    ObjectVersion,
    PreconditionFailed,
    SeenLock,
    StoredObject,
    http_date,
    parse_lock,
)
from cloudorch.state.lock import LockInfo

if TYPE_CHECKING:  # not at run time: a store worker hosts stores without pydantic
    from cloudorch.state.backends.url import AzureOptions, BackendURL

#: Azure's own bounds on a blob lease
MIN_LEASE, MAX_LEASE = 15, 60


def _status(exc: Exception) -> int:
    return int(getattr(exc, "status_code", 0) or 0)


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "error_code", "") or "")


class AzureStore(ObjectStore):
    """One container, through a connection string or the account URL with DefaultAzureCredential."""

    def __init__(self, url: BackendURL, options: AzureOptions, env: Mapping[str, str]) -> None:
        self.account = url.bucket
        self.container_name = url.container
        self.options = options
        self.connection_string = options.connection_string or env.get("AZURE_STORAGE_CONNECTION_STRING") or None
        self._container: Any = None
        self._lock = threading.Lock()

    @classmethod
    def warm_up(cls) -> None:
        import azure.storage.blob  # noqa: F401

    def container(self) -> Any:
        with self._lock:
            if self._container is None:
                from azure.storage.blob import BlobServiceClient

                if self.connection_string:
                    service = BlobServiceClient.from_connection_string(self.connection_string)
                else:
                    from azure.identity import DefaultAzureCredential

                    account_url = self.options.account_url or f"https://{self.account}.blob.core.windows.net"
                    service = BlobServiceClient(
                        account_url, credential=DefaultAzureCredential(exclude_interactive_browser_credential=True)
                    )
                self._container = service.get_container_client(self.container_name)
            return self._container

    def blob(self, name: str, snapshot: str | None = None) -> Any:
        return self.container().get_blob_client(name, snapshot=snapshot)

    @contextlib.contextmanager
    def errors(self, doing: str, name: str = "") -> Iterator[None]:
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            HttpResponseError,
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )

        try:
            yield
        except (ResourceModifiedError, ResourceExistsError) as exc:
            raise PreconditionFailed(_error_code(exc)) from exc
        except ResourceNotFoundError as exc:
            if "ContainerNotFound" in _error_code(exc):
                raise StateError(
                    f"could not {doing} {self.url(name)}: container {self.container_name} does not exist",
                    hint=f"az storage container create --account-name {self.account} --name {self.container_name}",
                ) from exc
            raise StateError(f"could not {doing} {self.url(name)}: {exc.message}") from exc
        except ClientAuthenticationError as exc:
            raise StateError(
                f"could not {doing} {self.url(name)}: {exc.message}",
                hint="check the connection string or the credentials' role (Storage Blob Data Contributor)",
            ) from exc
        except HttpResponseError as exc:
            if _status(exc) == 412:
                raise PreconditionFailed(_error_code(exc)) from exc
            raise StateError(f"could not {doing} {self.url(name)}: {exc.message}") from exc
        except AzureError as exc:
            raise StateError(
                f"could not {doing} {self.url(name)}: {exc}", hint="check the account URL, network and credentials"
            ) from exc

    # -- ObjectStore -----------------------------------------------------------------------

    def url(self, name: str) -> str:
        return f"azblob://{self.account}/{self.container_name}/{name}"

    def read(
        self, name: str, doing: str, *, snapshot: str | None = None, n: int | None = None
    ) -> tuple[StoredObject, Any] | None:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        answered: list[Any] = []

        def remember(response: Any) -> None:  # the store's clock: the Date of the download's answer
            answered.append(response.http_response.headers.get("Date"))

        with self.errors(doing, name):
            try:
                downloader = self.blob(name, snapshot).download_blob(
                    offset=0 if n else None, length=n, raw_response_hook=remember
                )
                data = downloader.readall()
            except ResourceNotFoundError as exc:
                if "BlobNotFound" in _error_code(exc) or snapshot is None:
                    return None
                raise
            except HttpResponseError as exc:
                if _status(exc) == 416:  # a range on an empty blob
                    return StoredObject(b"", "", None), None
                raise
            props = downloader.properties
            server_now = http_date(answered[-1]) if answered else None
            return StoredObject(data, str(props.etag), props.last_modified, server_now), props

    def get(self, name: str) -> StoredObject | None:
        got = self.read(name, "read state from")
        return None if got is None else got[0]

    def get_head(self, name: str, n: int, version_id: str | None = None) -> StoredObject | None:
        got = self.read(name, "read state from", snapshot=version_id, n=n)
        return None if got is None else got[0]

    def get_version(self, name: str, version_id: str) -> bytes:
        got = self.read(name, "read state history from", snapshot=version_id)
        if got is None:
            raise StateError(f"snapshot {version_id} of {self.url(name)} is gone")
        return got[0].data

    def put(self, name: str, data: bytes, *, if_token: str | None) -> str:
        from azure.core import MatchConditions
        from azure.storage.blob import ContentSettings

        settings = ContentSettings(content_type="application/json")
        with self.errors("write", name):
            if if_token is None:
                got = self.blob(name).upload_blob(data, overwrite=False, content_settings=settings)
            else:
                got = self.blob(name).upload_blob(
                    data,
                    overwrite=True,
                    etag=if_token,
                    match_condition=MatchConditions.IfNotModified,
                    content_settings=settings,
                )
            return str(got["etag"])

    def list_names(self, prefix: str) -> list[str]:
        with self.errors("list the journal in", prefix):
            return [str(b.name) for b in self.container().list_blobs(name_starts_with=prefix)]

    def delete_many(self, names: list[str]) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        for name in names:
            with self.errors("remove the journal in", name), contextlib.suppress(ResourceNotFoundError):
                self.blob(name).delete_blob()

    def delete_version(self, name: str, version_id: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with self.errors("remove an old snapshot of", name), contextlib.suppress(ResourceNotFoundError):
            self.container().get_blob_client(name, snapshot=version_id).delete_blob()

    def before_overwrite(self, name: str, token: str) -> None:
        from azure.core import MatchConditions

        with self.errors("keep history of", name):
            self.blob(name).create_snapshot(etag=token, match_condition=MatchConditions.IfNotModified)

    def versions(self, name: str, limit: int) -> list[ObjectVersion]:
        with self.errors("list state history in", name):
            found = [
                b for b in self.container().list_blobs(name_starts_with=name, include=["snapshots"]) if b.name == name
            ]
        out = [ObjectVersion("", True)] if any(not b.snapshot for b in found) else []
        # snapshot ids are ISO 8601 timestamps: they sort by age
        out += [ObjectVersion(s, False) for s in sorted((str(b.snapshot) for b in found if b.snapshot), reverse=True)]
        return out[:limit]

    def require_history(self) -> None:
        """Snapshots need no account setting."""


class AzureLeaseLock(LockSlot):
    """The lock as a leased blob whose content names the holder.

    Take: create the blob with our LockInfo only if it does not exist, then lease it (two calls).
    A blob that exists belongs to someone: a holder whose cloudorch lease ran out (or whose
    process is gone) is replaced by breaking its Azure lease and leasing the blob again, both
    only on the ETag of the content judged stale, then writing our LockInfo under our lease.
    Release deletes the blob with our lease. While a command runs its lease is renewed; a runner
    that dies stops renewing and both its Azure lease and its LockInfo lease run out.
    """

    def __init__(self, store: AzureStore, name: str, lease_seconds: float) -> None:
        self.store = store
        self.name = name
        self.duration = min(max(math.ceil(lease_seconds), MIN_LEASE), MAX_LEASE)

    def _lease(self, lease_id: str | None = None) -> Any:
        from azure.storage.blob import BlobLeaseClient

        return BlobLeaseClient(self.store.blob(self.name), lease_id=lease_id)

    def create(self, info: LockInfo) -> Acquired | None:
        from azure.core import MatchConditions

        try:
            etag = self.store.put(self.name, info.to_json().encode(), if_token=None)
            lease = self._lease()
            with self.store.errors("take the state lock in", self.name):
                lease.acquire(lease_duration=self.duration, etag=etag, match_condition=MatchConditions.IfNotModified)
        except PreconditionFailed:
            return None
        return Acquired(str(lease.id))

    def _write(self, info: LockInfo, lease_id: str) -> bool:
        from azure.core.exceptions import HttpResponseError

        with self.store.errors("write the state lock in", self.name):
            try:
                self.store.blob(self.name).upload_blob(info.to_json().encode(), overwrite=True, lease=lease_id)
            except HttpResponseError as exc:
                if _status(exc) in (409, 412):  # the lease was broken or is another's
                    return False
                raise
        return True

    def read(self) -> SeenLock | None:
        got = self.store.read(self.name, "read the state lock in")
        if got is None:
            return None
        obj = got[0]
        return parse_lock(obj.data, obj.token, obj.modified, obj.server_now)

    def _break(self, etag: str) -> bool:
        """Break whatever Azure lease the blob has, only if its content is still `etag`."""
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError

        try:
            with self.store.errors("break the stale state lock in", self.name):
                try:
                    self._lease().break_lease(
                        lease_break_period=0, etag=etag, match_condition=MatchConditions.IfNotModified
                    )
                except HttpResponseError as exc:
                    if _status(exc) != 409:  # 409: no lease left to break (it ran out)
                        raise
        except PreconditionFailed:
            return False
        return True

    def take_over(self, info: LockInfo, seen: SeenLock) -> Acquired | None:
        from azure.core import MatchConditions

        if not self._break(seen.token):
            return None
        lease = self._lease()
        try:
            with self.store.errors("take the stale state lock in", self.name):
                lease.acquire(
                    lease_duration=self.duration, etag=seen.token, match_condition=MatchConditions.IfNotModified
                )
        except PreconditionFailed:
            return None
        if not self._write(info, lease.id):
            return None
        return Acquired(str(lease.id), seen.info)

    def renew(self, info: LockInfo, token: str) -> str | None:
        from azure.core.exceptions import HttpResponseError

        try:
            with self.store.errors("renew the state lock in", self.name):
                try:
                    self._lease(token).renew()
                except HttpResponseError as exc:
                    if _status(exc) in (409, 412):
                        return None
                    raise
        except PreconditionFailed:
            return None
        return token if self._write(info, token) else None

    def release(self, info: LockInfo, token: str) -> None:
        from azure.core.exceptions import HttpResponseError

        with contextlib.suppress(HttpResponseError, PreconditionFailed, StateError):
            self.store.blob(self.name).delete_blob(lease=token)

    def remove(self, seen: SeenLock) -> bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceNotFoundError

        if not self._break(seen.token):
            return False
        try:
            with self.store.errors("remove the state lock in", self.name):
                try:
                    self.store.blob(self.name).delete_blob(
                        etag=seen.token, match_condition=MatchConditions.IfNotModified
                    )
                except ResourceNotFoundError:
                    return True
        except PreconditionFailed:
            return False
        return True
