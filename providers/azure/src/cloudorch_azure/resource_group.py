"""`azure.resource_group`: an Azure resource group, through the Resource Manager SDK.

Owns create/read/update/delete/import/find of one resource group. Location is force-new; delete
waits for the long-running operation. It never retries: the engine does.
"""

from __future__ import annotations

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
from cloudorch_azure.shape import ADDRESS_TAG, same_location

if TYPE_CHECKING:
    from cloudorch_azure.provider import AzureProvider


class ResourceGroupProperties(ResourceProperties):
    name: str = prop(
        description="Resource group name (1-90 letters, digits, `._-()`).",
        force_new=True,
        min_length=1,
        max_length=90,
        pattern=r"^[-\w._()]+$",
    )
    location: str | None = prop(
        None, force_new=True, description="Region such as `westeurope`; defaults to providers.azure.location."
    )
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; providers.azure.default_tags are added.")


def name_from_id(id: str) -> str:
    """`/subscriptions/s/resourceGroups/NAME` or plain `NAME` -> NAME."""
    parts = [p for p in id.split("/") if p]
    if len(parts) >= 4 and parts[0].lower() == "subscriptions" and parts[2].lower() == "resourcegroups":
        return parts[3]
    return id


class ResourceGroup(ResourceType[ResourceGroupProperties]):
    """An Azure resource group."""

    type_name = "azure.resource_group"
    Properties = ResourceGroupProperties
    description = "An Azure resource group; location is force-new, delete waits until it is gone."
    attributes = {
        "id": "The ARM id, /subscriptions/.../resourceGroups/NAME.",
        "name": "The name.",
        "location": "The region as ARM reports it.",
        "provisioning_state": "ARM's provisioning state.",
    }
    recomputed_on_update = frozenset({"provisioning_state"})

    @property
    def az(self) -> AzureProvider:
        return self.provider  # type: ignore[return-value]

    def _observed(self, rg: Any, applied: ResourceGroupProperties | None) -> Observed:
        location = rg.location
        if applied is not None and (applied.location is None or same_location(applied.location, location)):
            location = applied.location  # the user's spelling, or unset as the user left it
        state = getattr(rg.properties, "provisioning_state", None) if rg.properties is not None else None
        return Observed(
            id=rg.id,
            properties={
                "name": rg.name,
                "location": location,
                "tags": self.az.user_tags(rg.tags, applied.tags if applied else {}),
            },
            attributes={"id": rg.id, "name": rg.name, "location": rg.location, "provisioning_state": state},
        )

    def _get(self, name: str) -> Any | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.az.resources.resource_groups.get(name)
        except ResourceNotFoundError:
            return None

    def create(self, address: str, props: ResourceGroupProperties) -> Observed:
        location = self.az.location_for(address, props.location)
        with self.az.errors(address, f"create resource group {props.name}"):
            existing = self._get(props.name)
            if existing is not None and (existing.tags or {}).get(ADDRESS_TAG) != address:
                raise ProviderError(
                    f"{address}: resource group {props.name} already exists and was not made for this address",
                    kind=ErrorKind.FATAL,
                    address=address,
                    hint=f"import it: cloudorch import {address} {existing.id}",
                )
            rg = self.az.resources.resource_groups.create_or_update(
                props.name, {"location": location, "tags": self.az.tags_for(address, props.tags)}
            )
        return self._observed(rg, props)

    def read(self, address: str, id: str, props: ResourceGroupProperties) -> Observed | None:
        with self.az.errors(address, f"read resource group {props.name}"):
            rg = self._get(props.name or name_from_id(id))
        return None if rg is None else self._observed(rg, props)

    def update(self, address: str, id: str, old: ResourceGroupProperties, new: ResourceGroupProperties) -> Observed:
        with self.az.errors(address, f"update resource group {new.name}"):
            rg = self.az.resources.resource_groups.update(new.name, {"tags": self.az.tags_for(address, new.tags)})
        return self._observed(rg, new)

    def delete(self, address: str, id: str, props: ResourceGroupProperties) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with self.az.errors(address, f"delete resource group {props.name}"):
            try:
                poller = self.az.resources.resource_groups.begin_delete(props.name, **self.az.polling_kwargs)
                self.az.wait(poller, address, f"delete of resource group {props.name}")
            except ResourceNotFoundError:
                return

    def import_(self, address: str, id: str) -> Observed:
        name = name_from_id(id)
        with self.az.errors(address, f"import resource group {name}"):
            rg = self._get(name)
        if rg is None:
            raise ProviderError(
                f"{address}: resource group {name} does not exist", kind=ErrorKind.FATAL, address=address
            )
        return self._observed(rg, None)

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        if query.id is not None:
            name = name_from_id(query.id)
            with self.az.errors(address, f"look up resource group {name}"):
                rg = self._get(name)
            found = [] if rg is None else [self._observed(rg, None)]
        else:
            with self.az.errors(address, "list resource groups"):
                found = [self._observed(rg, None) for rg in self.az.resources.resource_groups.list()]
        return [o for o in found if matches_filter(o, query.filter)]

    def find(self, address: str, props: ResourceGroupProperties) -> Observed | None:
        with self.az.errors(address, f"find resource group {props.name}"):
            rg = self._get(props.name)
        if rg is None or (rg.tags or {}).get(ADDRESS_TAG) != address:
            return None
        return self._observed(rg, props)

    def estimate_seconds(self, props: ResourceGroupProperties) -> float:
        return 3.0
