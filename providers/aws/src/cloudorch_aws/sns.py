"""SNS: `aws.sns_topic` and `aws.sns_subscription`.

Topics are tagged and found by name; subscriptions are not taggable, so `find` looks one up by
(topic, protocol, endpoint), which is what makes a subscription unique.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import model_validator

from cloudorch.provider.contract import ErrorKind, Observed, ProviderError, ResourceProperties, prop
from cloudorch_aws.resource import AwsResource, tag_dict, tag_list

GONE = ("NotFound", "NotFoundException", "ResourceNotFoundException")


class TopicProperties(ResourceProperties):
    """An SNS topic."""

    name: str = prop(force_new=True, pattern=r"^[A-Za-z0-9_-]{1,256}(\.fifo)?$", description="Topic name.")
    fifo: bool = prop(False, force_new=True, description="FIFO topic (name ends in .fifo, added when missing).")
    display_name: str = prop("", description="Shown as the sender of SMS and email messages.")
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")

    @model_validator(mode="after")
    def _fifo_suffix(self) -> TopicProperties:
        if self.fifo and not self.name.endswith(".fifo"):
            self.name += ".fifo"
        if self.name.endswith(".fifo"):
            self.fifo = True
        return self


class TopicResource(AwsResource[TopicProperties]):
    """An SNS topic; the id is its ARN."""

    type_name = "aws.sns_topic"
    Properties = TopicProperties
    service = "sns"
    description = "An SNS topic."
    attributes = {"arn": "The topic ARN.", "name": "The topic name."}
    recomputed_on_update = frozenset()

    def create(self, address: str, props: TopicProperties) -> Observed:
        attrs = {"DisplayName": props.display_name}
        if props.fifo:
            attrs["FifoTopic"] = "true"
        # CreateTopic is idempotent by name: a crashed create is simply found again
        got = self.call(
            address,
            "create_topic",
            Name=props.name,
            Attributes=attrs,
            Tags=tag_list(self.tags_to_apply(address, props.tags)),
        )
        arn = got["TopicArn"]
        return Observed(arn, props.model_dump(mode="json"), {"arn": arn, "name": props.name})

    def update(self, address: str, id: str, old: TopicProperties, new: TopicProperties) -> Observed:
        if old.display_name != new.display_name:
            self.call(
                address,
                "set_topic_attributes",
                TopicArn=id,
                AttributeName="DisplayName",
                AttributeValue=new.display_name,
            )
        if old.tags != new.tags:
            removed = [k for k in old.tags if k not in new.tags]
            if removed:
                self.call(address, "untag_resource", ResourceArn=id, TagKeys=removed)
            self.call(address, "tag_resource", ResourceArn=id, Tags=tag_list(self.tags_to_apply(address, new.tags)))
        return Observed(id, new.model_dump(mode="json"), {"arn": id, "name": new.name})

    def _observe(self, address: str | None, arn: str, props: TopicProperties | None) -> Observed | None:
        got = self.call(address, "get_topic_attributes", TopicArn=arn, missing=GONE)
        if got is None:
            return None
        attrs = got.get("Attributes", {})
        tags = tag_dict(self.call(address, "list_tags_for_resource", ResourceArn=arn).get("Tags"))
        name = arn.rsplit(":", 1)[-1]
        out = {
            "name": name,
            "fifo": attrs.get("FifoTopic") == "true" or name.endswith(".fifo"),
            "display_name": attrs.get("DisplayName", ""),
            "tags": self.observed_tags(tags, props.tags if props else None),
        }
        return Observed(arn, out, {"arn": arn, "name": name})

    def read(self, address: str, id: str, props: TopicProperties) -> Observed | None:
        return self._observe(address, id, props)

    def delete(self, address: str, id: str, props: TopicProperties) -> None:
        self.call(address, "delete_topic", TopicArn=id, missing=GONE)

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no SNS topic {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def find(self, address: str, props: TopicProperties) -> Observed | None:
        arn = f"arn:aws:sns:{self.provider.region}:{self.provider.account_id}:{props.name}"
        return self._observe(address, arn, props)

    def estimate_seconds(self, props: TopicProperties) -> float:
        return 0.5


class SubscriptionProperties(ResourceProperties):
    """A subscription of an endpoint (a queue, a Lambda, a URL, an address) to a topic."""

    topic_arn: str = prop(force_new=True, description="Topic ARN, usually `${resources.TOPIC.arn}`.")
    protocol: str = prop(force_new=True, description="sqs, lambda, https, http, email, sms, application, firehose.")
    endpoint: str = prop(force_new=True, description="Where messages go: a queue ARN, function ARN, URL, ...")
    raw_message_delivery: bool = prop(False, description="Deliver the message body without the SNS envelope.")
    filter_policy: dict[str, Any] | None = prop(None, description="Only messages matching this filter policy.")


class SubscriptionResource(AwsResource[SubscriptionProperties]):
    """An SNS subscription; the id is its ARN."""

    type_name = "aws.sns_subscription"
    Properties = SubscriptionProperties
    service = "sns"
    taggable = False
    description = "An SNS subscription of a queue, function or URL to a topic."
    attributes = {"arn": "The subscription ARN."}
    recomputed_on_update = frozenset()

    def create(self, address: str, props: SubscriptionProperties) -> Observed:
        attrs: dict[str, str] = {"RawMessageDelivery": "true" if props.raw_message_delivery else "false"}
        if props.filter_policy is not None:
            attrs["FilterPolicy"] = json.dumps(props.filter_policy)
        got = self.call(
            address,
            "subscribe",
            TopicArn=props.topic_arn,
            Protocol=props.protocol,
            Endpoint=props.endpoint,
            Attributes=attrs,
            ReturnSubscriptionArn=True,
        )
        arn = got["SubscriptionArn"]
        return Observed(arn, props.model_dump(mode="json"), {"arn": arn})

    def update(self, address: str, id: str, old: SubscriptionProperties, new: SubscriptionProperties) -> Observed:
        if old.raw_message_delivery != new.raw_message_delivery:
            self.call(
                address,
                "set_subscription_attributes",
                SubscriptionArn=id,
                AttributeName="RawMessageDelivery",
                AttributeValue="true" if new.raw_message_delivery else "false",
            )
        if old.filter_policy != new.filter_policy:
            self.call(
                address,
                "set_subscription_attributes",
                SubscriptionArn=id,
                AttributeName="FilterPolicy",
                AttributeValue=json.dumps(new.filter_policy) if new.filter_policy is not None else "",
            )
        return Observed(id, new.model_dump(mode="json"), {"arn": id})

    def _observe(self, address: str | None, arn: str, props: SubscriptionProperties | None) -> Observed | None:
        got = self.call(address, "get_subscription_attributes", SubscriptionArn=arn, missing=GONE)
        if got is None:
            return None
        attrs = got.get("Attributes", {})
        policy = attrs.get("FilterPolicy")
        out = {
            "topic_arn": attrs.get("TopicArn"),
            "protocol": attrs.get("Protocol"),
            "endpoint": attrs.get("Endpoint"),
            "raw_message_delivery": attrs.get("RawMessageDelivery") == "true",
            "filter_policy": json.loads(policy) if policy else None,
        }
        return Observed(arn, out, {"arn": arn})

    def read(self, address: str, id: str, props: SubscriptionProperties) -> Observed | None:
        return self._observe(address, id, props)

    def delete(self, address: str, id: str, props: SubscriptionProperties) -> None:
        self.call(address, "unsubscribe", SubscriptionArn=id, missing=GONE)

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no SNS subscription {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def find(self, address: str, props: SubscriptionProperties) -> Observed | None:
        subs = self.call(address, "list_subscriptions_by_topic", TopicArn=props.topic_arn, missing=GONE)
        for s in (subs or {}).get("Subscriptions", []):
            if (
                s["Protocol"] == props.protocol
                and s["Endpoint"] == props.endpoint
                and s["SubscriptionArn"].startswith("arn:")
            ):
                return self._observe(address, s["SubscriptionArn"], props)
        return None

    def estimate_seconds(self, props: SubscriptionProperties) -> float:
        return 0.5
