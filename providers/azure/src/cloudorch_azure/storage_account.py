"""`azure.storage_account`: a Microsoft.Storage account at a pinned API version.

Owns the account's name rules (checked when the plan is read, so the error names the file and
line), the mapping of its settings to the ARM body and back, and its endpoints. The account's
access keys are never read: they would be secrets in state, and the blob types authenticate with
the provider's credential or connection string instead.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import field_validator

from cloudorch.provider.contract import prop
from cloudorch_azure.typed import GroupedProperties, TypedArmResource

STORAGE_API_VERSION = "2023-05-01"

_NAME = re.compile(r"^[a-z0-9]{3,24}$")

SKUS = ("Standard_LRS", "Standard_GRS", "Standard_RAGRS", "Standard_ZRS", "Standard_GZRS", "Standard_RAGZRS",
        "Premium_LRS", "Premium_ZRS")
KINDS = ("StorageV2", "BlobStorage", "BlockBlobStorage", "FileStorage", "Storage")
#: the kinds that have a default access tier (ARM refuses `accessTier` on the others)
TIERED = frozenset({"StorageV2", "BlobStorage"})


def _canonical(value: str, choices: tuple[str, ...]) -> str:
    """ARM's enums are case-insensitive: `standard_lrs` is `Standard_LRS`."""
    return next((c for c in choices if c.lower() == value.lower()), value)


class StorageAccountProperties(GroupedProperties):
    name: str = prop(
        description="Account name: 3-24 lowercase letters and digits, unique across Azure.", force_new=True
    )
    sku: str = prop("Standard_LRS", description=f"Replication SKU: one of {', '.join(SKUS)}.")
    kind: str = prop("StorageV2", force_new=True, description=f"Account kind: one of {', '.join(KINDS)}.")
    access_tier: Literal["Hot", "Cool", "Cold"] = prop(
        "Hot", description="Default blob access tier (StorageV2 and BlobStorage; ignored for other kinds)."
    )
    https_only: bool = prop(True, description="Refuse plain-HTTP requests.")
    min_tls_version: Literal["TLS1_0", "TLS1_1", "TLS1_2"] = prop("TLS1_2", description="Oldest TLS accepted.")
    allow_blob_public_access: bool = prop(False, description="Whether containers may be made public.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"storage account name {value!r} must be 3-24 characters, lowercase letters and digits only "
                "(no dashes, no capitals)"
            )
        return value

    @field_validator("sku")
    @classmethod
    def _sku(cls, value: str) -> str:
        if value.lower() not in {s.lower() for s in SKUS}:
            raise ValueError(f"unknown SKU {value!r}: one of {', '.join(SKUS)}")
        return _canonical(value, SKUS)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value.lower() not in {k.lower() for k in KINDS}:
            raise ValueError(f"unknown kind {value!r}: one of {', '.join(KINDS)}")
        return _canonical(value, KINDS)


class StorageAccount(TypedArmResource[StorageAccountProperties]):
    """A storage account; its keys are never read into cloudorch."""

    type_name = "azure.storage_account"
    Properties = StorageAccountProperties
    arm_type = "Microsoft.Storage/storageAccounts"
    api_version = STORAGE_API_VERSION
    description = "An Azure storage account (SKU, kind, access tier, HTTPS only, minimum TLS)."
    attributes = {
        "id": "The ARM id.",
        "provisioning_state": "ARM's provisioning state.",
        "primary_endpoints": "The account's endpoints by service (blob, queue, table, file, dfs, web).",
        "primary_blob_endpoint": "The blob endpoint, e.g. https://NAME.blob.core.windows.net/.",
        "location": "The region as ARM reports it.",
    }
    # the endpoints follow from the name, fixed at create: an update keeps them
    recomputed_on_update = frozenset({"provisioning_state"})

    def to_arm(self, address: str, props: StorageAccountProperties, current: dict[str, Any] | None) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "supportsHttpsTrafficOnly": props.https_only,
            "minimumTlsVersion": props.min_tls_version,
            "allowBlobPublicAccess": props.allow_blob_public_access,
        }
        if props.kind in TIERED:
            properties["accessTier"] = props.access_tier
        body = {**self.base_body(address, props), "sku": {"name": props.sku}, "kind": props.kind}
        return {**body, "properties": properties}

    def from_arm(self, raw: dict[str, Any], applied: StorageAccountProperties | None) -> dict[str, Any]:
        p = raw.get("properties") or {}
        tier = p.get("accessTier")
        if not tier:
            # a kind without tiers: nothing to observe, so nothing to differ
            tier = applied.access_tier if applied is not None else "Hot"
        return {
            **self.base_properties(raw, applied),
            "sku": _canonical(str((raw.get("sku") or {}).get("name")), SKUS),
            "kind": _canonical(str(raw.get("kind")), KINDS),
            "access_tier": _canonical(str(tier), ("Hot", "Cool", "Cold")),
            "https_only": p.get("supportsHttpsTrafficOnly"),
            "min_tls_version": p.get("minimumTlsVersion"),
            "allow_blob_public_access": p.get("allowBlobPublicAccess"),
        }

    def attributes_of(self, raw: dict[str, Any]) -> dict[str, Any]:
        endpoints = dict((raw.get("properties") or {}).get("primaryEndpoints") or {})
        return {
            **super().attributes_of(raw),
            "primary_endpoints": endpoints,
            "primary_blob_endpoint": endpoints.get("blob"),
            "location": raw.get("location"),
        }

    def estimate_seconds(self, props: StorageAccountProperties) -> float:
        return 25.0
