"""`gcp.storage_bucket`: a Cloud Storage bucket.

Owns create/read/update/delete/import/find of one bucket: location (force-new), storage class,
versioning, labels, uniform bucket-level access, lifecycle rules and retention; `force_destroy`
deletes every object version first. Unset optional properties are left to the service.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from cloudorch.provider.contract import (
    ErrorKind,
    LookupQuery,
    Observed,
    ProviderError,
    ResourceProperties,
    ResourceType,
    matches_filter,
    prop,
)

if TYPE_CHECKING:
    from cloudorch_gcp.provider import GcpProvider


class BucketProperties(ResourceProperties):
    name: str = prop(
        description="Globally unique bucket name: 3-63 lowercase letters, digits, `-`, `_` (dots allow 222).",
        force_new=True,
        pattern=r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$",
    )
    location: str | None = prop(
        None, force_new=True, description="`US`, `EU`, a region such as `europe-west1`; unset: the service's (US)."
    )
    storage_class: str | None = prop(
        None, description="STANDARD, NEARLINE, COLDLINE or ARCHIVE; unset: the service's default."
    )
    versioning: bool = prop(False, description="Keep old object versions.")
    labels: dict[str, str] = prop(default_factory=dict, description="Labels; providers.gcp.default_labels are added.")
    uniform_bucket_level_access: bool | None = prop(None, description="IAM only, no object ACLs; unset: untouched.")
    lifecycle_rules: list[dict[str, Any]] = prop(
        default_factory=list,
        description="Lifecycle rules in the JSON API shape: {action: {type: Delete}, condition: {age: 30}}.",
    )
    retention_period: int | None = prop(None, ge=0, description="Seconds objects must be kept; unset: none.")
    force_destroy: bool = prop(False, description="On delete, delete every object (and version) first.")


class StorageBucket(ResourceType[BucketProperties]):
    """A Cloud Storage bucket."""

    type_name = "gcp.storage_bucket"
    Properties = BucketProperties
    description = "A Cloud Storage bucket; location is force-new, force_destroy empties it on delete."
    attributes = {
        "id": "The bucket name.",
        "name": "The bucket name.",
        "url": "gs://NAME",
        "self_link": "The JSON API URL.",
        "location": "The location as the service reports it.",
        "storage_class": "The storage class as the service reports it.",
        "project_number": "The owning project's number.",
    }
    recomputed_on_update = frozenset()

    @property
    def gcp(self) -> GcpProvider:
        return self.provider  # type: ignore[return-value]

    def _get(self, name: str) -> Any | None:
        from google.api_core.exceptions import NotFound

        try:
            return self.gcp.client.get_bucket(name, **self.gcp.call_kwargs)
        except NotFound:
            return None

    def _observed(self, bucket: Any, applied: BucketProperties | None) -> Observed:
        raw: dict[str, Any] = bucket._properties
        location = raw.get("location")
        storage_class = raw.get("storageClass")
        ubla = ((raw.get("iamConfiguration") or {}).get("uniformBucketLevelAccess") or {}).get("enabled")
        retention = (raw.get("retentionPolicy") or {}).get("retentionPeriod")
        properties: dict[str, Any] = {
            "name": bucket.name,
            "location": location,
            "storage_class": storage_class,
            "versioning": bool((raw.get("versioning") or {}).get("enabled")),
            "labels": self.gcp.user_labels(raw.get("labels"), applied.labels if applied else {}),
            "uniform_bucket_level_access": bool(ubla),
            "lifecycle_rules": list((raw.get("lifecycle") or {}).get("rule") or []),
            "retention_period": int(retention) if retention is not None else None,
            "force_destroy": applied.force_destroy if applied else False,
        }
        if applied is not None:
            # values the user left to the service are reported as unset; the user's spelling otherwise
            for key in ("location", "storage_class"):
                want = getattr(applied, key)
                if want is None or (properties[key] or "").upper() == want.upper():
                    properties[key] = want
            if applied.uniform_bucket_level_access is None:
                properties["uniform_bucket_level_access"] = None
        return Observed(
            id=bucket.name,
            properties=properties,
            attributes={
                "id": bucket.name,
                "name": bucket.name,
                "url": f"gs://{bucket.name}",
                "self_link": raw.get("selfLink"),
                "location": location,
                "storage_class": storage_class,
                "project_number": raw.get("projectNumber"),
            },
        )

    def _apply(self, address: str, bucket: Any, props: BucketProperties) -> None:
        """Set every managed field on `bucket` (a new one, or one just loaded for a patch)."""
        if props.storage_class is not None:
            bucket.storage_class = props.storage_class
        bucket.versioning_enabled = props.versioning
        bucket.labels = self.gcp.labels_for(address, props.labels)
        if props.uniform_bucket_level_access is not None:
            bucket.iam_configuration.uniform_bucket_level_access_enabled = props.uniform_bucket_level_access
        bucket.lifecycle_rules = props.lifecycle_rules
        bucket.retention_period = props.retention_period

    def create(self, address: str, props: BucketProperties) -> Observed:
        from google.api_core.exceptions import Conflict

        client = self.gcp.client
        with self.gcp.errors(address, f"create bucket {props.name}"):
            bucket = client.bucket(props.name)
            self._apply(address, bucket, props)
            try:
                created = client.create_bucket(bucket, location=props.location, **self.gcp.call_kwargs)
            except Conflict:
                existing = self._get(props.name)
                from cloudorch_gcp.provider import ADDRESS_LABEL, label_value

                if existing is None or (existing.labels or {}).get(ADDRESS_LABEL) != label_value(address):
                    raise
                return self.update(address, props.name, props, props)  # ours, from a crashed apply
        return self._observed(created, props)

    def read(self, address: str, id: str, props: BucketProperties) -> Observed | None:
        with self.gcp.errors(address, f"read bucket {props.name}"):
            bucket = self._get(props.name)
        return None if bucket is None else self._observed(bucket, props)

    def update(self, address: str, id: str, old: BucketProperties, new: BucketProperties) -> Observed:
        with self.gcp.errors(address, f"update bucket {new.name}"):
            bucket = self._get(new.name)
            if bucket is None:
                raise ProviderError(f"{address}: bucket {new.name} disappeared", kind=ErrorKind.FATAL, address=address)
            self._apply(address, bucket, new)  # loaded first, so labels the user dropped are removed
            bucket.patch(**self.gcp.call_kwargs)
        return self._observed(bucket, new)

    def delete(self, address: str, id: str, props: BucketProperties) -> None:
        from google.api_core.exceptions import NotFound

        with self.gcp.errors(address, f"delete bucket {props.name}"):
            try:
                bucket = self.gcp.client.bucket(props.name)
                if props.force_destroy:
                    for blob in self.gcp.client.list_blobs(props.name, versions=True, **self.gcp.call_kwargs):
                        with contextlib.suppress(NotFound):
                            bucket.delete_blob(blob.name, generation=blob.generation, **self.gcp.call_kwargs)
                bucket.delete(**self.gcp.call_kwargs)
            except NotFound:
                return

    def import_(self, address: str, id: str) -> Observed:
        name = id.removeprefix("gs://").strip("/")
        with self.gcp.errors(address, f"import bucket {name}"):
            bucket = self._get(name)
        if bucket is None:
            raise ProviderError(f"{address}: bucket {name} does not exist", kind=ErrorKind.FATAL, address=address)
        return self._observed(bucket, None)

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        if query.id is not None:
            name = query.id.removeprefix("gs://").strip("/")
            with self.gcp.errors(address, f"look up bucket {name}"):
                bucket = self._get(name)
            found = [] if bucket is None else [self._observed(bucket, None)]
        else:
            with self.gcp.errors(address, "list buckets"):
                found = [self._observed(b, None) for b in self.gcp.client.list_buckets(**self.gcp.call_kwargs)]
        return [o for o in found if matches_filter(o, query.filter)]

    def find(self, address: str, props: BucketProperties) -> Observed | None:
        from cloudorch_gcp.provider import ADDRESS_LABEL, label_value

        with self.gcp.errors(address, f"find bucket {props.name}"):
            bucket = self._get(props.name)
        if bucket is None or (bucket.labels or {}).get(ADDRESS_LABEL) != label_value(address):
            return None
        return self._observed(bucket, props)

    def estimate_seconds(self, props: BucketProperties) -> float:
        return 1.0
