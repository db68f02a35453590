"""The configured `gcp` provider: its config block, the Cloud Storage client, error classification.

Owns turning a `providers.gcp` block into one thread-safe `google.cloud.storage.Client` (a
connection pool sized to max_concurrency) and SDK exceptions into classified `ProviderError`s.
The SDK is imported lazily; retries belong to the engine, so every call passes `retry=None`.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from cloudorch.provider.contract import (
    ConfigError,
    ErrorKind,
    Provider,
    ProviderContext,
    ProviderError,
    ResourceType,
    classify_status,
    first_line,
    retry_after,
)
from cloudorch_gcp.bucket import StorageBucket
from cloudorch_gcp.compute import ComputeFirewall, ComputeNetwork, ComputeSubnetwork
from cloudorch_gcp.discovery import RestClients, classify_http_error
from cloudorch_gcp.iam import ProjectIamMember, ServiceAccount
from cloudorch_gcp.object import StorageObject
from cloudorch_gcp.pubsub import PubSubSubscription, PubSubTopic
from cloudorch_gcp.rest_resource import RestResource
from cloudorch_gcp.run import CloudRunService

#: The label (buckets) / metadata key (objects) naming the address; GCS label keys are lowercase.
ADDRESS_LABEL = "cloudorch-address"


class GcpConfig(BaseModel):
    """The `providers.gcp` block."""

    model_config = ConfigDict(extra="forbid")

    project: str | None = Field(
        None, description="Project that owns new buckets; defaults to Application Default Credentials' project."
    )
    endpoint: str | None = Field(
        None,
        description="Cloud Storage endpoint, e.g. an emulator at http://127.0.0.1:4443 (then no credentials are "
        "used); $STORAGE_EMULATOR_HOST also works.",
    )
    default_labels: dict[str, str] = Field(
        default_factory=dict, description="Labels added to every bucket (a bucket's own labels win)."
    )
    max_concurrency: int | None = Field(None, ge=1, description="Most operations of this provider at once (32).")
    max_attempts: int | None = Field(None, ge=1, description="Attempts per operation on throttling or 5xx (5).")
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for one HTTP response.")
    api_endpoint: str | None = Field(
        None,
        description="Root URL of a Google REST test server for every API but Cloud Storage (the sandbox's, "
        "cloudorch_gcp.testserver): each API is reached at ENDPOINT/API/ and no credentials are used; "
        "$CLOUDORCH_GCP_API_ENDPOINT also works.",
    )
    operation_poll_interval: float = Field(
        1.0, ge=0, description="Seconds before the first poll of a long-running operation (doubling, up to 10)."
    )
    operation_timeout: float = Field(1200.0, gt=0, description="Seconds to await one long-running operation.")


def label_value(text: str) -> str:
    """A GCS label value for `text`: lowercase letters, digits, `_` and `-`, at most 63 characters."""
    value = re.sub(r"[^a-z0-9_-]", "_", text.lower())
    if len(value) > 63 or value != text:
        # the hash keeps two addresses that sanitise alike apart
        value = f"{value[:54]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return value


class GcpProvider(Provider):
    """Google Cloud Storage buckets and objects."""

    name = "gcp"
    package = "cloudorch-gcp"
    contract = ">=2.1,<3"
    Config = GcpConfig
    resource_types: ClassVar[tuple[type[ResourceType[Any]], ...]] = (
        StorageBucket,
        StorageObject,
        RestResource,
        PubSubTopic,
        PubSubSubscription,
        ComputeNetwork,
        ComputeSubnetwork,
        ComputeFirewall,
        ServiceAccount,
        ProjectIamMember,
        CloudRunService,
    )
    default_concurrency = 32
    default_max_attempts = 5
    #: receives the HTTP session the client will use and returns the one to use instead;
    #: benchmarks add latency with it
    session_wrapper: ClassVar[Callable[[Any], Any] | None] = None
    #: the same for the httplib2 connections of the discovery clients (`cloudorch_gcp.discovery`)
    http_wrapper: ClassVar[Callable[[Any], Any] | None] = None

    def __init__(self, config: BaseModel, alias: str, context: ProviderContext) -> None:
        super().__init__(config, alias, context)
        assert isinstance(config, GcpConfig)
        self.cfg: GcpConfig = config
        self._lock = threading.Lock()
        self._client: Any = None
        self._rest: RestClients | None = None
        self._adc_project: list[str] | None = None

    @property
    def endpoint(self) -> str | None:
        return self.cfg.endpoint or self.context.env.get("STORAGE_EMULATOR_HOST") or None

    @property
    def api_endpoint(self) -> str | None:
        """The Google REST test server every discovery client talks to, if one is configured."""
        return self.cfg.api_endpoint or self.context.env.get("CLOUDORCH_GCP_API_ENDPOINT") or None

    @property
    def rest(self) -> RestClients:
        """The discovery clients (Pub/Sub, Compute, IAM, Cloud Run, any API of `gcp.resource`)."""
        with self._lock:
            if self._rest is None:
                self._rest = RestClients(self)
            return self._rest

    @property
    def default_project(self) -> str | None:
        """The project a resource without one lives in: the config's, else the credentials' (looked
        up once: every resource's name needs it)."""
        if self.cfg.project:
            return self.cfg.project
        if self.api_endpoint:
            return "cloudorch-local"
        with self._lock:
            if self._adc_project is None:
                import google.auth

                try:
                    _, project = google.auth.default()
                except google.auth.exceptions.DefaultCredentialsError:
                    project = None
                self._adc_project = [str(project)] if project else []
            return self._adc_project[0] if self._adc_project else None

    @property
    def call_kwargs(self) -> dict[str, Any]:
        """Passed to every SDK call: no SDK retries (the engine retries), a bounded wait."""
        return {"retry": None, "timeout": self.cfg.timeout}

    @property
    def client(self) -> Any:
        """The storage Client, created once."""
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        import requests
        from google.auth.transport.requests import AuthorizedSession
        from google.cloud import storage  # type: ignore[import-untyped,unused-ignore]

        endpoint = self.endpoint
        if endpoint:
            from google.auth.credentials import AnonymousCredentials

            credentials: Any = AnonymousCredentials()  # type: ignore[no-untyped-call,unused-ignore]
            project: str | None = self.cfg.project or "cloudorch-local"
        else:
            import google.auth

            try:
                credentials, found_project = google.auth.default(
                    scopes=["https://www.googleapis.com/auth/devstorage.full_control"]
                )
            except google.auth.exceptions.DefaultCredentialsError as exc:
                raise ConfigError(
                    f"provider {self.alias}: no Google credentials: {exc}",
                    hint="run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS",
                ) from exc
            project = self.cfg.project or found_project
        session: Any = AuthorizedSession(credentials)  # type: ignore[no-untyped-call,unused-ignore]
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=self.max_concurrency)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        wrapper = type(self).session_wrapper  # read on the class: a plain function, not a bound method
        if wrapper is not None:
            session = wrapper(session)
        from cloudorch_gcp.faults import wrap_from_env

        session = wrap_from_env(session, self.context.env)  # crash tests only: see cloudorch_gcp.faults
        options = {"api_endpoint": endpoint} if endpoint else None
        return storage.Client(project=project, credentials=credentials, _http=session, client_options=options)

    def labels_for(self, address: str, labels: Mapping[str, str]) -> dict[str, str]:
        return {**self.cfg.default_labels, **labels, ADDRESS_LABEL: label_value(address)}

    def user_labels(self, observed: Mapping[str, str] | None, applied: Mapping[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in (observed or {}).items():
            if key == ADDRESS_LABEL:
                continue
            if key in self.cfg.default_labels and key not in applied and value == self.cfg.default_labels[key]:
                continue
            out[key] = value
        return out

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # ------------------------------------------------------------------ errors

    def classify(self, exc: BaseException, address: str | None = None) -> ProviderError:
        if isinstance(exc, ProviderError):
            return exc
        name = address or "gcp"
        rest_error = classify_http_error(exc, address)
        if rest_error is not None:
            return rest_error
        try:
            import requests
            from google.api_core import exceptions as gexc
            from google.auth import exceptions as auth_exc
        except ImportError:  # pragma: no cover - the SDK is a dependency
            return super().classify(exc, address)

        if isinstance(exc, auth_exc.DefaultCredentialsError | auth_exc.RefreshError):
            return ProviderError(
                f"{name}: Google credentials failed: {exc}",
                kind=ErrorKind.FATAL,
                address=address,
                cause=exc,
                hint="run `gcloud auth application-default login` or check the service account",
            )
        if isinstance(
            exc, requests.ConnectionError | requests.Timeout | auth_exc.TransportError | ConnectionError | TimeoutError
        ):
            return ProviderError(
                f"{name}: connection failed: {first_line(exc)}", kind=ErrorKind.TRANSIENT, address=address, cause=exc
            )
        if not isinstance(exc, gexc.GoogleAPICallError):
            return super().classify(exc, address)
        status = int(exc.code or 0)
        message = exc.message or first_line(exc)
        lowered = message.lower()
        # GCS answers 409 for a bucket that is not empty; fake-gcs-server 412
        not_empty = status in (409, 412) and ("not empty" in lowered or "must be empty" in lowered)
        name_taken = status == 409 and ("already exists" in lowered or "not available" in lowered)
        kind = classify_status(status, conflict=status in (409, 412) and not (not_empty or name_taken))
        headers = getattr(getattr(exc, "response", None), "headers", None)
        if kind is ErrorKind.THROTTLED:
            return ProviderError(
                f"{name}: throttled by Cloud Storage: {message}",
                kind=ErrorKind.THROTTLED,
                address=address,
                cause=exc,
                retry_after=retry_after(headers),
            )
        if kind is ErrorKind.TRANSIENT:
            return ProviderError(
                f"{name}: Cloud Storage answered {status}: {message}",
                kind=ErrorKind.TRANSIENT,
                address=address,
                cause=exc,
                retry_after=retry_after(headers),
            )
        if status == 401:
            return ProviderError(
                f"{name}: not authenticated: {message}",
                kind=ErrorKind.FATAL,
                address=address,
                cause=exc,
                hint="run `gcloud auth application-default login`",
            )
        if status == 403:
            return ProviderError(
                f"{name}: forbidden: {message}",
                kind=ErrorKind.FATAL,
                address=address,
                cause=exc,
                hint="grant the account a Storage role on this project or bucket",
            )
        if not_empty:
            return ProviderError(
                f"{name}: bucket is not empty: {message}",
                kind=ErrorKind.FATAL,
                address=address,
                cause=exc,
                hint="set force_destroy: true to delete its objects first",
            )
        if name_taken:
            return ProviderError(
                f"{name}: bucket name is taken: {message}",
                kind=ErrorKind.FATAL,
                address=address,
                cause=exc,
                hint="bucket names are global across all projects: choose another name",
            )
        if kind is ErrorKind.CONFLICT:
            what = "conflict" if status == 409 else "precondition failed"
            return ProviderError(f"{name}: {what}: {message}", kind=ErrorKind.CONFLICT, address=address, cause=exc)
        return ProviderError(
            f"{name}: Cloud Storage answered {status}: {message}", kind=ErrorKind.FATAL, address=address, cause=exc
        )
