"""Pub/Sub v1 on the test server: what the service does beyond the generic store.

A subscription needs its topic (404 otherwise) and gets the service's defaults (ack deadline 10 s,
retention 7 days, expiration 31 days, state ACTIVE); a deleted topic leaves its subscriptions
pointing at `_deleted-topic_`; `topics.subscriptions.list` answers names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloudorch_gcp.testserver.apis import ApiQuirks, quirks

if TYPE_CHECKING:
    from cloudorch_gcp.testserver.apis import Generic
    from cloudorch_gcp.testserver.server import Answer, Call

pubsub = quirks("pubsub", ApiQuirks(style="resource_name"))


@pubsub.handler("pubsub.projects.subscriptions.create")
def create_subscription(call: Call, generic: Generic) -> Answer:
    from cloudorch_gcp.testserver.server import ApiError

    topic = str(call.body.get("topic") or "")
    if not topic:
        raise ApiError(400, "Invalid resource name given (name=). Refer to https://cloud.google.com/pubsub/docs/"
                       "pubsub-basics#resource_names for more information.")  # fmt: skip
    with call.store.lock:
        if call.store.get("pubsub", topic) is None:
            raise ApiError(404, f"Resource not found (resource={topic.rsplit('/', 1)[-1]}).")
        return generic(call)


@pubsub.on_new
def subscription_defaults(call: Call, resource: dict[str, Any]) -> None:
    if call.method.resource != "projects.subscriptions":
        return
    resource.setdefault("ackDeadlineSeconds", 10)
    resource.setdefault("messageRetentionDuration", "604800s")
    resource.setdefault("expirationPolicy", {"ttl": "2678400s"})
    resource["state"] = "ACTIVE"


@pubsub.handler("pubsub.projects.topics.delete")
def delete_topic(call: Call, generic: Generic) -> Answer:
    with call.store.lock:
        answer = generic(call)
        project = "/".join(call.relative.split("/")[:2])
        for _, sub in call.store.children("pubsub", f"{project}/subscriptions"):
            if sub.get("topic") == call.relative:
                sub["topic"] = "_deleted-topic_"
        return answer


@pubsub.handler("pubsub.projects.topics.subscriptions.list")
def topic_subscriptions(call: Call, generic: Generic) -> Answer:
    from cloudorch_gcp.testserver.server import Answer, ApiError

    topic = call.relative.removesuffix("/subscriptions")
    with call.store.lock:
        if call.store.get("pubsub", topic) is None:
            raise ApiError(404, f"Resource not found (resource={topic.rsplit('/', 1)[-1]}).")
        project = "/".join(topic.split("/")[:2])
        names = [p for p, s in call.store.children("pubsub", f"{project}/subscriptions") if s.get("topic") == topic]
    return Answer(200, {"subscriptions": names} if names else {})
