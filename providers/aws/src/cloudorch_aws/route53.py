"""Route 53: `aws.route53_zone` and `aws.route53_record`.

Names are compared without the trailing dot and in lower case, and a record's values as a
sorted list, since DNS treats them as a set. A zone's CallerReference starts with a hash of its
address, so a zone whose CreateHostedZone answer was lost (or whose apply was killed before it
was tagged) is still found by address; the address tag is the fallback for zones made before.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from pydantic import (
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from cloudorch.provider.contract import ErrorKind, LookupQuery, Observed, ProviderError, ResourceProperties, prop
from cloudorch_aws.resource import AwsResource, Shape, tag_dict, tag_list

ZONE_GONE = ("NoSuchHostedZone",)


def dns_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _zone_id(raw: str) -> str:
    return raw.rsplit("/", 1)[-1]


def caller_reference_prefix(address: str) -> str:
    """What every CallerReference of `address`'s zones starts with: fixed per address, so `find`
    can tell them apart without the tag that a lost answer or a crash kept from being written."""
    return f"cloudorch-{hashlib.sha256(address.encode()).hexdigest()[:32]}-"


class ZoneProperties(ResourceProperties):
    """A public hosted zone."""

    name: str = prop(force_new=True, description="Domain name, e.g. example.com (trailing dot optional).")
    comment: str = prop("", description="Free text.")
    force_destroy: bool = prop(False, description="On delete, first delete every record but SOA and NS.")
    tags: dict[str, str] = prop(default_factory=dict, description="Tags.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return dns_name(value)


class ZoneResource(AwsResource[ZoneProperties]):
    """A hosted zone; the id is its zone id (Z...)."""

    type_name = "aws.route53_zone"
    Properties = ZoneProperties
    service = "route53"
    description = "A Route 53 public hosted zone."
    attributes = {"zone_id": "The hosted zone id.", "name_servers": "The delegation set's name servers."}
    recomputed_on_update = frozenset()

    def _tag(self, address: str, zone_id: str, old: dict[str, str] | None, new: dict[str, str]) -> None:
        removed = [k for k in (old or {}) if k not in new]
        kwargs: dict[str, Any] = {"AddTags": tag_list(self.tags_to_apply(address, new))}
        if removed:
            kwargs["RemoveTagKeys"] = removed
        self.call(address, "change_tags_for_resource", ResourceType="hostedzone", ResourceId=zone_id, **kwargs)

    def create(self, address: str, props: ZoneProperties) -> Observed:
        got = self.call(
            address,
            "create_hosted_zone",
            Name=props.name,
            # unique forever (even after a delete), led by the address's own prefix for `find`
            CallerReference=caller_reference_prefix(address) + uuid.uuid4().hex,
            HostedZoneConfig={"Comment": props.comment, "PrivateZone": False},
        )
        zone_id = _zone_id(got["HostedZone"]["Id"])
        servers = got.get("DelegationSet", {}).get("NameServers", [])

        def settle() -> Observed:
            # a unique CallerReference makes each CreateHostedZone a new zone: never retry that,
            # only the tagging of the zone that exists
            self._tag(address, zone_id, None, props.tags)
            return Observed(zone_id, props.model_dump(mode="json"), {"zone_id": zone_id, "name_servers": servers})

        return self.finish_create(address, zone_id, settle)

    def update(self, address: str, id: str, old: ZoneProperties, new: ZoneProperties) -> Observed:
        if old.comment != new.comment:
            self.call(address, "update_hosted_zone_comment", Id=id, Comment=new.comment)
        if old.tags != new.tags:
            self._tag(address, id, old.tags, new.tags)
        seen = self._observe(address, id, new)
        if seen is None:
            raise ProviderError(f"hosted zone {id} is gone", kind=ErrorKind.FATAL, address=address)
        return seen

    def _observe(self, address: str | None, zone_id: str, props: ZoneProperties | None) -> Observed | None:
        got = self.call(address, "get_hosted_zone", Id=zone_id, missing=ZONE_GONE)
        if got is None:
            return None
        zone = got["HostedZone"]
        tags = self.call(address, "list_tags_for_resource", ResourceType="hostedzone", ResourceId=zone_id)
        out = {
            "name": dns_name(zone["Name"]),
            "comment": (zone.get("Config") or {}).get("Comment") or "",
            "force_destroy": props.force_destroy if props else False,
            "tags": self.observed_tags(
                tag_dict(tags.get("ResourceTagSet", {}).get("Tags")), props.tags if props else None
            ),
        }
        servers = (got.get("DelegationSet") or {}).get("NameServers", [])
        return Observed(zone_id, out, {"zone_id": zone_id, "name_servers": servers})

    def read(self, address: str, id: str, props: ZoneProperties) -> Observed | None:
        return self._observe(address, id, props)

    def delete(self, address: str, id: str, props: ZoneProperties) -> None:
        if props.force_destroy:
            try:
                pages = self.client.get_paginator("list_resource_record_sets").paginate(HostedZoneId=id)
                changes = [
                    {"Action": "DELETE", "ResourceRecordSet": rrs}
                    for page in pages
                    for rrs in page.get("ResourceRecordSets", [])
                    if rrs["Type"] not in ("SOA", "NS")
                ]
            except Exception as exc:
                if getattr(exc, "response", {}).get("Error", {}).get("Code") in ZONE_GONE:
                    return
                raise self.provider.classify(exc, address) from exc
            if changes:
                self.call(address, "change_resource_record_sets", HostedZoneId=id, ChangeBatch={"Changes": changes})
        self.call(address, "delete_hosted_zone", Id=id, missing=ZONE_GONE)

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, _zone_id(id), None)
        if seen is None:
            raise ProviderError(f"no hosted zone {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        name = query.filter.get("name")
        if isinstance(name, str):  # as `read` reports it: no trailing dot, lower case
            query = LookupQuery(query.id, {**query.filter, "name": dns_name(name)})

        def listed() -> list[str]:
            zones = self.paginate(address, "list_hosted_zones", "HostedZones")
            wanted = dns_name(name) if isinstance(name, str) else None
            return [_zone_id(z["Id"]) for z in zones if wanted is None or dns_name(z["Name"]) == wanted]

        return self.lookup_listed(query, lambda i: self._observe(address, _zone_id(i), None), listed)

    def find(self, address: str, props: ZoneProperties) -> Observed | None:
        found = self.find_all(address, props)
        return found[0] if found else None

    def find_all(self, address: str, props: ZoneProperties) -> list[Observed]:
        # several zones may share a name (after a replace, an old and a new one): each one whose
        # CallerReference or address tag says it was made for this address
        got = self.call(address, "list_hosted_zones_by_name", DNSName=props.name, MaxItems="100")
        prefix = caller_reference_prefix(address)
        out: list[Observed] = []
        for zone in got.get("HostedZones", []):
            if dns_name(zone["Name"]) != props.name:
                continue
            zone_id = _zone_id(zone["Id"])
            if not str(zone.get("CallerReference", "")).startswith(prefix):
                tags = self.call(address, "list_tags_for_resource", ResourceType="hostedzone", ResourceId=zone_id)
                if not self.owned_by(tag_dict(tags.get("ResourceTagSet", {}).get("Tags")), address):
                    continue
            seen = self._observe(address, zone_id, props)
            if seen is not None:
                out.append(seen)
        return out

    def estimate_seconds(self, props: ZoneProperties) -> float:
        return 5.0


class Alias(Shape):
    """Where an alias record points: an AWS object with a DNS name, such as a load balancer."""

    name: str = prop(description="The target's DNS name, e.g. `${resources.LB.dns_name}`.")
    zone_id: str = prop(description="The target's hosted zone id, e.g. `${resources.LB.zone_id}`.")
    evaluate_target_health: bool = prop(False, description="Answer only while the target is healthy.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return dns_name(value)


class RecordProperties(ResourceProperties):
    """A DNS record set (simple routing). Records are compared as a set."""

    zone_id: str = prop(force_new=True, description="Hosted zone id, usually `${resources.ZONE.zone_id}`.")
    name: str = prop(force_new=True, description="Full record name, e.g. www.example.com.")
    type: str = prop(force_new=True, description="A, AAAA, CNAME, TXT, MX, ...")
    ttl: int = prop(300, ge=0, description="Seconds resolvers may cache it (not with `alias`).")
    records: list[str] | None = prop(
        None, min_length=1, description="Values (TXT values include their quotes); required unless `alias` is set."
    )
    alias: Alias | None = prop(
        None, description="Alias to an AWS target such as a load balancer, instead of `records` and `ttl`."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return dns_name(value)

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        return value.upper()

    @field_validator("records")
    @classmethod
    def _records(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else sorted(set(value))

    @field_validator("alias")
    @classmethod
    def _alias_alone(cls, value: Alias | None, info: ValidationInfo) -> Alias | None:
        # a field's check, not the model's: it runs at plan even while the zone id is unknown; a
        # value still unknown (records) is not in `info.data`, so it waits for the apply. A plan
        # whose alias is unknown carries the default TTL (the planner fills defaults in), so only
        # another TTL is known to be the user's
        if value is not None:
            ttl_default = cls.model_fields["ttl"].default
            for name, given in (
                ("records", info.data.get("records") is not None),
                ("ttl", info.data.get("ttl", ttl_default) != ttl_default),
            ):
                if given:
                    raise ValueError(
                        f"`alias` and `{name}` exclude each other: an alias record answers with its target's addresses"
                    )
        return value

    @model_validator(mode="after")
    def _alias_or_records(self) -> RecordProperties:
        if self.alias is None and self.records is None:
            # no field named: while either is unknown at plan, the check waits for the apply
            raise ValueError("set `records` (with `ttl`), or `alias`")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # a record with values dumps exactly as before aliases existed; an alias has no values or TTL
        out: dict[str, Any] = handler(self)
        if self.alias is None:
            out.pop("alias", None)
        else:
            out.pop("records", None)
            out.pop("ttl", None)
        return out


class RecordResource(AwsResource[RecordProperties]):
    """A record set; the id is ZONE_NAME_TYPE."""

    type_name = "aws.route53_record"
    Properties = RecordProperties
    service = "route53"
    taggable = False
    description = "A Route 53 record set with simple routing, or an alias to a load balancer."
    attributes = {"fqdn": "The record name."}
    recomputed_on_update = frozenset()

    def _change(self, address: str, action: str, props: RecordProperties) -> None:
        record_set: dict[str, Any] = {"Name": props.name + ".", "Type": props.type}
        alias = props.alias
        if alias is None:
            record_set["TTL"] = props.ttl
            record_set["ResourceRecords"] = [{"Value": v} for v in props.records or ()]
        else:
            if not isinstance(alias, Alias):  # rebuilt from state without validation
                alias = Alias.model_validate(alias)
            record_set["AliasTarget"] = {
                "HostedZoneId": alias.zone_id,
                "DNSName": alias.name + ".",
                "EvaluateTargetHealth": alias.evaluate_target_health,
            }
        self.call(
            address,
            "change_resource_record_sets",
            HostedZoneId=props.zone_id,
            ChangeBatch={"Changes": [{"Action": action, "ResourceRecordSet": record_set}]},
        )

    def _id(self, props: RecordProperties) -> str:
        return f"{props.zone_id}_{props.name}_{props.type}"

    def create(self, address: str, props: RecordProperties) -> Observed:
        self._change(address, "UPSERT", props)  # UPSERT: a crashed create just runs again
        return Observed(self._id(props), props.model_dump(mode="json"), {"fqdn": props.name})

    def update(self, address: str, id: str, old: RecordProperties, new: RecordProperties) -> Observed:
        self._change(address, "UPSERT", new)
        return Observed(id, new.model_dump(mode="json"), {"fqdn": new.name})

    def _observe(self, address: str | None, id: str) -> Observed | None:
        zone_id, _, rest = id.partition("_")  # names may hold "_" (_dmarc); zone ids and types never do
        name, _, rtype = rest.rpartition("_")
        got = self.call(
            address,
            "list_resource_record_sets",
            HostedZoneId=zone_id,
            StartRecordName=name + ".",
            StartRecordType=rtype,
            MaxItems="1",
            missing=ZONE_GONE,
        )
        for rrs in (got or {}).get("ResourceRecordSets", []):
            if dns_name(rrs["Name"]) == name and rrs["Type"] == rtype:
                target = rrs.get("AliasTarget")
                out: dict[str, Any]
                if target:
                    alias = {
                        "name": dns_name(target.get("DNSName", "")),
                        "zone_id": target.get("HostedZoneId"),
                        "evaluate_target_health": bool(target.get("EvaluateTargetHealth", False)),
                    }
                    out = {"zone_id": zone_id, "name": name, "type": rtype, "alias": alias}
                    return Observed(id, out, {"fqdn": name})
                out = {
                    "zone_id": zone_id,
                    "name": name,
                    "type": rtype,
                    "ttl": int(rrs.get("TTL", 0)),
                    "records": sorted({r["Value"] for r in rrs.get("ResourceRecords", [])}),
                }
                return Observed(id, out, {"fqdn": name})
        return None

    def read(self, address: str, id: str, props: RecordProperties) -> Observed | None:
        return self._observe(address, id)

    def delete(self, address: str, id: str, props: RecordProperties) -> None:
        seen = self._observe(address, id)
        if seen is None:
            return
        # DELETE must name the record exactly as it is now, not as it was planned
        self._change(address, "DELETE", RecordProperties.model_validate(seen.properties))

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id)
        if seen is None:
            raise ProviderError(
                f"no record set {id} (expected ZONEID_NAME_TYPE)", kind=ErrorKind.FATAL, address=address
            )
        return seen

    def find(self, address: str, props: RecordProperties) -> Observed | None:
        return self._observe(address, self._id(props))

    def estimate_seconds(self, props: RecordProperties) -> float:
        return 2.0
