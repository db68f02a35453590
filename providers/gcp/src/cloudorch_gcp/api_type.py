"""What the typed Google REST types share: their project, one call, one operation awaited.

Owns the small vocabulary `compute.py`, `iam.py` and `run.py` are written in (a discovery
request executed once, a 404 read as "gone", a compute or google.longrunning operation awaited,
the project a property left unset means, a partial resource URL). It sends nothing itself: the
discovery clients, their error classification and the operation polling are the provider's.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from cloudorch.provider.contract import ConfigError, ErrorKind, ProviderError, ResourceType

if TYPE_CHECKING:
    from cloudorch_gcp.provider import GcpProvider

P = TypeVar("P", bound=BaseModel)

#: a compute URL up to its `projects/` segment (the service's, www.googleapis.com's, a test server's)
_COMPUTE_URL = re.compile(r"^https?://[^?#]*?/(?=projects/)")


def partial_url(value: str) -> str:
    """`projects/P/global/networks/N` for a compute self link or a partial URL (unchanged otherwise)."""
    return _COMPUTE_URL.sub("", value.strip())


def last_segment(value: str) -> str:
    return value.rstrip("/").rsplit("/", 1)[-1]


class ApiType(ResourceType[P]):
    """Base of the types that speak a Google REST API through the provider's discovery clients
    (`cloudorch_gcp.discovery`: a connection per thread, the fault seam, operation polling)."""

    @property
    def gcp(self) -> GcpProvider:
        return self.provider  # type: ignore[return-value]

    @property
    def default_project(self) -> str:
        project = self.gcp.default_project
        if not project:
            raise ConfigError(
                f"provider {self.gcp.alias}: no project for {self.type_name}",
                hint="set providers.gcp.project, or the resource's `project`",
            )
        return project

    def project_of(self, project: str | None) -> str:
        """The project a property names, or the provider's when it is unset."""
        return project or self.default_project

    def project_field(self, actual: str, applied: str | None, *, imported: bool) -> dict[str, str | None]:
        """How `project` reads back: as applied while it is the project the object is in; unset
        while that is the provider's own. An import of an object in the provider's project does
        not report it at all (a property left out is never diffed), so a plan may name that
        project or leave it unset."""
        default = self.gcp.default_project
        if applied is not None and applied == actual:
            return {"project": applied}
        if actual == default:
            return {} if imported else {"project": None}
        return {"project": actual}

    def api(self, name: str, version: str) -> Any:
        """The discovery service object of one API (thread-safe; requests go out on `call`)."""
        return self.gcp.rest.api(f"{name}/{version}").service

    def call(self, address: str | None, what: str, request: Any, *, missing: bool = False) -> Any:
        """Execute one request: its JSON answer; None for a 404 when `missing` says gone is fine."""
        from cloudorch_gcp.discovery import not_found

        with self.gcp.errors(address or self.type_name, what):
            try:
                return self.gcp.rest.execute(request)
            except Exception as exc:
                if missing and not_found(exc):
                    return None
                raise

    def wait(self, address: str | None, what: str, operation: Mapping[str, Any]) -> dict[str, Any]:
        """Await a compute or google.longrunning operation; its result (a failure raised, classified)."""
        from cloudorch_gcp.discovery import Operation

        style = (
            "compute" if operation.get("kind") == "compute#operation" or "targetLink" in operation else "longrunning"
        )
        with self.gcp.errors(address or self.type_name, what):
            return self.gcp.rest.wait(Operation(style, dict(operation)))

    @staticmethod
    def status_of(exc: BaseException | None) -> int | None:
        """The HTTP status a Google call (or its operation) failed with; None for anything else."""
        from cloudorch_gcp.discovery import OperationFailed

        if isinstance(exc, OperationFailed):
            return exc.status
        resp = getattr(exc, "resp", None)
        status = getattr(resp, "status", None)
        return int(status) if status is not None else None

    def valid(self, props: P) -> P:
        """`props` with nested values as models: the engine hands over properties it read from
        state or a plan unvalidated (`model_construct`), whose nested blocks are plain dicts."""
        from pydantic import ValidationError

        fields = {k: getattr(props, k) for k in type(props).model_fields if hasattr(props, k)}
        if not any(isinstance(v, dict | list) for v in fields.values()):
            return props
        try:
            return type(props).model_validate(fields)
        except ValidationError:
            return props

    def gone(self, address: str, what: str) -> ProviderError:
        return ProviderError(f"{address}: {what} disappeared", kind=ErrorKind.FATAL, address=address)


class PendingCreates:
    """Creates whose answer this process never saw, by address: a retried create whose object
    already exists then knows the object is its own (the cloud acted, the answer was lost).

    A compute insert also resends the same `requestId`, which the service itself deduplicates.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, str] = {}

    def request_id(self, key: str) -> str:
        import uuid

        with self._lock:
            return self._pending.setdefault(key, str(uuid.uuid4()))

    def sent_before(self, key: str) -> bool:
        with self._lock:
            return key in self._pending

    def done(self, key: str) -> None:
        with self._lock:
            self._pending.pop(key, None)


def pages(fetch: Callable[[str | None], Mapping[str, Any]], items: str) -> Iterator[dict[str, Any]]:
    """Every item of a paged list (`nextPageToken` answers), fetching page by page."""
    token: str | None = None
    while True:
        page = fetch(token)
        yield from page.get(items) or []
        token = page.get("nextPageToken")
        if not token:
            return
