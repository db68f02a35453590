"""DynamoDB: `aws.dynamodb_table` (keys, attributes, billing mode, TTL, tags); waits for ACTIVE.

Key schema and attribute definitions force replacement; billing mode, throughput, TTL and tags
change in place.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from cloudorch.provider.contract import ErrorKind, Observed, ProviderError, ResourceProperties, prop
from cloudorch_aws.resource import AwsResource, tag_dict, tag_list

GONE = ("ResourceNotFoundException",)


class TableProperties(ResourceProperties):
    """A DynamoDB table. `attributes` declares the type of every key attribute."""

    name: str = prop(force_new=True, pattern=r"^[A-Za-z0-9_.-]{3,255}$", description="Table name.")
    hash_key: str = prop(force_new=True, description="Partition key attribute name.")
    range_key: str | None = prop(None, force_new=True, description="Sort key attribute name, if any.")
    attributes: dict[str, Literal["S", "N", "B"]] = prop(
        force_new=True, description="Key attribute name -> type (S string, N number, B binary)."
    )
    billing_mode: Literal["PAY_PER_REQUEST", "PROVISIONED"] = prop(
        "PAY_PER_REQUEST", description="On-demand or provisioned capacity."
    )
    read_capacity: int | None = prop(None, ge=1, description="PROVISIONED only: read capacity units.")
    write_capacity: int | None = prop(None, ge=1, description="PROVISIONED only: write capacity units.")
    ttl_attribute: str | None = prop(None, description="Attribute holding each item's expiry (epoch seconds).")
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")

    @model_validator(mode="after")
    def _check(self) -> TableProperties:
        for key in (self.hash_key, self.range_key):
            if key is not None and key not in self.attributes:
                raise ValueError(f"key {key!r} needs a type in `attributes`")
        if self.billing_mode == "PROVISIONED" and not (self.read_capacity and self.write_capacity):
            raise ValueError("PROVISIONED billing needs read_capacity and write_capacity")
        if self.billing_mode == "PAY_PER_REQUEST":
            self.read_capacity = self.write_capacity = None
        self.attributes = dict(sorted(self.attributes.items()))
        return self


class TableResource(AwsResource[TableProperties]):
    """A DynamoDB table; the id is its name."""

    type_name = "aws.dynamodb_table"
    Properties = TableProperties
    service = "dynamodb"
    description = "A DynamoDB table with its keys, billing mode, TTL and tags."
    attributes = {
        "arn": "The table ARN.",
        "name": "The table name.",
        "stream_arn": "Latest stream ARN, if any.",
    }
    recomputed_on_update = frozenset()

    def _throughput(self, props: TableProperties) -> dict[str, Any]:
        if props.billing_mode == "PROVISIONED":
            return {
                "ProvisionedThroughput": {
                    "ReadCapacityUnits": props.read_capacity,
                    "WriteCapacityUnits": props.write_capacity,
                }
            }
        return {}

    def create(self, address: str, props: TableProperties) -> Observed:
        keys = [{"AttributeName": props.hash_key, "KeyType": "HASH"}]
        if props.range_key:
            keys.append({"AttributeName": props.range_key, "KeyType": "RANGE"})
        got = self.call(
            address,
            "create_table",
            missing=("ResourceInUseException",) if self._ours(address, props.name) else (),
            TableName=props.name,
            KeySchema=keys,
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": t} for k, t in props.attributes.items()],
            BillingMode=props.billing_mode,
            Tags=tag_list(self.tags_to_apply(address, props.tags)),
            **self._throughput(props),
        )
        arn = got["TableDescription"]["TableArn"] if got else None

        def settle() -> Observed:
            self.wait(address, "table_exists", delay=1, max_attempts=300, TableName=props.name)
            if props.ttl_attribute:
                self._set_ttl(address, props.name, props.ttl_attribute, True)
            seen = self.read(address, props.name, props)
            if seen is None:
                raise ProviderError(
                    f"table {props.name} vanished after create", kind=ErrorKind.TRANSIENT, address=address
                )
            return seen if arn is None else Observed(seen.id, seen.properties, {**seen.attributes, "arn": arn})

        return self.finish_create(address, props.name, settle)

    def _ours(self, address: str, name: str) -> bool:
        """True if a table of this name exists and carries our address tag (a crashed create)."""
        got = self.call(address, "describe_table", TableName=name, missing=GONE)
        if got is None:
            return False
        tags = self.call(address, "list_tags_of_resource", ResourceArn=got["Table"]["TableArn"])
        return self.owned_by(tag_dict(tags.get("Tags")), address)

    def _set_ttl(self, address: str, name: str, attribute: str, enabled: bool) -> None:
        self.call(
            address,
            "update_time_to_live",
            TableName=name,
            TimeToLiveSpecification={"Enabled": enabled, "AttributeName": attribute},
        )

    def update(self, address: str, id: str, old: TableProperties, new: TableProperties) -> Observed:
        if (old.billing_mode, old.read_capacity, old.write_capacity) != (
            new.billing_mode,
            new.read_capacity,
            new.write_capacity,
        ):
            self.call(address, "update_table", TableName=id, BillingMode=new.billing_mode, **self._throughput(new))
            self.wait(address, "table_exists", delay=1, max_attempts=300, TableName=id)
        if old.ttl_attribute != new.ttl_attribute:
            if old.ttl_attribute:
                self._set_ttl(address, id, old.ttl_attribute, False)
            if new.ttl_attribute:
                self._set_ttl(address, id, new.ttl_attribute, True)
        seen = self.read(address, id, new)
        if seen is None:
            raise ProviderError(f"table {id} is gone", kind=ErrorKind.FATAL, address=address)
        if old.tags != new.tags:
            arn = seen.attributes["arn"]
            removed = [k for k in old.tags if k not in new.tags]
            if removed:
                self.call(address, "untag_resource", ResourceArn=arn, TagKeys=removed)
            self.call(address, "tag_resource", ResourceArn=arn, Tags=tag_list(self.tags_to_apply(address, new.tags)))
            seen = Observed(seen.id, {**seen.properties, "tags": dict(sorted(new.tags.items()))}, seen.attributes)
        return seen

    def _observe(self, address: str | None, name: str, props: TableProperties | None) -> Observed | None:
        got = self.call(address, "describe_table", TableName=name, missing=GONE)
        if got is None:
            return None
        table = got["Table"]
        if table.get("TableStatus") == "DELETING":
            return None
        keys = {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]}
        billing = (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
        throughput = table.get("ProvisionedThroughput") or {}
        tags = tag_dict(self.call(address, "list_tags_of_resource", ResourceArn=table["TableArn"]).get("Tags"))
        ttl = self.call(address, "describe_time_to_live", TableName=name).get("TimeToLiveDescription", {})
        out = {
            "name": name,
            "hash_key": keys.get("HASH"),
            "range_key": keys.get("RANGE"),
            "attributes": dict(
                sorted((a["AttributeName"], a["AttributeType"]) for a in table.get("AttributeDefinitions", []))
            ),
            "billing_mode": billing,
            "read_capacity": throughput.get("ReadCapacityUnits") if billing == "PROVISIONED" else None,
            "write_capacity": throughput.get("WriteCapacityUnits") if billing == "PROVISIONED" else None,
            "ttl_attribute": ttl.get("AttributeName")
            if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
            else None,
            "tags": self.observed_tags(tags, props.tags if props else None),
        }
        attrs = {"arn": table["TableArn"], "name": name, "stream_arn": table.get("LatestStreamArn")}
        return Observed(name, out, attrs)

    def read(self, address: str, id: str, props: TableProperties) -> Observed | None:
        return self._observe(address, id, props)

    def delete(self, address: str, id: str, props: TableProperties) -> None:
        if self.call(address, "delete_table", TableName=id, missing=GONE) is not None:
            self.wait(address, "table_not_exists", delay=1, max_attempts=300, TableName=id)

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no DynamoDB table {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def find(self, address: str, props: TableProperties) -> Observed | None:
        return self._observe(address, props.name, props) if self._ours(address, props.name) else None

    def estimate_seconds(self, props: TableProperties) -> float:
        return 10.0
