"""`azure.user_assigned_identity`: a user-assigned managed identity (Microsoft.ManagedIdentity).

Owns its mapping to the ARM body at a pinned API version. Its principal and client ids are
Azure's, unknown until the create; only tags change in place, so an update keeps them.
"""

from __future__ import annotations

from typing import Any

from cloudorch.provider.contract import prop
from cloudorch_azure.typed import GroupedProperties, TypedArmResource

IDENTITY_API_VERSION = "2023-01-31"


class UserAssignedIdentityProperties(GroupedProperties):
    name: str = prop(
        description="Identity name (3-128 letters, digits, `-_`, starting with a letter or digit).",
        force_new=True,
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$",
    )


class UserAssignedIdentity(TypedArmResource[UserAssignedIdentityProperties]):
    type_name = "azure.user_assigned_identity"
    Properties = UserAssignedIdentityProperties
    arm_type = "Microsoft.ManagedIdentity/userAssignedIdentities"
    api_version = IDENTITY_API_VERSION
    description = "A user-assigned managed identity; its principal and client ids are Azure's, known after create."
    attributes = {
        "id": "The ARM id.",
        "principal_id": "The identity's service principal object id (for azure.role_assignment).",
        "client_id": "The identity's application (client) id.",
        "tenant_id": "The tenant of the identity.",
    }
    # only tags change in place; the ids are the identity's for life
    recomputed_on_update = frozenset()

    def to_arm(
        self, address: str, props: UserAssignedIdentityProperties, current: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {**self.base_body(address, props), "properties": {}}

    def from_arm(self, raw: dict[str, Any], applied: UserAssignedIdentityProperties | None) -> dict[str, Any]:
        return self.base_properties(raw, applied)

    def attributes_of(self, raw: dict[str, Any]) -> dict[str, Any]:
        p = raw.get("properties") or {}
        return {
            "id": raw.get("id"),
            "principal_id": p.get("principalId"),
            "client_id": p.get("clientId"),
            "tenant_id": p.get("tenantId"),
        }

    def estimate_seconds(self, props: UserAssignedIdentityProperties) -> float:
        return 5.0
