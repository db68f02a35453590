"""SQS: `aws.sqs_queue`, with FIFO queues and a redrive policy to a dead-letter queue.

Queues are refreshed in bulk: one `ListQueues` finds which exist, then one `ListQueueTags` per
queue, and `GetQueueAttributes` only for queues whose attributes the user manages. The ARN is
derived from the queue URL, so references to it cost no call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import model_validator

from cloudorch.provider.contract import ErrorKind, Observed, ProviderError, ReadRequest, ResourceProperties, prop
from cloudorch_aws.resource import AwsResource, Shape

GONE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue")


class RedrivePolicy(Shape):
    dead_letter_target_arn: str = prop(description="ARN of the dead-letter queue, e.g. `${resources.dlq.arn}`.")
    max_receive_count: int = prop(ge=1, le=1000, description="Receives before a message moves to the DLQ.")


#: property name -> (SQS attribute name, type)
ATTRIBUTES: dict[str, tuple[str, type]] = {
    "visibility_timeout": ("VisibilityTimeout", int),
    "message_retention_seconds": ("MessageRetentionPeriod", int),
    "delay_seconds": ("DelaySeconds", int),
    "max_message_size": ("MaximumMessageSize", int),
    "receive_wait_time_seconds": ("ReceiveMessageWaitTimeSeconds", int),
    "content_based_deduplication": ("ContentBasedDeduplication", bool),
}


class QueueProperties(ResourceProperties):
    """An SQS queue. Attributes left unset (None) keep AWS's values and are not compared."""

    name: str = prop(
        force_new=True,
        pattern=r"^[A-Za-z0-9_-]{1,75}(\.fifo)?$",
        description="Queue name; a FIFO queue's name ends in `.fifo` (added when missing).",
    )
    fifo: bool = prop(False, force_new=True, description="First-in-first-out, exactly-once queue.")
    visibility_timeout: int | None = prop(None, ge=0, le=43200, description="Seconds a received message is hidden.")
    message_retention_seconds: int | None = prop(None, ge=60, le=1209600, description="How long messages are kept.")
    delay_seconds: int | None = prop(None, ge=0, le=900, description="Delay before a new message is visible.")
    max_message_size: int | None = prop(
        None, ge=1024, le=1048576, description="Largest message in bytes (AWS allows 1 MiB)."
    )
    receive_wait_time_seconds: int | None = prop(None, ge=0, le=20, description="Long-polling wait.")
    content_based_deduplication: bool | None = prop(None, description="FIFO only: dedupe by body hash.")
    redrive_policy: RedrivePolicy | None = prop(None, description="Send failed messages to a dead-letter queue.")
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")

    @model_validator(mode="after")
    def _fifo_suffix(self) -> QueueProperties:
        if self.fifo and not self.name.endswith(".fifo"):
            self.name += ".fifo"
        if self.name.endswith(".fifo"):
            self.fifo = True
        return self

    def manages_attributes(self) -> bool:
        return self.redrive_policy is not None or any(getattr(self, f) is not None for f in ATTRIBUTES)


def _redrive(props: QueueProperties) -> RedrivePolicy | None:
    """The redrive policy as a model: properties rebuilt from state without validation (the old
    side of an update) carry it as the plain mapping state stored."""
    policy: RedrivePolicy | dict[str, Any] | None = props.redrive_policy
    if policy is None or isinstance(policy, RedrivePolicy):
        return policy
    return RedrivePolicy.model_validate(policy)


def _aws_attributes(props: QueueProperties) -> dict[str, str]:
    out: dict[str, str] = {}
    for field, (name, kind) in ATTRIBUTES.items():
        value = getattr(props, field)
        if value is not None:
            out[name] = ("true" if value else "false") if kind is bool else str(value)
    redrive = _redrive(props)
    if redrive is not None:
        out["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": redrive.dead_letter_target_arn,
                "maxReceiveCount": redrive.max_receive_count,
            }
        )
    return out


class QueueResource(AwsResource[QueueProperties]):
    """An SQS queue; the id is its URL."""

    type_name = "aws.sqs_queue"
    Properties = QueueProperties
    service = "sqs"
    description = "An SQS queue (standard or FIFO) with an optional dead-letter queue."
    attributes = {"arn": "The queue ARN.", "url": "The queue URL.", "name": "The queue name."}
    recomputed_on_update = frozenset()

    def _attributes(self, url: str) -> dict[str, Any]:
        # https://sqs.REGION.amazonaws.com/ACCOUNT/NAME (emulators keep ACCOUNT/NAME at the end)
        parts = url.rstrip("/").split("/")
        account, name = parts[-2], parts[-1]
        return {"arn": f"arn:aws:sqs:{self.provider.region}:{account}:{name}", "url": url, "name": name}

    def create(self, address: str, props: QueueProperties) -> Observed:
        attrs = _aws_attributes(props)
        if props.fifo:
            attrs["FifoQueue"] = "true"
        got = self.call(
            address,
            "create_queue",
            QueueName=props.name,
            Attributes=attrs,
            tags=self.tags_to_apply(address, props.tags),
        )
        url = got["QueueUrl"]
        return self.finish_create(
            address, url, lambda: Observed(url, props.model_dump(mode="json"), self._attributes(url))
        )

    def update(self, address: str, id: str, old: QueueProperties, new: QueueProperties) -> Observed:
        attrs = _aws_attributes(new)
        if attrs and attrs != _aws_attributes(old):
            self.call(address, "set_queue_attributes", QueueUrl=id, Attributes=attrs)
        if old.redrive_policy is not None and new.redrive_policy is None:
            self.call(address, "set_queue_attributes", QueueUrl=id, Attributes={"RedrivePolicy": ""})
        if old.tags != new.tags:
            removed = [k for k in old.tags if k not in new.tags]
            if removed:
                self.call(address, "untag_queue", QueueUrl=id, TagKeys=removed)
            self.call(address, "tag_queue", QueueUrl=id, Tags=self.tags_to_apply(address, new.tags))
        return Observed(id, new.model_dump(mode="json"), self._attributes(id))

    def _observe(self, address: str | None, url: str, props: QueueProperties | None) -> Observed | None:
        tags = self.call(address, "list_queue_tags", QueueUrl=url, missing=GONE)
        if tags is None:
            return None
        name = url.rstrip("/").split("/")[-1]
        out: dict[str, Any] = {
            "name": name,
            "fifo": name.endswith(".fifo"),
            "tags": self.observed_tags(tags.get("Tags") or {}, props.tags if props else None),
            "redrive_policy": None,
            **{f: None for f in ATTRIBUTES},
        }
        if props is None or props.manages_attributes():
            got = self.call(address, "get_queue_attributes", QueueUrl=url, AttributeNames=["All"], missing=GONE)
            if got is None:
                return None
            raw = got.get("Attributes", {})
            for field, (aws_name, kind) in ATTRIBUTES.items():
                if props is not None and getattr(props, field) is None:
                    continue
                if aws_name in raw:
                    out[field] = raw[aws_name] == "true" if kind is bool else int(raw[aws_name])
            if (props is None or props.redrive_policy is not None) and raw.get("RedrivePolicy"):
                policy = json.loads(raw["RedrivePolicy"])
                out["redrive_policy"] = {
                    "dead_letter_target_arn": policy["deadLetterTargetArn"],
                    "max_receive_count": int(policy["maxReceiveCount"]),
                }
        return Observed(url, out, self._attributes(url))

    def read(self, address: str, id: str, props: QueueProperties) -> Observed | None:
        return self._observe(address, id, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        if len(requests) < 2:
            return [self.read(r.address, r.id, r.properties) for r in requests]  # type: ignore[arg-type]
        existing = set(self.paginate(None, "list_queues", "QueueUrls", PaginationConfig={"PageSize": 1000}))

        def one(r: ReadRequest) -> Observed | None:
            if r.id not in existing:
                return None
            return self._observe(r.address, r.id, r.properties)  # type: ignore[arg-type]

        return self.parallel(one, list(requests))

    def delete(self, address: str, id: str, props: QueueProperties) -> None:
        self.call(address, "delete_queue", QueueUrl=id, missing=GONE)

    def _url(self, address: str, name: str) -> str | None:
        got = self.call(address, "get_queue_url", QueueName=name, missing=GONE)
        return None if got is None else str(got["QueueUrl"])

    def import_(self, address: str, id: str) -> Observed:
        url = id if "/" in id else self._url(address, id)
        seen = self._observe(address, url, None) if url else None
        if seen is None:
            raise ProviderError(f"no SQS queue {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def find(self, address: str, props: QueueProperties) -> Observed | None:
        url = self._url(address, props.name)
        return None if url is None else self._observe(address, url, props)

    def estimate_seconds(self, props: QueueProperties) -> float:
        return 0.5
