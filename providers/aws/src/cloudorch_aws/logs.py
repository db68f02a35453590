"""CloudWatch Logs: `aws.cloudwatch_log_group`, with retention and an optional KMS key.

Retention takes only the values CloudWatch Logs accepts (checked when the plan is loaded, so a
typo is a located error, not a failed apply). Log groups are refreshed in bulk: one paginated
`DescribeLogGroups` (50 a page) and one `ListTagsForResource` per group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import field_validator

from cloudorch.provider.contract import (
    ErrorKind,
    LookupQuery,
    Observed,
    ProviderError,
    ReadRequest,
    ResourceProperties,
    prop,
)
from cloudorch_aws.kms import key_as_asked
from cloudorch_aws.resource import AwsResource

GONE = ("ResourceNotFoundException",)
#: the only retention periods PutRetentionPolicy accepts, in days
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                  3288, 3653)  # fmt: skip


class LogGroupProperties(ResourceProperties):
    """A CloudWatch Logs log group."""

    name: str = prop(
        force_new=True, pattern=r"^[.\-_/#A-Za-z0-9]{1,512}$", description="Log group name, e.g. `/ecs/web`."
    )
    retention_in_days: int | None = prop(
        None,
        description="Days events are kept: one of " + ", ".join(map(str, RETENTION_DAYS)) + "; None: forever.",
    )
    kms_key_id: str | None = prop(None, description="ARN of the KMS key encrypting the log data; None: AWS's own.")
    log_group_class: Literal["STANDARD", "INFREQUENT_ACCESS"] = prop(
        "STANDARD", force_new=True, description="STANDARD or INFREQUENT_ACCESS (cheaper, fewer features)."
    )
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")

    @field_validator("retention_in_days")
    @classmethod
    def _retention(cls, value: int | None) -> int | None:
        if value is not None and value not in RETENTION_DAYS:
            nearest = min(RETENTION_DAYS, key=lambda d: abs(d - value))
            raise ValueError(
                f"CloudWatch Logs keeps events for one of {', '.join(map(str, RETENTION_DAYS))} days, "
                f"not {value} (nearest: {nearest}); leave it unset to keep them forever"
            )
        return value


class LogGroupResource(AwsResource[LogGroupProperties]):
    """A log group; the id is its name."""

    type_name = "aws.cloudwatch_log_group"
    Properties = LogGroupProperties
    service = "logs"
    description = "A CloudWatch Logs log group with its retention period and KMS key."
    attributes = {"arn": "The log group ARN (without the trailing `:*`).", "name": "The log group name."}
    # retention, key and tags change nothing a log group reports besides themselves
    recomputed_on_update = frozenset()

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        name = desired.get("name")
        return {"name": name} if isinstance(name, str) else {}

    def create(self, address: str, props: LogGroupProperties) -> Observed:
        kwargs: dict[str, Any] = {}
        if props.kms_key_id:
            kwargs["kmsKeyId"] = props.kms_key_id
        if props.log_group_class != "STANDARD":
            kwargs["logGroupClass"] = props.log_group_class
        try:
            self.call(address, "create_log_group", logGroupName=props.name,
                      tags=self.tags_to_apply(address, props.tags), **kwargs)  # fmt: skip
        except ProviderError as exc:
            if "AlreadyExists" in exc.message:
                exc.hint = f"a log group named {props.name} exists: import it or choose another name"
            raise

        def settle() -> Observed:
            if props.retention_in_days is not None:
                self._retention(address, props.name, props.retention_in_days)
            group = self._group(address, props.name)  # for its ARN; the tags are those just given
            if group is None:
                raise ProviderError(f"log group {props.name} vanished after create", kind=ErrorKind.TRANSIENT,
                                    address=address)  # fmt: skip
            arn = self._arn(group)
            return Observed(props.name, props.model_dump(mode="json"), {"arn": arn, "name": props.name})

        return self.finish_create(address, props.name, settle)

    def _retention(self, address: str, name: str, days: int | None) -> None:
        if days is None:
            self.call(address, "delete_retention_policy", logGroupName=name)
        else:
            self.call(address, "put_retention_policy", logGroupName=name, retentionInDays=days)

    def update(self, address: str, id: str, old: LogGroupProperties, new: LogGroupProperties) -> Observed:
        if old.retention_in_days != new.retention_in_days:
            self._retention(address, id, new.retention_in_days)
        if old.kms_key_id != new.kms_key_id:
            if new.kms_key_id:
                self.call(address, "associate_kms_key", logGroupName=id, kmsKeyId=new.kms_key_id)
            else:
                self.call(address, "disassociate_kms_key", logGroupName=id)
        seen = self.read(address, id, new)
        if seen is None:
            raise ProviderError(f"log group {id} is gone", kind=ErrorKind.FATAL, address=address)
        if old.tags != new.tags:
            arn = seen.attributes["arn"]
            removed = [k for k in old.tags if k not in new.tags]
            if removed:
                self.call(address, "untag_resource", resourceArn=arn, tagKeys=removed)
            self.call(address, "tag_resource", resourceArn=arn, tags=self.tags_to_apply(address, new.tags))
            seen = Observed(seen.id, {**seen.properties, "tags": dict(sorted(new.tags.items()))}, seen.attributes)
        return seen

    @staticmethod
    def _arn(group: Mapping[str, Any]) -> str:
        return str(group.get("logGroupArn") or str(group["arn"]).removesuffix(":*"))

    def _from(
        self, address: str | None, group: Mapping[str, Any], props: LogGroupProperties | None
    ) -> Observed | None:
        arn = self._arn(group)
        got = self.call(address, "list_tags_for_resource", resourceArn=arn, missing=GONE)
        if got is None:
            return None
        out = {
            "name": group["logGroupName"],
            "retention_in_days": group.get("retentionInDays"),
            "kms_key_id": key_as_asked(props.kms_key_id if props else None, group.get("kmsKeyId")),
            # AWS always reports the class; an emulator that does not is taken at the plan's word
            "log_group_class": group.get("logGroupClass") or (props.log_group_class if props else "STANDARD"),
            "tags": self.observed_tags(got.get("tags") or {}, props.tags if props else None),
        }
        return Observed(str(group["logGroupName"]), out, {"arn": arn, "name": group["logGroupName"]})

    def _group(self, address: str | None, name: str) -> dict[str, Any] | None:
        # the prefix may match other groups (`/app` and `/app/web`): keep the exact name
        for group in self.paginate(address, "describe_log_groups", "logGroups", logGroupNamePrefix=name):
            if group["logGroupName"] == name:
                return dict(group)
        return None

    def _observe(self, address: str | None, name: str, props: LogGroupProperties | None) -> Observed | None:
        group = self._group(address, name)
        return None if group is None else self._from(address, group, props)

    def read(self, address: str, id: str, props: LogGroupProperties) -> Observed | None:
        return self._observe(address, id, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        return self.read_listed(
            requests,
            lambda: {g["logGroupName"]: g for g in self.paginate(None, "describe_log_groups", "logGroups")},
            lambda r, group: self._from(r.address, group, r.properties),  # type: ignore[arg-type]
        )

    def delete(self, address: str, id: str, props: LogGroupProperties) -> None:
        self.call(address, "delete_log_group", logGroupName=id, missing=GONE)

    def import_(self, address: str, id: str) -> Observed:
        name = id.removesuffix(":*").split(":log-group:", 1)[-1]
        seen = self._observe(address, name, None)
        if seen is None:
            raise ProviderError(f"no CloudWatch log group {name}", kind=ErrorKind.FATAL, address=address)
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        def listed() -> list[str]:
            kwargs: dict[str, Any] = {}
            if isinstance(query.filter.get("name"), str):
                kwargs["logGroupNamePrefix"] = query.filter["name"]
            return [str(g["logGroupName"]) for g in self.paginate(address, "describe_log_groups", "logGroups",
                                                                  **kwargs)]  # fmt: skip

        return self.lookup_listed(query, lambda i: self._observe(address, i, None), listed)

    def find(self, address: str, props: LogGroupProperties) -> Observed | None:
        seen = self._observe(address, props.name, props)
        if seen is None:
            return None
        got = self.call(address, "list_tags_for_resource", resourceArn=seen.attributes["arn"], missing=GONE)
        return seen if got is not None and self.owned_by(got.get("tags") or {}, address) else None

    def estimate_seconds(self, props: LogGroupProperties) -> float:
        return 0.3
