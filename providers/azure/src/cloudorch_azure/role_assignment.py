"""`azure.role_assignment`: a role given to a principal at a scope (Microsoft.Authorization).

Owns the assignment's id: an extension resource at its scope (a subscription, a resource group
or any resource), `{scope}/providers/Microsoft.Authorization/roleAssignments/{name}`, whose name
must be a GUID. ARM keeps no tags on it, so the name is derived from the address and every
property (a UUID 5): `find` after a crash computes the same name and adopts the object the lost
create made, and a replacement (any change: every property is force-new) gets another name, so
old and new are told apart by id.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from cloudorch.provider.contract import ConfigError, LookupQuery, Observed, prop
from cloudorch.provider.contract import ResourceProperties as _Base
from cloudorch_azure.typed import TypedArmResource, as_written

AUTHORIZATION_API_VERSION = "2022-04-01"
_GUID = r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
#: the namespace of the assignments' UUID 5 names (any fixed UUID; changing it orphans old objects)
NAMESPACE = uuid.UUID("0b0f6f4e-6a53-4c1e-9a57-6c6f75646f72")
_MARK = "/providers/microsoft.authorization/roleassignments/"


class RoleAssignmentProperties(_Base):
    scope: str = prop(
        description="ARM id the role applies to: a subscription, a resource group or a resource (usually a reference).",
        force_new=True,
        pattern=r"^/subscriptions/[^/]+(/.*)?$",
    )
    role_definition_id: str = prop(
        description="The role: a role definition's ARM id, or its GUID "
        "(e.g. Reader: acdd72a7-3385-48ef-bd42-f606fba81ae7).",
        force_new=True,
        pattern=rf"^({_GUID}|/.*/providers/Microsoft\.Authorization/roleDefinitions/{_GUID})$",
    )
    principal_id: str = prop(
        description="Object id of the user, group or service principal (e.g. an identity's principal_id).",
        force_new=True,
        pattern=rf"^{_GUID}$",
    )
    principal_type: str | None = prop(
        None,
        force_new=True,
        description="User, Group or ServicePrincipal; set it for a just-made identity (replication lag).",
    )


def assignment_name(address: str, props: RoleAssignmentProperties) -> str:
    """The deterministic GUID name of the assignment of `address` with these properties."""
    key = "\n".join(
        [address, props.scope.rstrip("/").lower(), props.role_definition_id.lower(), props.principal_id.lower()]
    )
    return str(uuid.uuid5(NAMESPACE, key))


class RoleAssignment(TypedArmResource[RoleAssignmentProperties]):
    """A role assignment at any scope; every change replaces it."""

    type_name = "azure.role_assignment"
    Properties = RoleAssignmentProperties
    arm_type = "Microsoft.Authorization/roleAssignments"
    api_version = AUTHORIZATION_API_VERSION
    taggable = False
    description = "An Azure role assignment (scope, role, principal); every change replaces it."
    attributes = {
        "id": "The ARM id, {scope}/providers/Microsoft.Authorization/roleAssignments/{GUID}.",
        "name": "The assignment's GUID (derived from the address and properties).",
    }
    recomputed_on_update = frozenset()

    def role_id(self, role: str) -> str:
        if re.fullmatch(_GUID, role):
            return f"/subscriptions/{self.az.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"
        return role

    def id_for(self, address: str, props: RoleAssignmentProperties) -> str:
        scope = props.scope.rstrip("/")
        return f"{scope}/providers/Microsoft.Authorization/roleAssignments/{assignment_name(address, props)}"

    def rid(self, props: RoleAssignmentProperties) -> str:
        raise AssertionError("role assignments are addressed by id_for(address, props)")

    def to_arm(
        self, address: str, props: RoleAssignmentProperties, current: dict[str, Any] | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "roleDefinitionId": self.role_id(props.role_definition_id),
            "principalId": props.principal_id,
        }
        if props.principal_type:
            body["principalType"] = props.principal_type
        return {"properties": body}

    def from_arm(self, raw: dict[str, Any], applied: RoleAssignmentProperties | None) -> dict[str, Any]:
        p = raw.get("properties") or {}
        rid = str(raw.get("id") or "")
        scope = p.get("scope")
        if not scope and _MARK in rid.lower():
            scope = rid[: rid.lower().index(_MARK)]
        role = str(p.get("roleDefinitionId") or "")
        principal = str(p.get("principalId") or "")
        principal_type = p.get("principalType")
        if applied is not None:
            if role.lower().rsplit("/", 1)[-1] == applied.role_definition_id.lower():
                role = applied.role_definition_id  # the GUID as the user wrote it
            role = as_written(role, applied.role_definition_id) or role
            principal = as_written(principal, applied.principal_id) or principal
            scope = as_written(scope, applied.scope)
            if applied.principal_type is None:
                principal_type = None  # ARM fills it in; the user left it to ARM
            else:
                principal_type = as_written(principal_type, applied.principal_type)
        return {"scope": scope, "role_definition_id": role, "principal_id": principal, "principal_type": principal_type}

    def attributes_of(self, raw: dict[str, Any]) -> dict[str, Any]:
        return {"id": raw.get("id"), "name": raw.get("name")}

    # ------------------------------------------------------------------ the contract, by id_for

    def _matches(self, raw: dict[str, Any], props: RoleAssignmentProperties) -> bool:
        p = raw.get("properties") or {}
        return (
            str(p.get("principalId", "")).lower() == props.principal_id.lower()
            and str(p.get("roleDefinitionId", "")).lower() == self.role_id(props.role_definition_id).lower()
        )

    def create(self, address: str, props: RoleAssignmentProperties) -> Observed:
        id = self.id_for(address, props)
        with self.az.errors(address, f"create {id}"):
            existing = self.get(id)
            if existing is not None:
                if not self._matches(existing, props):  # a GUID of this address's: never someone else's
                    raise self.exists_error(address, existing)
                return self.observed(existing, props)  # the object a lost create made
            poller = self._begin_put(id, self.to_arm(address, props, None))
        return self.finish_create(address, id, lambda: self.settle(address, id, poller, props))

    def read(self, address: str, id: str, props: RoleAssignmentProperties) -> Observed | None:
        with self.az.errors(address, f"read {id}"):
            raw = self.get(id.partition("?")[0] if id else self.id_for(address, props))
        return None if raw is None else self.observed(raw, props)

    def update(
        self, address: str, id: str, old: RoleAssignmentProperties, new: RoleAssignmentProperties
    ) -> Observed:
        # every property is force-new: the engine only gets here to bring a found object to `new`
        seen = self.read(address, id, new)
        if seen is None:
            raise ConfigError(f"{address}: role assignment {id} is gone", hint="run a plan again to create it")
        return seen

    def delete(self, address: str, id: str, props: RoleAssignmentProperties) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        rid = id.partition("?")[0] if id else self.id_for(address, props)
        with self.az.errors(address, f"delete {rid}"):
            try:
                poller = self.az.resources.resources.begin_delete_by_id(
                    rid, api_version=self.api_version, **self.az.polling_kwargs
                )
                self.az.wait(poller, address, f"delete of {rid}")
            except ResourceNotFoundError:
                return

    def find(self, address: str, props: RoleAssignmentProperties) -> Observed | None:
        id = self.id_for(address, props)
        with self.az.errors(address, f"find {id}"):
            raw = self.get(id)
        if raw is None or not self._matches(raw, props):
            return None
        return self.observed(raw, props)

    def check_id(self, id: str) -> str:
        raw_id = id.partition("?")[0].rstrip("/")
        low = raw_id.lower()
        if _MARK not in low or not re.fullmatch(_GUID, raw_id.rsplit("/", 1)[-1]):
            raise ConfigError(
                f"not a role assignment id: {raw_id!r}",
                hint="expected {scope}/providers/Microsoft.Authorization/roleAssignments/{GUID}",
            )
        return raw_id

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        """By id only: ARM lists assignments per scope through an API this provider does not call."""
        if query.id is None:
            raise ConfigError(
                f"{address}: an azure.role_assignment lookup needs its id",
                hint="id: {scope}/providers/Microsoft.Authorization/roleAssignments/{GUID}",
            )
        return super().lookup(address, query)

    def estimate_seconds(self, props: RoleAssignmentProperties) -> float:
        return 3.0
