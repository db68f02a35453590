"""The base of the typed Azure resource types: one ARM type each, at a pinned API version.

Owns what every typed type shares over the generic resources API (the same calls
`cloudorch_azure.arm_resource` makes): building the id, the PUT (awaited when ARM answers it
asynchronously) and the read back, the delete, import by id, `find` by the address tag (or by
the deterministic name where ARM keeps no tags), and `lookup`. A subclass only maps its typed
properties to the ARM body (`to_arm`) and the ARM body back to them (`from_arm`), so what a read
reports is exactly what a plan compares: every property is always sent, so ARM's defaults never
show as a difference, and a change made outside shows as one. Its API version is a constant of
the class, never the user's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel

from cloudorch.provider.contract import (
    ConfigError,
    ErrorKind,
    LookupQuery,
    Observed,
    ProviderError,
    ResourceProperties,
    ResourceType,
    matches_filter,
    prop,
)
from cloudorch_azure.arm_resource import arm_id, parse_arm_id
from cloudorch_azure.shape import ADDRESS_TAG, same_location

if TYPE_CHECKING:
    from cloudorch_azure.provider import AzureProvider

P = TypeVar("P", bound=BaseModel)


class GroupedProperties(ResourceProperties):
    """What every top-level typed type has: a name in a resource group, a region, tags."""

    name: str = prop(description="The resource's name.", force_new=True, min_length=1, max_length=80)
    resource_group: str = prop(description="Resource group name (usually a reference).", force_new=True)
    location: str | None = prop(
        None, force_new=True, description="Region such as `westeurope`; defaults to providers.azure.location."
    )
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; providers.azure.default_tags are added.")


def same_id(a: str | None, b: str | None) -> bool:
    """ARM ids compare without regard to case (ARM answers `resourcegroups` for `resourceGroups`)."""
    if a is None or b is None:
        return a is b
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def as_written(observed: str | None, written: str | None) -> str | None:
    """An id or enum as the user wrote it when ARM's answer means the same (case aside)."""
    return written if written is not None and same_id(observed, written) else observed


class TypedArmResource(ResourceType[P]):
    """One ARM resource type at a pinned API version; subclasses map properties to the body and back."""

    #: the ARM type, e.g. `Microsoft.Network/virtualNetworks`
    arm_type: ClassVar[str]
    #: the API version every call of the type uses (ARM's answer shapes are pinned with it)
    api_version: ClassVar[str]
    #: whether ARM keeps tags on it (then `find` asks for the address tag)
    taggable: ClassVar[bool] = True

    @property
    def az(self) -> AzureProvider:
        return self.provider  # type: ignore[return-value]

    # ------------------------------------------------------------------ what subclasses say

    def rid(self, props: P) -> str:
        """The ARM id the properties name (deterministic: no call)."""
        return arm_id(self.az.subscription_id, props.resource_group, self.arm_type, props.name)  # type: ignore[attr-defined]

    def to_arm(self, address: str, props: P, current: dict[str, Any] | None) -> dict[str, Any]:
        """The PUT body; `current` is the object as ARM has it before an update (None on create)."""
        raise NotImplementedError

    def from_arm(self, raw: dict[str, Any], applied: P | None) -> dict[str, Any]:
        """The properties ARM reports, in the user's spelling where `applied` says it (None: an import)."""
        raise NotImplementedError

    def attributes_of(self, raw: dict[str, Any]) -> dict[str, Any]:
        props = raw.get("properties") or {}
        return {"id": raw.get("id"), "provisioning_state": props.get("provisioningState")}

    # ------------------------------------------------------------------ shared mapping helpers

    def base_body(self, address: str, props: Any) -> dict[str, Any]:
        """`location` and `tags` of a top-level taggable resource."""
        return {
            "location": self.az.location_for(address, props.location),
            "tags": self.az.tags_for(address, props.tags),
        }

    def base_properties(self, raw: dict[str, Any], applied: Any) -> dict[str, Any]:
        """`name`, `resource_group`, `location`, `tags` of a top-level resource, from its id."""
        _, group, _, name = parse_arm_id(str(raw.get("id")))
        location = raw.get("location")
        if applied is not None and (applied.location is None or same_location(applied.location, location)):
            location = applied.location
        return {
            "name": applied.name if applied is not None and applied.name.lower() == name.lower() else name,
            "resource_group": (
                applied.resource_group
                if applied is not None and applied.resource_group.lower() == group.lower()
                else group
            ),
            "location": location,
            "tags": self.az.user_tags(raw.get("tags"), applied.tags if applied is not None else {}),
        }

    # ------------------------------------------------------------------ calls

    def get(self, id: str) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            result = self.az.resources.resources.get_by_id(id, api_version=self.api_version)
        except ResourceNotFoundError:  # the resource, its parent or its whole group is gone
            return None
        return dict(result.as_dict())

    def observed(self, raw: dict[str, Any], applied: P | None) -> Observed:
        return Observed(id=str(raw["id"]), properties=self.from_arm(raw, applied), attributes=self.attributes_of(raw))

    def owned(self, raw: dict[str, Any], address: str) -> bool:
        """Whether the object ARM has was made for `address` (its tag; an untagged type: its id)."""
        if not self.taggable:
            return True
        return (raw.get("tags") or {}).get(ADDRESS_TAG) == address

    def settle(self, address: str, id: str, poller: Any, props: P) -> Observed:
        """Wait for the PUT's operation, then read the object back (an LRO's last body may be partial)."""
        if poller is not None:
            self.az.wait(poller, address, f"PUT of {id}")
        raw = self.get(id)
        if raw is None:
            raise ProviderError(
                f"{address}: {id} vanished right after it was written", kind=ErrorKind.TRANSIENT, address=address
            )
        return self.observed(raw, props)

    def _begin_put(self, id: str, body: dict[str, Any]) -> Any:
        return self.az.resources.resources.begin_create_or_update_by_id(
            id, body, api_version=self.api_version, **self.az.polling_kwargs
        )

    def exists_error(self, address: str, raw: dict[str, Any]) -> ProviderError:
        return ProviderError(
            f"{address}: {self.arm_type} {raw.get('name')} already exists and was not made for this address",
            kind=ErrorKind.FATAL,
            address=address,
            hint=f"import it: cloudorch import {address} '{raw.get('id')}'",
        )

    # ------------------------------------------------------------------ the contract

    def create(self, address: str, props: P) -> Observed:
        id = self.rid(props)
        with self.az.errors(address, f"create {id}"):
            existing = self.get(id)
            if existing is not None and not self.owned(existing, address):
                raise self.exists_error(address, existing)
            adopted = self.adopt(address, props, existing)
            if adopted is not None:
                return adopted
            poller = self._begin_put(id, self.to_arm(address, props, existing))
        # the object exists from here on: a failed wait or read back must not make a second one
        return self.finish_create(address, id, lambda: self.settle(address, id, poller, props))

    def adopt(self, address: str, props: P, existing: dict[str, Any] | None) -> Observed | None:
        """An object of this address that already is what was asked (no PUT needed); else None."""
        return None

    def read(self, address: str, id: str, props: P) -> Observed | None:
        rid = self.rid(props)
        with self.az.errors(address, f"read {rid}"):
            raw = self.get(rid)
        return None if raw is None else self.observed(raw, props)

    def update(self, address: str, id: str, old: P, new: P) -> Observed:
        rid = self.rid(new)
        with self.az.errors(address, f"update {rid}"):
            current = self.get(rid)
            if current is None:
                raise ProviderError(
                    f"{address}: {rid} is gone, it cannot be updated",
                    kind=ErrorKind.FATAL,
                    address=address,
                    hint="run a plan again: it will create the object anew",
                )
            self.check_update(address, old, new, current)
            poller = self._begin_put(rid, self.to_arm(address, new, current))
            return self.settle(address, rid, poller, new)

    def check_update(self, address: str, old: P, new: P, current: dict[str, Any]) -> None:
        """Refuse, with a located error, an in-place change ARM would refuse (subclasses)."""

    def delete(self, address: str, id: str, props: P) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        rid = self.rid(props)
        with self.az.errors(address, f"delete {rid}"):
            try:
                poller = self.az.resources.resources.begin_delete_by_id(
                    rid, api_version=self.api_version, **self.az.polling_kwargs
                )
                self.az.wait(poller, address, f"delete of {rid}")
            except ResourceNotFoundError:
                return

    def check_id(self, id: str) -> str:
        """The ARM id without a `?api-version=` (the type's own is used), checked to be of this type."""
        raw_id = id.partition("?")[0]
        _, _, rtype, _ = parse_arm_id(raw_id)
        if rtype.lower() != self.arm_type.lower():
            raise ConfigError(
                f"{raw_id} is a {rtype}, not a {self.arm_type}",
                hint=f"{self.type_name} imports ids of {self.arm_type}; use azure.resource for others",
            )
        return raw_id

    def import_(self, address: str, id: str) -> Observed:
        rid = self.check_id(id)
        with self.az.errors(address, f"import {rid}"):
            raw = self.get(rid)
        if raw is None:
            raise ProviderError(f"{address}: {rid} does not exist", kind=ErrorKind.FATAL, address=address)
        return self.observed(raw, None)

    def find(self, address: str, props: P) -> Observed | None:
        rid = self.rid(props)
        with self.az.errors(address, f"find {rid}"):
            raw = self.get(rid)
        if raw is None or not self.owned(raw, address):
            return None
        return self.observed(raw, props)

    def list_ids(self, address: str, filter: Mapping[str, Any]) -> list[str]:
        """Ids of every object of this type in the subscription (in `resource_group` if the filter names one)."""
        group = filter.get("resource_group")
        type_filter = f"resourceType eq '{self.arm_type}'"
        with self.az.errors(address, f"list {self.arm_type}"):
            listed = (
                self.az.resources.resources.list_by_resource_group(group, filter=type_filter)
                if isinstance(group, str)
                else self.az.resources.resources.list(filter=type_filter)
            )
            # filtered here too: the type filter is a hint some endpoints ignore
            return [str(r.id) for r in listed if str(r.type).lower() == self.arm_type.lower()]

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        """By ARM id, or every object of the type (in `resource_group` when the filter names one)."""
        ids = [self.check_id(query.id)] if query.id is not None else self.list_ids(address, query.filter)
        found: list[Observed] = []
        for rid in ids:
            with self.az.errors(address, f"look up {rid}"):
                raw = self.get(rid)
            if raw is not None:
                seen = self.observed(raw, None)
                if matches_filter(seen, query.filter):
                    found.append(seen)
        return found

    def estimate_seconds(self, props: P) -> float:
        return 10.0
