"""The configured `azure` provider: its config block, SDK clients, error classification, LRO waits.

Owns turning a `providers.azure` block into thread-safe clients for Azure Resource Manager and
Blob Storage, and turning SDK exceptions into classified `ProviderError`s. The SDKs are imported
lazily, inside methods, so `cloudorch --help` never loads them. Retries belong to the engine:
every client is built with the SDK's own retries switched off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
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
from cloudorch_azure.arm_resource import ArmResource
from cloudorch_azure.blob import StorageBlob, StorageContainer
from cloudorch_azure.identity import UserAssignedIdentity
from cloudorch_azure.key_vault import KeyVault
from cloudorch_azure.network import NetworkSecurityGroup, Subnet, VirtualNetwork
from cloudorch_azure.resource_group import ResourceGroup
from cloudorch_azure.role_assignment import RoleAssignment
from cloudorch_azure.shape import ADDRESS_TAG
from cloudorch_azure.storage_account import StorageAccount

log = logging.getLogger(__name__)

#: error codes of a 409 that mean "busy, try again": the engine retries them as conflicts
BUSY_CODES = frozenset(
    {
        "AnotherOperationInProgress",
        "Conflict",
        "ContainerBeingDeleted",
        "ResourceGroupBeingDeleted",
        "LeaseIdMissing",
        "OperationNotAllowed",
    }
)

#: A bearer token used as-is instead of DefaultAzureCredential (CI with a token minted elsewhere; tests).
TOKEN_ENV = "CLOUDORCH_AZURE_ACCESS_TOKEN"


class AzureConfig(BaseModel):
    """The `providers.azure` block."""

    model_config = ConfigDict(extra="forbid")

    subscription_id: str | None = Field(
        None, description="Subscription for Resource Manager calls; defaults to $AZURE_SUBSCRIPTION_ID."
    )
    tenant_id: str | None = Field(
        None, description="Entra tenant to authenticate in; defaults to the credential's own (e.g. $AZURE_TENANT_ID)."
    )
    arm_endpoint: str = Field(
        "https://management.azure.com",
        description="Resource Manager endpoint: change it for sovereign clouds (or a test server).",
    )
    ca_bundle: str | None = Field(
        None, description="PEM file of CA certificates to trust for HTTPS; relative to the plan file."
    )
    storage_endpoint: str | None = Field(
        None, description="Blob service URL, e.g. https://myaccount.blob.core.windows.net (uses the credential)."
    )
    storage_connection_string: str | None = Field(
        None,
        description="Blob storage connection string (wins over storage_endpoint); "
        "defaults to $AZURE_STORAGE_CONNECTION_STRING.",
    )
    default_tags: dict[str, str] = Field(
        default_factory=dict, description="Tags added to every taggable ARM object (a resource's own tags win)."
    )
    location: str | None = Field(None, description="Default region for resource groups and resources.")
    max_concurrency: int | None = Field(None, ge=1, description="Most operations of this provider at once (32).")
    max_attempts: int | None = Field(None, ge=1, description="Attempts per operation on throttling or 5xx (5).")
    polling_interval: float | None = Field(
        None, ge=0, description="Seconds between polls of a long-running operation; unset: as the service says."
    )
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for one HTTP response.")


class StaticTokenCredential:
    """An azure-core credential that returns one fixed bearer token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)


class AzureProvider(Provider):
    """Azure Resource Manager (resource groups, any resource by id, typed resources) and Blob Storage."""

    name = "azure"
    package = "cloudorch-azure"
    contract = ">=2.1,<3"
    Config = AzureConfig
    resource_types: ClassVar[tuple[type[ResourceType[Any]], ...]] = (
        ResourceGroup,
        ArmResource,
        StorageContainer,
        StorageBlob,
        VirtualNetwork,
        Subnet,
        NetworkSecurityGroup,
        StorageAccount,
        KeyVault,
        UserAssignedIdentity,
        RoleAssignment,
    )
    default_concurrency = 32
    default_max_attempts = 5
    #: azure-core policies added to every client (per call); benchmarks add latency with this.
    extra_policies: ClassVar[list[Any]] = []

    def __init__(self, config: BaseModel, alias: str, context: ProviderContext) -> None:
        super().__init__(config, alias, context)
        assert isinstance(config, AzureConfig)
        self.cfg: AzureConfig = config
        self._lock = threading.Lock()
        self._credential: Any = None
        self._resource_client: Any = None
        self._blob_service: Any = None

    # ------------------------------------------------------------------ settings

    @property
    def subscription_id(self) -> str:
        sub = self.cfg.subscription_id or self.context.env.get("AZURE_SUBSCRIPTION_ID")
        if not sub:
            raise ConfigError(
                f"provider {self.alias}: subscription_id is not set",
                hint="set providers.azure.subscription_id or the AZURE_SUBSCRIPTION_ID environment variable",
            )
        return sub

    def location_for(self, address: str, location: str | None) -> str:
        loc = location or self.cfg.location
        if not loc:
            raise ConfigError(
                f"{address}: no location",
                hint="set `location` on the resource or on providers.azure",
            )
        return loc

    @property
    def polling_kwargs(self) -> dict[str, Any]:
        if self.cfg.polling_interval is None:
            return {}
        return {"polling_interval": self.cfg.polling_interval}

    def tags_for(self, address: str, tags: Mapping[str, str]) -> dict[str, str]:
        """The tags to write: provider defaults, then the resource's own, then the address tag."""
        return {**self.cfg.default_tags, **tags, ADDRESS_TAG: address}

    def user_tags(self, observed: Mapping[str, str] | None, applied: Mapping[str, str]) -> dict[str, str]:
        """Observed tags in the user's shape: no address tag, no default tag the user did not set."""
        out: dict[str, str] = {}
        for key, value in (observed or {}).items():
            if key == ADDRESS_TAG:
                continue
            if key in self.cfg.default_tags and key not in applied and value == self.cfg.default_tags[key]:
                continue
            out[key] = value
        return out

    # ------------------------------------------------------------------ clients

    def _ca_bundle(self) -> str | None:
        if not self.cfg.ca_bundle:
            return None
        path = Path(self.cfg.ca_bundle).expanduser()
        if not path.is_absolute():
            path = self.context.plan_dir / path
        return str(path)

    def _transport(self) -> Any:
        """A requests transport whose connection pool fits max_concurrency threads."""
        import requests
        from azure.core.pipeline.transport import RequestsTransport

        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=self.max_concurrency)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        verify: str | bool = self._ca_bundle() or True
        return RequestsTransport(
            session=session,
            session_owner=True,
            connection_verify=verify,
            connection_timeout=min(self.cfg.timeout, 20.0),
            read_timeout=self.cfg.timeout,
        )

    def _client_kwargs(self) -> dict[str, Any]:
        from cloudorch_azure.faults import policies_from_env

        policies = [*self.extra_policies, *policies_from_env(self.context.env)]
        return {
            "retry_total": 0,  # the engine retries, with backoff, and reports it
            "transport": self._transport(),
            "per_call_policies": list(policies),  # honoured by azure-mgmt clients
            "_additional_pipeline_policies": list(policies),  # azure-storage-blob's spelling
            "logging_enable": False,
        }

    @property
    def credential(self) -> Any:
        with self._lock:
            if self._credential is None:
                token = self.context.env.get(TOKEN_ENV) or ("sandbox" if self.context.sandbox else None)
                if token:
                    self._credential = StaticTokenCredential(token)
                else:
                    from azure.identity import DefaultAzureCredential

                    kwargs: dict[str, Any] = {"exclude_interactive_browser_credential": True}
                    if self.cfg.tenant_id:
                        kwargs["additionally_allowed_tenants"] = [self.cfg.tenant_id]
                        kwargs["shared_cache_tenant_id"] = self.cfg.tenant_id
                        kwargs["visual_studio_code_tenant_id"] = self.cfg.tenant_id
                        kwargs["interactive_browser_tenant_id"] = self.cfg.tenant_id
                        kwargs["workload_identity_tenant_id"] = self.cfg.tenant_id
                    self._credential = DefaultAzureCredential(**kwargs)
            return self._credential

    @property
    def resources(self) -> Any:
        """The ResourceManagementClient, created once."""
        credential = self.credential
        subscription = self.subscription_id
        with self._lock:
            if self._resource_client is None:
                from azure.mgmt.resource.resources import ResourceManagementClient

                endpoint = self.cfg.arm_endpoint.rstrip("/")
                self._resource_client = ResourceManagementClient(
                    credential,
                    subscription,
                    base_url=endpoint,
                    credential_scopes=[f"{endpoint}/.default"],
                    **self._client_kwargs(),
                )
            return self._resource_client

    @property
    def blob_service(self) -> Any:
        """The BlobServiceClient, created once."""
        conn = self.cfg.storage_connection_string or self.context.env.get("AZURE_STORAGE_CONNECTION_STRING")
        credential = None if conn else self.credential
        with self._lock:
            if self._blob_service is None:
                from azure.storage.blob import BlobServiceClient

                if conn:
                    self._blob_service = BlobServiceClient.from_connection_string(conn, **self._client_kwargs())
                elif self.cfg.storage_endpoint:
                    self._blob_service = BlobServiceClient(
                        self.cfg.storage_endpoint, credential=credential, **self._client_kwargs()
                    )
                else:
                    raise ConfigError(
                        f"provider {self.alias}: no blob storage account configured",
                        hint="set providers.azure.storage_endpoint or storage_connection_string",
                    )
            return self._blob_service

    def close(self) -> None:
        with self._lock:
            for client in (self._resource_client, self._blob_service):
                if client is not None:
                    client.close()
            self._resource_client = self._blob_service = None

    # ------------------------------------------------------------------ long-running operations

    def wait(self, poller: Any, address: str, what: str) -> Any:
        """Wait for an LRO, logging progress every few seconds; SDK errors surface from result()."""
        started = time.monotonic()
        while not poller.done():
            poller.wait(timeout=5)
            if not poller.done():
                log.info(
                    "%s: %s still running after %.0fs (%s)", address, what, time.monotonic() - started, poller.status()
                )
        return poller.result()

    # ------------------------------------------------------------------ errors

    def classify(self, exc: BaseException, address: str | None = None) -> ProviderError:
        if isinstance(exc, ProviderError):
            return exc
        name = address or "azure"
        try:
            from azure.core import exceptions as az
        except ImportError:  # pragma: no cover - the SDK is a dependency
            return super().classify(exc, address)

        if isinstance(exc, az.ClientAuthenticationError) and getattr(exc, "status_code", None) is None:
            return ProviderError(
                f"{name}: cannot get an Azure token: {first_line(exc)}",
                kind=ErrorKind.FATAL,
                address=address,
                cause=exc,
                hint="run `az login`, or set AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET",
            )
        if isinstance(exc, az.ServiceRequestError | az.ServiceResponseError | ConnectionError | TimeoutError):
            return ProviderError(
                f"{name}: connection failed: {first_line(exc)}", kind=ErrorKind.TRANSIENT, address=address, cause=exc
            )
        if not isinstance(exc, az.HttpResponseError):
            return super().classify(exc, address)

        status = exc.status_code or 0
        code = error_code(exc)
        message = error_message(exc)
        kind = classify_status(
            status,
            throttled=code in {"TooManyRequests", "RateLimitExceeded"},
            # 409 with another code (a name taken, say) is the user's to fix, not a wait
            conflict=status == 409 and code in BUSY_CODES,
            transient=code in {"ServerBusy", "OperationTimedOut", "InternalError"},
        )
        if kind is ErrorKind.THROTTLED:
            return ProviderError(
                f"{name}: throttled by Azure ({code or status}): {message}",
                kind=ErrorKind.THROTTLED,
                address=address,
                cause=exc,
                retry_after=azure_retry_after(exc),
            )
        if kind is ErrorKind.TRANSIENT:
            return ProviderError(
                f"{name}: Azure answered {status} {code}: {message}",
                kind=ErrorKind.TRANSIENT,
                address=address,
                cause=exc,
                retry_after=azure_retry_after(exc),
            )
        if code in {"AuthorizationFailed", "LinkedAuthorizationFailed", "AuthorizationPermissionMismatch"} or (
            status == 403
        ):
            return ProviderError(
                f"{name}: not authorised ({code or status}): {message}",
                kind=ErrorKind.FATAL,
                address=address,
                cause=exc,
                hint="grant the identity cloudorch runs as a role on this scope (e.g. Contributor)",
            )
        if status == 401:
            return ProviderError(
                f"{name}: authentication rejected ({code or status}): {message}",
                kind=ErrorKind.FATAL,
                address=address,
                cause=exc,
                hint="check the tenant, subscription and credential cloudorch uses",
            )
        if code == "ResourceGroupNotFound":
            return ProviderError(
                f"{name}: resource group not found: {message}",
                kind=ErrorKind.FATAL,
                address=address,
                cause=exc,
                hint="create it first: add an azure.resource_group and reference its name",
            )
        if code in {"SubscriptionNotFound", "InvalidSubscriptionId"}:
            return ProviderError(
                f"{name}: subscription not found: {message}",
                kind=ErrorKind.FATAL,
                address=address,
                cause=exc,
                hint="check providers.azure.subscription_id",
            )
        if kind is ErrorKind.CONFLICT:
            return ProviderError(
                f"{name}: busy ({code}): {message}",
                kind=ErrorKind.CONFLICT,
                address=address,
                cause=exc,
                retry_after=azure_retry_after(exc),
            )
        return ProviderError(
            f"{name}: Azure answered {status} {code or ''}: {message}".replace("  ", " "),
            kind=ErrorKind.FATAL,
            address=address,
            cause=exc,
        )


# ---------------------------------------------------------------------- exception details


def error_code(exc: Any) -> str:
    """The ARM / storage error code of an HttpResponseError, or ''."""
    code = getattr(exc, "error_code", None)
    if code:
        return str(code)
    error = getattr(exc, "error", None)
    if error is not None and getattr(error, "code", None):
        return str(error.code)
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            body = response.json()
        except Exception:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return str(body["error"].get("code") or "")
        header = response.headers.get("x-ms-error-code")
        if header:
            return str(header)
    return ""


def error_message(exc: Any) -> str:
    error = getattr(exc, "error", None)
    if error is not None and getattr(error, "message", None):
        return str(error.message)
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            body = response.json()
        except Exception:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict) and body["error"].get("message"):
            return str(body["error"]["message"])
    return first_line(exc)


def azure_retry_after(exc: Any) -> float | None:
    """Seconds to wait from Azure's millisecond headers, else from Retry-After (either form)."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    for name, scale in (("retry-after-ms", 1000.0), ("x-ms-retry-after-ms", 1000.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) / scale
            except ValueError:
                pass
    return retry_after(headers)
