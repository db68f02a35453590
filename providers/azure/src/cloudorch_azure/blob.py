"""`azure.storage_container` and `azure.storage_blob`, through azure-storage-blob.

Owns containers and blobs of the provider's one storage account. A blob's content (inline or a
local source file) is compared by hash, never downloaded on refresh. Both carry the
`cloudorch_address` metadata key (metadata names must be C# identifiers) so `find` works;
provider default_tags are not applied to them, since metadata is not tags.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import field_validator, model_validator

from cloudorch.provider.contract import (
    ConfigError,
    ErrorKind,
    Observed,
    ProviderError,
    ResourceProperties,
    ResourceType,
    prop,
)
from cloudorch_azure.shape import ADDRESS_METADATA, SHA256_METADATA, digests, user_metadata

if TYPE_CHECKING:
    from cloudorch_azure.provider import AzureProvider

#: imported blobs up to this size are downloaded so their content can be shown and compared
IMPORT_DOWNLOAD_LIMIT = 1 << 20


def _not_found() -> type[Exception]:
    from azure.core.exceptions import ResourceNotFoundError

    return ResourceNotFoundError


def _exists() -> type[Exception]:
    from azure.core.exceptions import ResourceExistsError

    return ResourceExistsError


# --------------------------------------------------------------------------- containers


class ContainerProperties(ResourceProperties):
    name: str = prop(
        description="Container name: 3-63 lowercase letters, digits and single hyphens.",
        force_new=True,
        pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$",
    )
    metadata: dict[str, str] = prop(default_factory=dict, description="Container metadata (C#-identifier keys).")
    public_access: Literal["blob", "container"] | None = prop(
        None, description="Anonymous read access: `blob`, `container`, or unset for none."
    )

    @field_validator("name")
    @classmethod
    def _no_double_hyphen(cls, name: str) -> str:
        if "--" in name:
            raise ValueError("a container name cannot contain `--`")
        return name


class StorageContainer(ResourceType[ContainerProperties]):
    """A blob container."""

    type_name = "azure.storage_container"
    Properties = ContainerProperties
    description = "A blob container in the provider's storage account."
    attributes = {"id": "The container URL.", "url": "The container URL.", "etag": "The container's ETag."}
    # any change to the container gives it a new ETag
    recomputed_on_update = frozenset({"etag"})

    @property
    def az(self) -> AzureProvider:
        return self.provider  # type: ignore[return-value]

    def _client(self, name: str) -> Any:
        return self.az.blob_service.get_container_client(name)

    def _observed(self, client: Any, seen: Any, applied: ContainerProperties | None) -> Observed:
        metadata = user_metadata(seen.metadata, applied.metadata if applied else {})
        return Observed(
            id=client.url,
            properties={"name": seen.name, "metadata": metadata, "public_access": seen.public_access or None},
            attributes={"id": client.url, "url": client.url, "etag": seen.etag},
        )

    def _props(self, client: Any) -> Any | None:
        try:
            return client.get_container_properties()
        except _not_found():
            return None

    def _set(self, address: str, client: Any, props: ContainerProperties) -> None:
        client.set_container_metadata({**props.metadata, ADDRESS_METADATA: address})
        policy = client.get_container_access_policy()
        if (policy.get("public_access") or None) != props.public_access:
            client.set_container_access_policy(
                signed_identifiers={i.id: i.access_policy for i in policy.get("signed_identifiers") or []},
                public_access=props.public_access,
            )

    def create(self, address: str, props: ContainerProperties) -> Observed:
        client = self._client(props.name)
        with self.az.errors(address, f"create container {props.name}"):
            try:
                client.create_container(
                    metadata={**props.metadata, ADDRESS_METADATA: address}, public_access=props.public_access
                )
            except _exists():
                seen = self._props(client)
                if seen is None or (seen.metadata or {}).get(ADDRESS_METADATA) != address:
                    raise ProviderError(
                        f"{address}: container {props.name} already exists and was not made for this address",
                        kind=ErrorKind.FATAL,
                        address=address,
                        hint=f"import it: cloudorch import {address} {props.name}",
                    ) from None
                self._set(address, client, props)  # ours, from a crashed apply: adopt it
            seen = self._props(client)
        if seen is None:
            raise ProviderError(
                f"{address}: container {props.name} vanished after create", kind=ErrorKind.TRANSIENT, address=address
            )
        return self._observed(client, seen, props)

    def read(self, address: str, id: str, props: ContainerProperties) -> Observed | None:
        client = self._client(props.name)
        with self.az.errors(address, f"read container {props.name}"):
            seen = self._props(client)
        return None if seen is None else self._observed(client, seen, props)

    def update(self, address: str, id: str, old: ContainerProperties, new: ContainerProperties) -> Observed:
        client = self._client(new.name)
        with self.az.errors(address, f"update container {new.name}"):
            self._set(address, client, new)
            seen = self._props(client)
        if seen is None:
            raise ProviderError(
                f"{address}: container {new.name} disappeared during update", kind=ErrorKind.FATAL, address=address
            )
        return self._observed(client, seen, new)

    def delete(self, address: str, id: str, props: ContainerProperties) -> None:
        with self.az.errors(address, f"delete container {props.name}"):
            try:
                self._client(props.name).delete_container()
            except _not_found():
                return

    def import_(self, address: str, id: str) -> Observed:
        name = id.rstrip("/").rsplit("/", 1)[-1]
        client = self._client(name)
        with self.az.errors(address, f"import container {name}"):
            seen = self._props(client)
        if seen is None:
            raise ProviderError(f"{address}: container {name} does not exist", kind=ErrorKind.FATAL, address=address)
        return self._observed(client, seen, None)

    def find(self, address: str, props: ContainerProperties) -> Observed | None:
        client = self._client(props.name)
        with self.az.errors(address, f"find container {props.name}"):
            seen = self._props(client)
        if seen is None or (seen.metadata or {}).get(ADDRESS_METADATA) != address:
            return None
        return self._observed(client, seen, props)

    def estimate_seconds(self, props: ContainerProperties) -> float:
        return 0.3


# --------------------------------------------------------------------------- blobs


class BlobProperties(ResourceProperties):
    container: str = prop(description="Container name (usually a reference).", force_new=True)
    name: str = prop(description="Blob name; `/` makes virtual folders.", force_new=True, min_length=1)
    content: str | None = prop(None, description="Text content (UTF-8). Set this or `source`.")
    source: str | None = prop(
        None, description="Local file to upload, relative to the plan file; its hash is compared on refresh."
    )
    content_type: str | None = prop(None, description="Content-Type; unset: guessed from the name.")
    metadata: dict[str, str] = prop(default_factory=dict, description="Blob metadata (C#-identifier keys).")

    @model_validator(mode="after")
    def _one_content(self) -> BlobProperties:
        if self.content is not None and self.source is not None:
            raise ValueError("set `content` or `source`, not both")
        return self


def blob_bytes(provider_plan_dir: Path, props: BlobProperties) -> bytes:
    """The bytes a blob should hold; raises ConfigError if the source file cannot be read."""
    if props.source is None:
        return (props.content or "").encode()
    path = Path(props.source).expanduser()
    if not path.is_absolute():
        path = provider_plan_dir / path
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read source file {path}: {exc.strerror}") from exc


def guess_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


class StorageBlob(ResourceType[BlobProperties]):
    """A block blob."""

    type_name = "azure.storage_blob"
    Properties = BlobProperties
    description = "A block blob from inline content or a local file, compared by hash."
    attributes = {
        "id": "The blob URL.",
        "url": "The blob URL.",
        "etag": "The blob's ETag.",
        "md5": "Content MD5, hex.",
        "sha256": "Content SHA-256, hex (recorded by cloudorch at upload).",
        "size": "Bytes.",
    }
    # an upload gives new content hashes
    recomputed_on_update = frozenset({"etag", "md5", "sha256", "size"})

    @property
    def az(self) -> AzureProvider:
        return self.provider  # type: ignore[return-value]

    def _client(self, props: BlobProperties) -> Any:
        return self.az.blob_service.get_blob_client(props.container, props.name)

    def _props(self, client: Any) -> Any | None:
        try:
            return client.get_blob_properties()
        except _not_found():  # the blob, or its container
            return None

    def _observed(self, client: Any, seen: Any, applied: BlobProperties, imported: str | None = None) -> Observed:
        md5 = bytes(seen.content_settings.content_md5 or b"")
        sha = (seen.metadata or {}).get(SHA256_METADATA)
        properties: dict[str, Any] = {
            "container": applied.container,
            "name": applied.name,
            "content_type": seen.content_settings.content_type if applied.content_type or imported else None,
            "metadata": user_metadata(seen.metadata, applied.metadata),
        }
        if imported is not None:
            properties["content"] = imported
        else:
            try:
                want_md5, want_sha = digests(blob_bytes(self.provider.context.plan_dir, applied))
                same = md5 == want_md5 if md5 else sha == want_sha
            except ConfigError:
                same = False
            # the user's value when the hashes match; otherwise a value that cannot match, so the
            # planner sees a change in the key the user wrote
            drifted = f"<changed outside cloudorch: md5 {md5.hex() or 'unknown'}>"
            properties["content"] = applied.content if same or applied.content is None else drifted
            properties["source"] = applied.source if same or applied.source is None else f"{applied.source} {drifted}"
            if applied.content is None and applied.source is None and not same:
                properties["content"] = drifted
        return Observed(
            id=client.url,
            properties=properties,
            attributes={
                "id": client.url,
                "url": client.url,
                "etag": seen.etag,
                "md5": md5.hex() or None,
                "sha256": sha,
                "size": seen.size,
            },
        )

    def _upload(self, address: str, client: Any, props: BlobProperties, overwrite: bool) -> Any:
        """Upload; returns what a read would see, built from what was sent (saves a round trip)."""
        from azure.storage.blob import ContentSettings

        data = blob_bytes(self.provider.context.plan_dir, props)
        md5, sha = digests(data)
        metadata = {**props.metadata, ADDRESS_METADATA: address, SHA256_METADATA: sha}
        settings = ContentSettings(
            content_type=props.content_type or guess_type(props.name), content_md5=bytearray(md5)
        )
        sent = client.upload_blob(data, overwrite=overwrite, metadata=metadata, content_settings=settings)
        return SimpleNamespace(content_settings=settings, metadata=metadata, etag=sent.get("etag"), size=len(data))

    def create(self, address: str, props: BlobProperties) -> Observed:
        client = self._client(props)
        with self.az.errors(address, f"upload blob {props.container}/{props.name}"):
            try:
                seen = self._upload(address, client, props, overwrite=False)
            except _exists():
                seen = self._props(client)
                if seen is None or (seen.metadata or {}).get(ADDRESS_METADATA) != address:
                    raise ProviderError(
                        f"{address}: blob {props.container}/{props.name} already exists and was not made "
                        "for this address",
                        kind=ErrorKind.FATAL,
                        address=address,
                        hint=f"import it: cloudorch import {address} {props.container}/{props.name}",
                    ) from None
                seen = self._upload(address, client, props, overwrite=True)
        return self._observed(client, seen, props)

    def read(self, address: str, id: str, props: BlobProperties) -> Observed | None:
        client = self._client(props)
        with self.az.errors(address, f"read blob {props.container}/{props.name}"):
            seen = self._props(client)
        return None if seen is None else self._observed(client, seen, props)

    def update(self, address: str, id: str, old: BlobProperties, new: BlobProperties) -> Observed:
        client = self._client(new)
        with self.az.errors(address, f"update blob {new.container}/{new.name}"):
            seen = self._upload(address, client, new, overwrite=True)
        return self._observed(client, seen, new)

    def delete(self, address: str, id: str, props: BlobProperties) -> None:
        with self.az.errors(address, f"delete blob {props.container}/{props.name}"):
            try:
                self._client(props).delete_blob(delete_snapshots="include")
            except _not_found():
                return

    def import_(self, address: str, id: str) -> Observed:
        """`id` is `container/name` or the blob's URL."""
        base = self.az.blob_service.url.rstrip("/") + "/"
        path = id[len(base) :] if id.startswith(base) else id
        container, _, name = path.lstrip("/").partition("/")
        if not container or not name:
            raise ConfigError(f"{address}: import id must be CONTAINER/NAME or the blob URL, not {id!r}")
        props = BlobProperties(container=container, name=name)
        client = self._client(props)
        with self.az.errors(address, f"import blob {container}/{name}"):
            seen = self._props(client)
            if seen is None:
                raise ProviderError(
                    f"{address}: blob {container}/{name} does not exist", kind=ErrorKind.FATAL, address=address
                )
            content = None
            if seen.size <= IMPORT_DOWNLOAD_LIMIT:
                try:
                    content = client.download_blob().readall().decode()
                except UnicodeDecodeError:
                    content = None
        props = BlobProperties(container=container, name=name, metadata=user_metadata(seen.metadata, {}))
        observed = self._observed(client, seen, props, imported=content or "")
        if content is None:  # binary or large: content unknown, so it is not compared
            del observed.properties["content"]
        return observed

    def find(self, address: str, props: BlobProperties) -> Observed | None:
        client = self._client(props)
        with self.az.errors(address, f"find blob {props.container}/{props.name}"):
            seen = self._props(client)
        if seen is None or (seen.metadata or {}).get(ADDRESS_METADATA) != address:
            return None
        return self._observed(client, seen, props)

    def estimate_seconds(self, props: BlobProperties) -> float:
        return 0.2
