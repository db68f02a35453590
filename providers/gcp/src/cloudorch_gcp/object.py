"""`gcp.storage_object`: one Cloud Storage object from inline content or a local file.

Owns upload, read (compared by MD5, never downloaded on refresh), delete, import and find of an
object. A create uses `if_generation_match=0`, so it never overwrites an object cloudorch did
not make; the `cloudorch-address` metadata key says which ones it did.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import model_validator

from cloudorch.provider.contract import (
    ConfigError,
    ErrorKind,
    Observed,
    ProviderError,
    ResourceProperties,
    ResourceType,
    prop,
)

if TYPE_CHECKING:
    from cloudorch_gcp.provider import GcpProvider

ADDRESS_METADATA = "cloudorch-address"
SHA256_METADATA = "cloudorch-sha256"
IMPORT_DOWNLOAD_LIMIT = 1 << 20


class ObjectProperties(ResourceProperties):
    bucket: str = prop(description="Bucket name (usually a reference).", force_new=True)
    name: str = prop(description="Object name; `/` makes folders in the console.", force_new=True, min_length=1)
    content: str | None = prop(None, description="Text content (UTF-8). Set this or `source`.")
    source: str | None = prop(
        None, description="Local file to upload, relative to the plan file; its hash is compared on refresh."
    )
    content_type: str | None = prop(None, description="Content-Type; unset: guessed from the name.")
    metadata: dict[str, str] = prop(default_factory=dict, description="Custom object metadata.")

    @model_validator(mode="after")
    def _one_content(self) -> ObjectProperties:
        if self.content is not None and self.source is not None:
            raise ValueError("set `content` or `source`, not both")
        return self


def object_bytes(plan_dir: Path, props: ObjectProperties) -> bytes:
    if props.source is None:
        return (props.content or "").encode()
    path = Path(props.source).expanduser()
    if not path.is_absolute():
        path = plan_dir / path
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read source file {path}: {exc.strerror}") from exc


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


class StorageObject(ResourceType[ObjectProperties]):
    """A Cloud Storage object."""

    type_name = "gcp.storage_object"
    Properties = ObjectProperties
    description = "A Cloud Storage object from inline content or a local file, compared by MD5."
    attributes = {
        "id": "BUCKET/NAME.",
        "url": "gs://BUCKET/NAME",
        "generation": "The object generation (changes on every upload).",
        "md5": "Base64 MD5 as Cloud Storage reports it.",
        "md5_hex": "MD5 in hex.",
        "crc32c": "Base64 CRC32C.",
        "size": "Bytes.",
        "media_link": "Download URL.",
        "self_link": "JSON API URL.",
    }
    # an upload is a new generation
    recomputed_on_update = frozenset({"generation", "md5", "md5_hex", "crc32c", "size", "media_link"})

    @property
    def gcp(self) -> GcpProvider:
        return self.provider  # type: ignore[return-value]

    def _get(self, props: ObjectProperties) -> Any | None:
        from google.api_core.exceptions import NotFound

        try:  # get_blob answers None for a missing object; NotFound for a missing bucket
            return self.gcp.client.bucket(props.bucket).get_blob(props.name, **self.gcp.call_kwargs)
        except NotFound:
            return None

    def _observed(self, blob: Any, applied: ObjectProperties, imported: str | None = None) -> Observed:
        raw: dict[str, Any] = blob._properties
        md5 = raw.get("md5Hash")
        metadata = dict(raw.get("metadata") or {})
        sha = metadata.get(SHA256_METADATA)
        properties: dict[str, Any] = {
            "bucket": blob.bucket.name,
            "name": blob.name,
            "content_type": raw.get("contentType") if applied.content_type or imported is not None else None,
            "metadata": {k: v for k, v in metadata.items() if k not in (ADDRESS_METADATA, SHA256_METADATA)},
        }
        if imported is not None:
            properties["content"] = imported
        else:
            try:
                data = object_bytes(self.provider.context.plan_dir, applied)
                same = md5 == md5_b64(data) if md5 else sha == hashlib.sha256(data).hexdigest()
            except ConfigError:
                same = False
            drifted = f"<changed outside cloudorch: md5 {md5 or 'unknown'}>"
            properties["content"] = applied.content if same or applied.content is None else drifted
            properties["source"] = applied.source if same or applied.source is None else f"{applied.source} {drifted}"
            if applied.content is None and applied.source is None and not same:
                properties["content"] = drifted
        generation = raw.get("generation")
        return Observed(
            id=f"{blob.bucket.name}/{blob.name}",
            properties=properties,
            attributes={
                "id": f"{blob.bucket.name}/{blob.name}",
                "url": f"gs://{blob.bucket.name}/{blob.name}",
                "generation": int(generation) if generation is not None else None,
                "md5": md5,
                "md5_hex": base64.b64decode(md5).hex() if md5 else None,
                "crc32c": raw.get("crc32c"),
                "size": int(raw["size"]) if raw.get("size") is not None else None,
                "media_link": raw.get("mediaLink"),
                "self_link": raw.get("selfLink"),
            },
        )

    def _upload(self, address: str, props: ObjectProperties, *, only_new: bool) -> Any:
        data = object_bytes(self.provider.context.plan_dir, props)
        blob = self.gcp.client.bucket(props.bucket).blob(props.name)
        blob.metadata = {**props.metadata, ADDRESS_METADATA: address, SHA256_METADATA: hashlib.sha256(data).hexdigest()}
        blob.md5_hash = md5_b64(data)  # the service checks the upload against it
        content_type = props.content_type or mimetypes.guess_type(props.name)[0] or "application/octet-stream"
        precondition = {"if_generation_match": 0} if only_new else {}
        blob.upload_from_string(data, content_type=content_type, **precondition, **self.gcp.call_kwargs)
        return blob

    def create(self, address: str, props: ObjectProperties) -> Observed:
        from google.api_core.exceptions import PreconditionFailed

        with self.gcp.errors(address, f"upload gs://{props.bucket}/{props.name}"):
            try:
                blob = self._upload(address, props, only_new=True)  # holds the object resource the upload returned
            except PreconditionFailed:
                existing = self._get(props)
                if existing is None or (existing.metadata or {}).get(ADDRESS_METADATA) != address:
                    raise ProviderError(
                        f"{address}: gs://{props.bucket}/{props.name} already exists and was not made for this address",
                        kind=ErrorKind.FATAL,
                        address=address,
                        hint=f"import it: cloudorch import {address} {props.bucket}/{props.name}",
                    ) from None
                blob = self._upload(address, props, only_new=False)  # ours, from a crashed apply
        return self._observed(blob, props)

    def read(self, address: str, id: str, props: ObjectProperties) -> Observed | None:
        with self.gcp.errors(address, f"read gs://{props.bucket}/{props.name}"):
            blob = self._get(props)
        return None if blob is None else self._observed(blob, props)

    def update(self, address: str, id: str, old: ObjectProperties, new: ObjectProperties) -> Observed:
        with self.gcp.errors(address, f"upload gs://{new.bucket}/{new.name}"):
            blob = self._upload(address, new, only_new=False)
        return self._observed(blob, new)

    def delete(self, address: str, id: str, props: ObjectProperties) -> None:
        from google.api_core.exceptions import NotFound

        with self.gcp.errors(address, f"delete gs://{props.bucket}/{props.name}"):
            try:
                self.gcp.client.bucket(props.bucket).blob(props.name).delete(**self.gcp.call_kwargs)
            except NotFound:
                return

    def import_(self, address: str, id: str) -> Observed:
        """`id` is `BUCKET/NAME` or `gs://BUCKET/NAME`."""
        bucket, _, name = id.removeprefix("gs://").partition("/")
        if not bucket or not name:
            raise ConfigError(f"{address}: import id must be BUCKET/NAME or gs://BUCKET/NAME, not {id!r}")
        props = ObjectProperties(bucket=bucket, name=name)
        with self.gcp.errors(address, f"import gs://{bucket}/{name}"):
            blob = self._get(props)
            if blob is None:
                raise ProviderError(
                    f"{address}: gs://{bucket}/{name} does not exist", kind=ErrorKind.FATAL, address=address
                )
            content: str | None = None
            if (blob.size or 0) <= IMPORT_DOWNLOAD_LIMIT:
                try:
                    content = blob.download_as_bytes(**self.gcp.call_kwargs).decode()
                except UnicodeDecodeError:
                    content = None
        observed = self._observed(blob, props, imported=content or "")
        if content is None:  # binary or large: not compared
            del observed.properties["content"]
        return observed

    def find(self, address: str, props: ObjectProperties) -> Observed | None:
        with self.gcp.errors(address, f"find gs://{props.bucket}/{props.name}"):
            blob = self._get(props)
        if blob is None or (blob.metadata or {}).get(ADDRESS_METADATA) != address:
            return None
        return self._observed(blob, props)

    def estimate_seconds(self, props: ObjectProperties) -> float:
        return 0.2
