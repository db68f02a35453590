"""`azure.key_vault`: a Key Vault, through Microsoft.KeyVault at a pinned API version.

Owns the vault's mapping to the ARM body and back, and the one change ARM refuses in place:
purge protection, once on, stays on (refused with a located error before any call). The vault's
URI is Azure's, unknown until the create and kept by an update.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from cloudorch.provider.contract import ConfigError, prop
from cloudorch_azure.typed import GroupedProperties, TypedArmResource

KEY_VAULT_API_VERSION = "2023-07-01"


class KeyVaultProperties(GroupedProperties):
    name: str = prop(
        description="Vault name: 3-24 letters, digits and dashes, starting with a letter, unique across Azure.",
        force_new=True,
        pattern=r"^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$",
    )
    tenant_id: str = prop(
        description="The Entra tenant (GUID) whose identities the vault trusts.",
        force_new=True,
        pattern=r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$",
    )
    sku: Literal["standard", "premium"] = prop("standard", description="standard, or premium (HSM-backed keys).")
    soft_delete_retention_days: int = prop(
        90, ge=7, le=90, force_new=True, description="Days a deleted vault stays recoverable (7-90; set at create)."
    )
    purge_protection: bool = prop(
        False, description="Forbid purging deleted vaults and secrets until retention ends; once on, stays on."
    )
    enable_rbac_authorization: bool = prop(
        True, description="Authorise data access with Azure roles (azure.role_assignment), not access policies."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if "--" in value:
            raise ValueError(f"Key Vault name {value!r} must not hold two dashes in a row")
        return value


class KeyVault(TypedArmResource[KeyVaultProperties]):
    type_name = "azure.key_vault"
    Properties = KeyVaultProperties
    arm_type = "Microsoft.KeyVault/vaults"
    api_version = KEY_VAULT_API_VERSION
    description = "An Azure Key Vault (SKU, soft-delete retention, purge protection, RBAC authorisation)."
    attributes = {
        "id": "The ARM id.",
        "provisioning_state": "ARM's provisioning state.",
        "vault_uri": "The data-plane URI, e.g. https://NAME.vault.azure.net/.",
    }
    # the URI follows from the name, fixed at create
    recomputed_on_update = frozenset({"provisioning_state"})

    def to_arm(self, address: str, props: KeyVaultProperties, current: dict[str, Any] | None) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "tenantId": props.tenant_id,
            "sku": {"family": "A", "name": props.sku},
            "enableSoftDelete": True,
            "softDeleteRetentionInDays": props.soft_delete_retention_days,
            "enableRbacAuthorization": props.enable_rbac_authorization,
            # kept as ARM has them: the type does not manage access policies
            "accessPolicies": list(((current or {}).get("properties") or {}).get("accessPolicies") or []),
        }
        if props.purge_protection:
            # ARM refuses `false` once it was true, and never needs it: absent means off
            properties["enablePurgeProtection"] = True
        return {**self.base_body(address, props), "properties": properties}

    def from_arm(self, raw: dict[str, Any], applied: KeyVaultProperties | None) -> dict[str, Any]:
        p = raw.get("properties") or {}
        tenant = str(p.get("tenantId") or "")
        if applied is not None and applied.tenant_id.lower() == tenant.lower():
            tenant = applied.tenant_id
        return {
            **self.base_properties(raw, applied),
            "tenant_id": tenant,
            "sku": str((p.get("sku") or {}).get("name") or "").lower(),
            "soft_delete_retention_days": p.get("softDeleteRetentionInDays", 90),
            "purge_protection": bool(p.get("enablePurgeProtection")),
            "enable_rbac_authorization": bool(p.get("enableRbacAuthorization")),
        }

    def attributes_of(self, raw: dict[str, Any]) -> dict[str, Any]:
        return {**super().attributes_of(raw), "vault_uri": (raw.get("properties") or {}).get("vaultUri")}

    def check_update(
        self, address: str, old: KeyVaultProperties, new: KeyVaultProperties, current: dict[str, Any]
    ) -> None:
        if (current.get("properties") or {}).get("enablePurgeProtection") and not new.purge_protection:
            raise ConfigError(
                f"{address}: purge_protection cannot be turned off once it is on (Azure forbids it)",
                hint=f"set purge_protection: true on {address}, or replace the vault under a new name",
            )
