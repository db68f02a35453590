"""`azure.resource`: any Azure Resource Manager resource, by id, through the generic resources API.

Owns building the ARM id from type + name + resource group, PUT/GET/DELETE by id with the
user's api_version, and reporting only the properties the user set (ARM adds many defaults), so
a re-plan is clean. Tag-only changes go through the tags API instead of a full PUT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from cloudorch_azure.shape import ADDRESS_TAG, project, same_location

if TYPE_CHECKING:
    from cloudorch_azure.provider import AzureProvider

#: properties ARM computes; never part of what an import reports as the user's
READ_ONLY_PROPERTIES = frozenset({"provisioningState", "creationTime", "primaryEndpoints", "statusOfPrimary"})


class ArmResourceProperties(ResourceProperties):
    resource_type: str = prop(
        description="ARM type such as `Microsoft.Storage/storageAccounts` (child types: `.../parent/child`).",
        force_new=True,
        pattern=r"^[A-Za-z0-9.]+(/[A-Za-z0-9]+)+$",
    )
    api_version: str = prop(description="The resource provider's API version, e.g. `2023-05-01`.")
    name: str = prop(description="Resource name; a child resource's is `parent/child`.", force_new=True)
    resource_group: str = prop(description="Resource group name (usually a reference).", force_new=True)
    location: str | None = prop(
        None,
        force_new=True,
        description="Region; a top-level resource defaults to providers.azure.location, a child has none.",
    )
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; providers.azure.default_tags are added.")
    properties: dict[str, Any] = prop(
        default_factory=dict,
        description="The resource's `properties` body, free-form; only the keys written here are compared.",
    )
    sku: dict[str, Any] | None = prop(None, description="The `sku` body, e.g. {name: Standard_LRS}.")
    kind: str | None = prop(None, description="The `kind`, e.g. StorageV2.")


def arm_id(subscription: str, resource_group: str, resource_type: str, name: str) -> str:
    namespace, *types = resource_type.split("/")
    names = name.split("/")
    if len(types) != len(names):
        raise ConfigError(
            f"name {name!r} does not fit type {resource_type!r}: a child resource's name is `parent/child`"
        )
    path = "/".join(f"{t}/{n}" for t, n in zip(types, names, strict=True))
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{namespace}/{path}"


def parse_arm_id(id: str) -> tuple[str, str, str, str]:
    """ARM id -> (subscription, resource group, resource type, name)."""
    parts = [p for p in id.split("/") if p]
    lowered = [p.lower() for p in parts]
    try:
        if lowered[0] != "subscriptions" or lowered[2] != "resourcegroups" or lowered[4] != "providers":
            raise ValueError
        namespace, rest = parts[5], parts[6:]
        if not rest or len(rest) % 2:
            raise ValueError
    except (IndexError, ValueError):
        raise ConfigError(
            f"not an ARM resource id: {id!r}",
            hint="expected /subscriptions/S/resourceGroups/RG/providers/NAMESPACE/TYPE/NAME[?api-version=V]",
        ) from None
    types, names = rest[0::2], rest[1::2]
    return parts[1], parts[3], "/".join([namespace, *types]), "/".join(names)


class ArmResource(ResourceType[ArmResourceProperties]):
    """Any ARM resource, PUT and read by id with the user's api_version."""

    type_name = "azure.resource"
    Properties = ArmResourceProperties
    description = "Any Azure Resource Manager resource by type, api_version and name (generic resources API)."
    attributes = {
        "id": "The ARM id.",
        "provisioning_state": "ARM's provisioning state.",
        "location": "The region as ARM reports it.",
        "full_properties": "Every property ARM reports, defaults included.",
        "identity": "The managed identity block, if any.",
    }
    # ARM reports the object anew after a PUT
    recomputed_on_update = frozenset({"provisioning_state", "full_properties", "identity"})

    @property
    def az(self) -> AzureProvider:
        return self.provider  # type: ignore[return-value]

    def _id(self, props: ArmResourceProperties) -> str:
        return arm_id(self.az.subscription_id, props.resource_group, props.resource_type, props.name)

    def _body(self, address: str, props: ArmResourceProperties) -> dict[str, Any]:
        body: dict[str, Any] = {"tags": self.az.tags_for(address, props.tags), "properties": props.properties}
        top_level = props.resource_type.count("/") == 1
        location = props.location or (self.az.cfg.location if top_level else None)
        if location:
            body["location"] = location
        if props.sku is not None:
            body["sku"] = props.sku
        if props.kind is not None:
            body["kind"] = props.kind
        return body

    def _get(self, id: str, api_version: str) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            result = self.az.resources.resources.get_by_id(id, api_version=api_version)
        except ResourceNotFoundError:  # the resource, or its whole group, is gone
            return None
        return dict(result.as_dict()) if hasattr(result, "as_dict") else dict(result)

    def _observed(self, raw: dict[str, Any], props: ArmResourceProperties, imported: bool = False) -> Observed:
        _, group, rtype, name = parse_arm_id(raw.get("id") or self._id(props))
        full = raw.get("properties") or {}
        location = raw.get("location")
        if not imported and (props.location is None or same_location(props.location, location)):
            location = props.location
        if imported:
            properties = {k: v for k, v in full.items() if k not in READ_ONLY_PROPERTIES}
            sku, kind = raw.get("sku"), raw.get("kind")
        else:
            properties = project(full, props.properties)
            sku = None if props.sku is None else project(raw.get("sku") or {}, props.sku)
            kind = None if props.kind is None else project(raw.get("kind"), props.kind)
        return Observed(
            id=raw.get("id") or self._id(props),
            properties={
                "resource_type": props.resource_type if not imported else rtype,
                "api_version": props.api_version,
                "name": props.name if not imported else name,
                "resource_group": props.resource_group if not imported else group,
                "location": location,
                "tags": self.az.user_tags(raw.get("tags"), props.tags),
                "properties": properties,
                "sku": sku,
                "kind": kind,
            },
            attributes={
                "id": raw.get("id"),
                "provisioning_state": full.get("provisioningState"),
                "location": raw.get("location"),
                "full_properties": full,
                "identity": raw.get("identity"),
            },
        )

    def _put(self, address: str, props: ArmResourceProperties) -> Observed:
        id = self._id(props)
        poller = self.az.resources.resources.begin_create_or_update_by_id(
            id, self._body(address, props), api_version=props.api_version, **self.az.polling_kwargs
        )
        self.az.wait(poller, address, f"create of {props.resource_type} {props.name}")
        # read back: an LRO's final body is not always the full resource
        raw = self._get(id, props.api_version)
        if raw is None:
            raise ProviderError(
                f"{address}: {id} vanished right after it was created", kind=ErrorKind.TRANSIENT, address=address
            )
        return self._observed(raw, props)

    def create(self, address: str, props: ArmResourceProperties) -> Observed:
        with self.az.errors(address, f"create {props.resource_type} {props.name}"):
            existing = self._get(self._id(props), props.api_version)
            if existing is not None and (existing.get("tags") or {}).get(ADDRESS_TAG) != address:
                raise ProviderError(
                    f"{address}: {props.resource_type} {props.name} already exists and was not made for this address",
                    kind=ErrorKind.FATAL,
                    address=address,
                    hint=f"import it: cloudorch import {address} "
                    f"'{existing.get('id')}?api-version={props.api_version}'",
                )
            return self._put(address, props)

    def read(self, address: str, id: str, props: ArmResourceProperties) -> Observed | None:
        with self.az.errors(address, f"read {props.resource_type} {props.name}"):
            raw = self._get(self._id(props), props.api_version)
        return None if raw is None else self._observed(raw, props)

    def update(self, address: str, id: str, old: ArmResourceProperties, new: ArmResourceProperties) -> Observed:
        with self.az.errors(address, f"update {new.resource_type} {new.name}"):
            only_tags = old.model_copy(update={"tags": new.tags}) == new
            if not only_tags:
                return self._put(address, new)
            # tags alone: the tags API changes them without re-sending (and re-validating) the body
            rid = self._id(new)
            poller = self.az.resources.tags.begin_create_or_update_at_scope(
                rid, {"properties": {"tags": self.az.tags_for(address, new.tags)}}, **self.az.polling_kwargs
            )
            self.az.wait(poller, address, f"tag update of {new.name}")
            raw = self._get(rid, new.api_version)
        if raw is None:
            raise ProviderError(f"{address}: {rid} disappeared during update", kind=ErrorKind.FATAL, address=address)
        return self._observed(raw, new)

    def delete(self, address: str, id: str, props: ArmResourceProperties) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with self.az.errors(address, f"delete {props.resource_type} {props.name}"):
            try:
                poller = self.az.resources.resources.begin_delete_by_id(
                    self._id(props), api_version=props.api_version, **self.az.polling_kwargs
                )
                self.az.wait(poller, address, f"delete of {props.resource_type} {props.name}")
            except ResourceNotFoundError:
                return

    def _latest_api_version(self, address: str, resource_type: str) -> str:
        namespace, _, type_path = resource_type.partition("/")
        provider = self.az.resources.providers.get(namespace)
        for rt in provider.resource_types or []:
            if (rt.resource_type or "").lower() == type_path.lower():
                versions = sorted(rt.api_versions or [], reverse=True)
                stable = [v for v in versions if "preview" not in v]
                if stable or versions:
                    return str((stable or versions)[0])
        raise ProviderError(
            f"{address}: Azure lists no API version for {resource_type}",
            kind=ErrorKind.FATAL,
            address=address,
            hint="import with an explicit version: ID?api-version=YYYY-MM-DD",
        )

    def import_(self, address: str, id: str) -> Observed:
        """`id` is an ARM id, optionally with `?api-version=V`; else the newest stable version is used."""
        seen = self._read_by_id(address, id, "import")
        if seen is None:
            raw_id = id.partition("?")[0]
            raise ProviderError(f"{address}: {raw_id} does not exist", kind=ErrorKind.FATAL, address=address)
        return seen

    def _read_by_id(self, address: str, id: str, doing: str) -> Observed | None:
        """What `import_` reports of the object `id` names (`?api-version=V` optional); None if none."""
        raw_id, _, query = id.partition("?")
        api_version = query.split("api-version=", 1)[1].split("&")[0] if "api-version=" in query else ""
        _, group, rtype, name = parse_arm_id(raw_id)
        with self.az.errors(address, f"{doing} {raw_id}"):
            api_version = api_version or self._latest_api_version(address, rtype)
            raw = self._get(raw_id, api_version)
        if raw is None:
            return None
        props = ArmResourceProperties(resource_type=rtype, api_version=api_version, name=name, resource_group=group)
        return self._observed(raw, props, imported=True)

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        """By ARM id, or every resource of the subscription (of `resource_group` when the filter names
        one) that matches; `api_version` in the filter reads them with that version."""
        version = query.filter.get("api_version")
        suffix = f"?api-version={version}" if isinstance(version, str) else ""
        if query.id is not None:
            ids = [query.id if "?" in query.id else query.id + suffix]
        else:
            group = query.filter.get("resource_group")
            with self.az.errors(address, "list resources"):
                listed = (
                    self.az.resources.resources.list_by_resource_group(group)
                    if isinstance(group, str)
                    else self.az.resources.resources.list()
                )
                ids = [str(r.id) + suffix for r in listed]
        found = [self._read_by_id(address, i, "look up") for i in ids]
        return [o for o in found if o is not None and matches_filter(o, query.filter)]

    def find(self, address: str, props: ArmResourceProperties) -> Observed | None:
        with self.az.errors(address, f"find {props.resource_type} {props.name}"):
            raw = self._get(self._id(props), props.api_version)
        if raw is None or (raw.get("tags") or {}).get(ADDRESS_TAG) != address:
            return None
        return self._observed(raw, props)

    def estimate_seconds(self, props: ArmResourceProperties) -> float:
        return 20.0
