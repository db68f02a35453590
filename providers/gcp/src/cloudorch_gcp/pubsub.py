"""`gcp.pubsub_topic` and `gcp.pubsub_subscription`: Pub/Sub, typed, over the discovery plumbing.

Owns the properties of a topic and of a subscription, their JSON shape in Pub/Sub v1, and the
update mask an in-place change sends. Every object carries the `cloudorch-address` label, so
`find` tells ours from another's of the same name. Optional properties the user leaves unset are
left to the service (and not compared); the subscription's topic, filter and ordering are fixed
at creation (force-new), as Pub/Sub has them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from cloudorch.provider.contract import (
    ConfigError,
    ErrorKind,
    LookupQuery,
    Observed,
    ProviderError,
    ReadRequest,
    ResourceProperties,
    ResourceType,
    matches_filter,
    prop,
)

if TYPE_CHECKING:
    from cloudorch_gcp.discovery import Collection
    from cloudorch_gcp.provider import GcpProvider

API = "pubsub/v1"
_DURATION = r"^[0-9]+(\.[0-9]{1,9})?s$"
_ID = r"^[a-zA-Z][a-zA-Z0-9._~%+-]{2,254}$"


class PushConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    push_endpoint: str = prop(description="The URL messages are pushed to (https in production).")
    attributes: dict[str, str] = prop(default_factory=dict, description="Endpoint attributes, e.g. x-goog-version.")
    oidc_service_account_email: str | None = prop(
        None, description="Service account whose OIDC token authenticates each push; unset: none."
    )
    oidc_audience: str | None = prop(None, description="The token's audience; unset: the push endpoint.")


class DeadLetterPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dead_letter_topic: str = prop(description="The topic undeliverable messages go to: its id or full name.")
    max_delivery_attempts: int | None = prop(None, ge=5, le=100, description="Attempts before that (5-100; 5).")


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    minimum_backoff: str | None = prop(None, pattern=_DURATION, description="e.g. `10s` (0-600 s; 10 s).")
    maximum_backoff: str | None = prop(None, pattern=_DURATION, description="e.g. `600s` (0-600 s; 600 s).")


class TopicProperties(ResourceProperties):
    name: str = prop(description="The topic id (3-255 characters, starting with a letter).", force_new=True,
                     pattern=_ID)  # fmt: skip
    project: str | None = prop(None, force_new=True, description="Project; unset: providers.gcp.project.")
    labels: dict[str, str] = prop(default_factory=dict, description="Labels; providers.gcp.default_labels are added.")
    message_retention_duration: str | None = prop(
        None, pattern=_DURATION, description="How long published messages are kept, `600s` to `2678400s`; unset: not."
    )
    kms_key_name: str | None = prop(
        None,
        force_new=True,
        description="Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K); unset: Google's.",
    )
    allowed_persistence_regions: list[str] | None = prop(
        None, description="Regions where messages may be stored; unset: the service's policy."
    )


class SubscriptionProperties(ResourceProperties):
    name: str = prop(description="The subscription id.", force_new=True, pattern=_ID)
    project: str | None = prop(None, force_new=True, description="Project; unset: providers.gcp.project.")
    topic: str = prop(
        description="The topic: its id in the same project, or its full name `projects/P/topics/T` (a topic's "
        "`name` attribute).",
        force_new=True,
    )
    labels: dict[str, str] = prop(default_factory=dict, description="Labels; providers.gcp.default_labels are added.")
    ack_deadline_seconds: int | None = prop(
        None, ge=10, le=600, description="Seconds a subscriber has to acknowledge (10-600); unset: 10."
    )
    message_retention_duration: str | None = prop(
        None,
        pattern=_DURATION,
        description="How long unacknowledged messages are kept, `600s`-`604800s`; unset: 7 days.",
    )
    retain_acked_messages: bool | None = prop(None, description="Keep acknowledged messages too; unset: no.")
    push_config: PushConfig | None = prop(None, description="Push delivery; unset: a pull subscription.")
    dead_letter_policy: DeadLetterPolicy | None = prop(
        None, description="Where undeliverable messages go; unset: nowhere."
    )
    retry_policy: RetryPolicy | None = prop(None, description="Redelivery backoff; unset: immediate redelivery.")
    filter: str | None = prop(None, force_new=True, description="Only messages whose attributes match this filter.")
    enable_message_ordering: bool | None = prop(
        None, force_new=True, description="Deliver messages with the same ordering key in order; unset: no."
    )


M = TypeVar("M", bound=BaseModel)


def _block(cls: type[M], value: Any) -> M | None:
    """A nested block as its model: the engine rebuilds properties from state without validation
    (`model_construct`), which leaves nested blocks as plain dicts."""
    if value is None or isinstance(value, cls):
        return value
    return cls.model_validate(value)


def _json(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def _topic_path(project: str, topic: str) -> str:
    return topic if topic.startswith("projects/") else f"projects/{project}/topics/{topic}"


def _same_topic(project: str, asked: str, seen: str | None) -> str | None:
    """The user's spelling of a topic when `seen` (always a full name) is the same topic."""
    if seen is not None and _topic_path(project, asked) == seen:
        return asked
    return seen


class _PubSubType(ResourceType[Any]):
    """What a topic and a subscription share: naming, the address label, bulk refresh, import."""

    collection_name: ClassVar[str]
    segment: ClassVar[str]
    attributes = {
        "id": "Google's full resource name: //pubsub.googleapis.com/projects/P/SEGMENT/NAME.",
        "name": "The full name, projects/P/SEGMENT/NAME (what other resources reference).",
        "project": "The project.",
    }

    @property
    def gcp(self) -> GcpProvider:
        return self.provider  # type: ignore[return-value]

    @property
    def coll(self) -> Collection:
        return self.gcp.rest.collection(API, self.collection_name)

    def project_of(self, props: Any) -> str:
        project = props.project or self.gcp.default_project
        if not project:
            raise ConfigError(
                f"{self.type_name}: no project: set `project` or providers.gcp.project",
                hint="or run `gcloud config set project P` so Application Default Credentials name one",
            )
        return str(project)

    def path(self, props: Any) -> str:
        return f"projects/{self.project_of(props)}/{self.segment}/{props.name}"

    def body(self, address: str, props: Any) -> dict[str, Any]:
        raise NotImplementedError

    def properties_of(self, raw: dict[str, Any], props: Any | None, project: str) -> dict[str, Any]:
        raise NotImplementedError

    def observed(self, raw: dict[str, Any], props: Any | None) -> Observed:
        path = str(raw.get("name") or (self.path(props) if props is not None else ""))
        project = path.split("/")[1] if path.startswith("projects/") else ""
        ident = f"//pubsub.googleapis.com/{path}"
        properties = self.properties_of(raw, props, project)
        properties["name"] = path.rsplit("/", 1)[-1]
        properties["project"] = props.project if props is not None else project
        applied = props.labels if props is not None else {}
        properties["labels"] = self.gcp.user_labels(raw.get("labels"), applied)
        return Observed(id=ident, properties=properties, attributes={"id": ident, "name": path, "project": project})

    def ours(self, address: str, raw: Mapping[str, Any]) -> bool:
        from cloudorch_gcp.provider import ADDRESS_LABEL, label_value

        return (raw.get("labels") or {}).get(ADDRESS_LABEL) == label_value(address)

    def create(self, address: str, props: Any) -> Observed:
        from cloudorch_gcp.discovery import already_exists

        path = self.path(props)
        with self.gcp.errors(address, f"create {path}"):
            try:
                raw = self.coll.create(path, self.body(address, props))
            except Exception as exc:
                if not already_exists(exc):
                    raise
                # the name is taken: ours from a crashed apply (adopted), or another's (refused)
                existing = self.coll.get(path)
                if existing is not None and self.ours(address, existing):
                    return self.update(address, path, props, props)
                raise ProviderError(
                    f"{address}: {path} already exists and was not made for this address",
                    kind=ErrorKind.FATAL,
                    address=address,
                    hint=f"import it: cloudorch import {address} {path}",
                ) from exc
        return self.observed(raw, props)

    def read(self, address: str, id: str, props: Any) -> Observed | None:
        path = self.path(props)
        with self.gcp.errors(address, f"read {path}"):
            raw = self.coll.get(path)
        return None if raw is None else self.observed(raw, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        """One list call (per page of 1,000) per project holding two or more of them."""
        by_project: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            by_project.setdefault(self.project_of(r.properties), []).append(i)
        out: list[Observed | None] = [None] * len(requests)
        for project, indexes in by_project.items():
            if len(indexes) < 2:
                r = requests[indexes[0]]
                out[indexes[0]] = self.read(r.address, r.id, r.properties)
                continue
            with self.gcp.errors(requests[indexes[0]].address, f"list {self.segment} of project {project}"):
                listed = {raw.get("name"): raw for raw in self.coll.list(f"projects/{project}", pageSize=1000)}
            for i in indexes:
                raw = listed.get(self.path(requests[i].properties))
                out[i] = None if raw is None else self.observed(raw, requests[i].properties)
        return out

    def mask(self, old: Any, new: Any) -> list[str]:
        fields = self.field_names()
        changed = [fields[k] for k in fields if _json(getattr(old, k)) != _json(getattr(new, k))]
        return sorted({*changed, "labels"})  # labels always: the address label is ours to keep

    def field_names(self) -> dict[str, str]:
        raise NotImplementedError

    def update(self, address: str, id: str, old: Any, new: Any) -> Observed:
        path = self.path(new)
        body = self.body(address, new)
        mask = self.mask(old, new)
        with self.gcp.errors(address, f"update {path}"):
            raw = self.coll.patch(path, {k: v for k, v in body.items() if k in mask}, mask=mask)
        return self.observed(raw, new)

    def delete(self, address: str, id: str, props: Any) -> None:
        path = self.path(props)
        with self.gcp.errors(address, f"delete {path}"):
            self.coll.delete(path)

    def find(self, address: str, props: Any) -> Observed | None:
        path = self.path(props)
        with self.gcp.errors(address, f"find {path}"):
            raw = self.coll.get(path)
        return self.observed(raw, props) if raw is not None and self.ours(address, raw) else None

    def _path_of_id(self, id: str) -> str:
        path = id.removeprefix("//pubsub.googleapis.com/").strip("/")
        if not re.fullmatch(rf"projects/[^/]+/{self.segment}/[^/]+", path):
            raise ConfigError(
                f"not a {self.type_name} id: {id!r}",
                hint=f"write projects/P/{self.segment}/NAME or //pubsub.googleapis.com/projects/P/{self.segment}/NAME",
            )
        return path

    def import_(self, address: str, id: str) -> Observed:
        path = self._path_of_id(id)
        with self.gcp.errors(address, f"import {path}"):
            raw = self.coll.get(path)
        if raw is None:
            raise ProviderError(f"{address}: {path} does not exist", kind=ErrorKind.FATAL, address=address)
        return self.observed(raw, None)

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        """By id, or every one of the filter's `project` (default: the provider's) that matches."""
        if query.id is not None:
            path = self._path_of_id(query.id)
            with self.gcp.errors(address, f"look up {path}"):
                raw = self.coll.get(path)
            found = [] if raw is None else [self.observed(raw, None)]
        else:
            project = query.filter.get("project")
            project = project if isinstance(project, str) else self.gcp.default_project
            with self.gcp.errors(address, f"list {self.segment} of project {project}"):
                found = [self.observed(raw, None) for raw in self.coll.list(f"projects/{project}", pageSize=1000)]
        return [o for o in found if matches_filter(o, query.filter)]

    def estimate_seconds(self, props: Any) -> float:
        return 1.0


class PubSubTopic(_PubSubType):
    """A Pub/Sub topic."""

    type_name = "gcp.pubsub_topic"
    Properties = TopicProperties
    description = "A Pub/Sub topic: labels, message retention, persistence regions; kms_key_name is force-new."
    collection_name = "projects.topics"
    segment = "topics"
    recomputed_on_update = frozenset()

    def field_names(self) -> dict[str, str]:
        return {"labels": "labels", "message_retention_duration": "messageRetentionDuration",
                "allowed_persistence_regions": "messageStoragePolicy"}  # fmt: skip

    def body(self, address: str, props: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"labels": self.gcp.labels_for(address, props.labels)}
        if props.message_retention_duration is not None:
            body["messageRetentionDuration"] = props.message_retention_duration
        if props.kms_key_name is not None:
            body["kmsKeyName"] = props.kms_key_name
        if props.allowed_persistence_regions is not None:
            body["messageStoragePolicy"] = {"allowedPersistenceRegions": props.allowed_persistence_regions}
        return body

    def properties_of(self, raw: dict[str, Any], props: Any | None, project: str) -> dict[str, Any]:
        regions = (raw.get("messageStoragePolicy") or {}).get("allowedPersistenceRegions")
        out = {
            "message_retention_duration": raw.get("messageRetentionDuration"),
            "kms_key_name": raw.get("kmsKeyName"),
            "allowed_persistence_regions": list(regions) if regions is not None else None,
        }
        if props is not None:  # left to the service: not compared
            for key in out:
                if getattr(props, key) is None:
                    out[key] = None
        return out


class PubSubSubscription(_PubSubType):
    """A Pub/Sub subscription."""

    type_name = "gcp.pubsub_subscription"
    Properties = SubscriptionProperties
    description = "A Pub/Sub subscription (pull or push, dead letters, retries); topic, filter, ordering force-new."
    collection_name = "projects.subscriptions"
    segment = "subscriptions"
    recomputed_on_update = frozenset()

    def field_names(self) -> dict[str, str]:
        return {"labels": "labels", "ack_deadline_seconds": "ackDeadlineSeconds",
                "message_retention_duration": "messageRetentionDuration",
                "retain_acked_messages": "retainAckedMessages", "push_config": "pushConfig",
                "dead_letter_policy": "deadLetterPolicy", "retry_policy": "retryPolicy"}  # fmt: skip

    def body(self, address: str, props: Any) -> dict[str, Any]:
        project = self.project_of(props)
        body: dict[str, Any] = {
            "topic": _topic_path(project, props.topic),
            "labels": self.gcp.labels_for(address, props.labels),
        }
        simple = {"ack_deadline_seconds": "ackDeadlineSeconds",
                  "message_retention_duration": "messageRetentionDuration",
                  "retain_acked_messages": "retainAckedMessages", "filter": "filter",
                  "enable_message_ordering": "enableMessageOrdering"}  # fmt: skip
        for key, field in simple.items():
            if getattr(props, key) is not None:
                body[field] = getattr(props, key)
        push = _block(PushConfig, props.push_config)
        # an empty pushConfig turns a push subscription back into a pull one
        body["pushConfig"] = {} if push is None else _push_json(push)
        dead = _block(DeadLetterPolicy, props.dead_letter_policy)
        if dead is not None:
            policy: dict[str, Any] = {"deadLetterTopic": _topic_path(project, dead.dead_letter_topic)}
            if dead.max_delivery_attempts is not None:
                policy["maxDeliveryAttempts"] = dead.max_delivery_attempts
            body["deadLetterPolicy"] = policy
        retry = _block(RetryPolicy, props.retry_policy)
        if retry is not None:
            backoff = (("minimumBackoff", retry.minimum_backoff), ("maximumBackoff", retry.maximum_backoff))
            body["retryPolicy"] = {k: v for k, v in backoff if v is not None}
        return body

    def properties_of(self, raw: dict[str, Any], props: Any | None, project: str) -> dict[str, Any]:
        push = raw.get("pushConfig") or {}
        oidc = push.get("oidcToken") or {}
        dead = raw.get("deadLetterPolicy") or {}
        retry = raw.get("retryPolicy") or {}
        out: dict[str, Any] = {
            "topic": raw.get("topic"),
            "ack_deadline_seconds": raw.get("ackDeadlineSeconds"),
            "message_retention_duration": raw.get("messageRetentionDuration"),
            "retain_acked_messages": raw.get("retainAckedMessages"),
            "push_config": {
                "push_endpoint": push["pushEndpoint"], "attributes": dict(push.get("attributes") or {}),
                "oidc_service_account_email": oidc.get("serviceAccountEmail"), "oidc_audience": oidc.get("audience"),
            } if push.get("pushEndpoint") else None,
            "dead_letter_policy": {
                "dead_letter_topic": dead["deadLetterTopic"], "max_delivery_attempts": dead.get("maxDeliveryAttempts"),
            } if dead.get("deadLetterTopic") else None,
            "retry_policy": {"minimum_backoff": retry.get("minimumBackoff"),
                             "maximum_backoff": retry.get("maximumBackoff")} if retry else None,
            "filter": raw.get("filter") or None,
            "enable_message_ordering": raw.get("enableMessageOrdering"),
        }  # fmt: skip
        if props is None:
            return out
        out["topic"] = _same_topic(project, props.topic, out["topic"])
        asked = _block(DeadLetterPolicy, props.dead_letter_policy)
        if asked is not None and out["dead_letter_policy"] is not None:
            seen = out["dead_letter_policy"]
            seen["dead_letter_topic"] = _same_topic(project, asked.dead_letter_topic, seen["dead_letter_topic"])
            if asked.max_delivery_attempts is None and seen["max_delivery_attempts"] in (None, 5):
                seen["max_delivery_attempts"] = None
        seen_push = out["push_config"]
        asked_push = _block(PushConfig, props.push_config)
        if asked_push is not None and seen_push is not None and not asked_push.attributes:
            # the service adds its version attribute
            seen_push["attributes"] = {k: v for k, v in seen_push["attributes"].items() if k != "x-goog-version"}
        for key in ("ack_deadline_seconds", "message_retention_duration", "retain_acked_messages", "filter",
                    "enable_message_ordering", "retry_policy"):  # fmt: skip
            if getattr(props, key) is None:
                out[key] = None  # left to the service: not compared
        return out


def _push_json(push: PushConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"pushEndpoint": push.push_endpoint}
    if push.attributes:
        out["attributes"] = dict(push.attributes)
    if push.oidc_service_account_email is not None:
        token = {"serviceAccountEmail": push.oidc_service_account_email}
        if push.oidc_audience is not None:
            token["audience"] = push.oidc_audience
        out["oidcToken"] = token
    return out
