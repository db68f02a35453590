"""What the conformance kit leaves out for Pub/Sub and the discovery plumbing, through the engine
and the real googleapiclient against the Google REST test server: replacing by a force-new
property that keeps the name, 429/503 from the server retried with Retry-After, operations that
stay RUNNING or fail, error classification, and connections that are never shared by threads."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from cloudorch_gcp import GcpProvider
from cloudorch_gcp.testserver import GoogleServer
from google_testkit import sdk
from googleapiclient.errors import HttpError

from cloudorch.errors import ErrorKind, ProviderError
from cloudorch.provider.contract import LookupQuery
from cloudorch.run.apply import apply
from cloudorch.run.options import RunOptions
from cloudorch.run.plan import plan


def _plan_file(tmp_path: Path, server: GoogleServer, resources: dict[str, Any]) -> RunOptions:
    path = tmp_path / "plan.yaml"
    gcp = {"project": "p", "api_endpoint": server.url, "operation_poll_interval": 0}
    doc = {"version": 1, "name": "pubsub", "resources": resources, "providers": {"gcp": gcp}}
    path.write_text(json.dumps(doc))
    return RunOptions(plan_file=path, command="test")


def _actions(opts: RunOptions) -> dict[str, str]:
    return {c.address: c.action.value for c in plan(opts).changeset.changes if c.is_change}


def test_force_new_that_keeps_the_name_replaces(tmp_path: Path, google_api: GoogleServer) -> None:
    topics = {"orders": {"type": "gcp.pubsub_topic", "properties": {"name": "orders"}},
              "payments": {"type": "gcp.pubsub_topic", "properties": {"name": "payments"}}}  # fmt: skip
    sub = {"type": "gcp.pubsub_subscription", "properties": {"name": "worker", "topic": "${resources.orders.name}"}}
    opts = _plan_file(tmp_path, google_api, {**topics, "worker": sub})
    assert apply(opts).ok  # type: ignore[union-attr]
    assert _actions(opts) == {}
    moved = {**sub, "properties": {**sub["properties"], "topic": "${resources.payments.name}"}}
    opts = _plan_file(tmp_path, google_api, {**topics, "worker": moved})
    assert _actions(opts) == {"worker": "replace"}
    assert apply(opts).ok  # type: ignore[union-attr]
    subscriptions = sdk(google_api, "pubsub", "v1").projects().subscriptions()
    seen = subscriptions.get(subscription="projects/p/subscriptions/worker").execute()
    assert seen["topic"] == "projects/p/topics/payments"
    assert _actions(opts) == {}

    filtered = {**moved, "properties": {**moved["properties"], "filter": 'attributes.kind = "x"'}}
    assert _actions(_plan_file(tmp_path, google_api, {**topics, "worker": filtered})) == {"worker": "replace"}
    keyed = {"type": "gcp.pubsub_topic", "properties": {"name": "orders", "kms_key_name": "projects/p/k"}}
    rekeyed = _plan_file(tmp_path, google_api, {**topics, "orders": keyed, "worker": moved})
    assert _actions(rekeyed)["orders"] == "replace"


def test_push_config_switches_back_to_pull(gcp_rest: GcpProvider) -> None:
    topic = gcp_rest.resource_type("gcp.pubsub_topic")
    topic.create("t", topic.Properties.model_validate({"name": "events"}))
    rt = gcp_rest.resource_type("gcp.pubsub_subscription")
    push = rt.Properties.model_validate({"name": "sub", "topic": "events",
                                         "push_config": {"push_endpoint": "https://example.com/push"}})  # fmt: skip
    seen = rt.create("sub", push)
    assert seen.properties["push_config"]["push_endpoint"] == "https://example.com/push"
    assert seen.properties["ack_deadline_seconds"] is None  # left to the service: not compared
    pull = rt.Properties.model_validate({"name": "sub", "topic": "events"})
    updated = rt.update("sub", seen.id, push, pull)
    assert updated.properties["push_config"] is None
    imported = rt.import_("sub", seen.id)
    assert imported.properties["ack_deadline_seconds"] == 10  # the service's default, reported on import
    assert imported.properties["topic"] == "projects/test-project/topics/events"
    assert imported.properties["labels"] == {}  # providers.gcp.default_labels are the provider's, not the user's


@pytest.mark.parametrize("code", [429, 503])
def test_server_throttling_is_retried(code: int, tmp_path: Path, google_api: GoogleServer) -> None:
    opts = _plan_file(tmp_path, google_api, {"t": {"type": "gcp.pubsub_topic", "properties": {"name": "busy"}}})
    google_api.fail(code, times=2, retry_after="0", http_method="PUT")
    result = apply(opts)
    assert result is not None and result.ok
    assert google_api.calls()["fault"] == 2 and google_api.calls()["pubsub.projects.topics.create"] == 1


def test_operations_are_awaited_and_a_failed_one_fails_the_apply(tmp_path: Path, google_api: GoogleServer) -> None:
    service = {"type": "gcp.resource", "properties": {
        "api": "run/v2", "collection": "projects.locations.services", "parent": "projects/p/locations/europe-west1",
        "name": "web", "body": {"template": {"containers": [{"image": "nginx"}]}}}}  # fmt: skip
    google_api.configure(running_polls=3)
    opts = _plan_file(tmp_path, google_api, {"web": service})
    assert apply(opts).ok  # type: ignore[union-attr]
    assert google_api.calls()["run.projects.locations.operations.get"] == 3
    assert _actions(opts) == {}

    google_api.fail_operation(400, "image nginx:nope not found", path="services")
    broken = {**service, "properties": {**service["properties"], "name": "broken"}}
    result = apply(_plan_file(tmp_path, google_api, {"web": service, "broken": broken}))
    assert result is not None and not result.ok
    assert "broken" in result.failed and "image nginx:nope not found" in result.failed["broken"]
    with google_api.store.lock:
        assert google_api.store.get("run", "projects/p/locations/europe-west1/services/broken") is None


def test_http_errors_are_classified(gcp_rest: GcpProvider, google_api: GoogleServer) -> None:
    topics = gcp_rest.rest.collection("pubsub/v1", "projects.topics")
    topics.create("projects/p/topics/t", {})

    def error(fn: Any) -> ProviderError:
        with pytest.raises(HttpError) as info:
            fn()
        return gcp_rest.classify(info.value, "dev.t")

    taken = error(lambda: topics.create("projects/p/topics/t", {}))
    assert taken.kind is ErrorKind.FATAL and "already exists" in taken.message and "import" in (taken.hint or "")
    google_api.fail(429, retry_after="12")
    throttled = error(lambda: topics.get("projects/p/topics/t"))
    assert (throttled.kind, throttled.retry_after) == (ErrorKind.THROTTLED, 12.0)
    google_api.fail(503)
    assert error(lambda: topics.get("projects/p/topics/t")).kind is ErrorKind.TRANSIENT
    stale = error(lambda: gcp_rest.rest.collection("run/v2", "projects.locations.services").call(
        "patch", "projects/p/locations/l/services/none", {"etag": "x"}))  # fmt: skip
    assert stale.kind is ErrorKind.FATAL and "not found" in stale.message
    services = gcp_rest.rest.collection("run/v2", "projects.locations.services")
    services.create("projects/p/locations/l/services/s", {})
    busy = error(lambda: services.call("patch", "projects/p/locations/l/services/s", {"etag": "stale"}))
    assert busy.kind is ErrorKind.CONFLICT


def test_threads_never_share_a_connection(gcp_rest: GcpProvider) -> None:
    """httplib2 connections are not thread-safe: each thread sends on its own."""
    topics = gcp_rest.rest.collection("pubsub/v1", "projects.topics")
    topics.create("projects/p/topics/t", {})
    seen: dict[int, int] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        try:
            for _ in range(20):
                assert topics.get("projects/p/topics/t") is not None
            seen[threading.get_ident()] = id(gcp_rest.rest.http())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(seen.values())) == 8


def test_another_objects_name_is_refused_not_adopted(gcp_rest: GcpProvider, google_api: GoogleServer) -> None:
    topics = sdk(google_api, "pubsub", "v1").projects().topics()
    topics.create(name="projects/test-project/topics/theirs", body={"labels": {"owner": "other"}}).execute()
    generic = {"api": "pubsub/v1", "collection": "projects.topics", "name": "theirs"}
    for type_name, props in (("gcp.pubsub_topic", {"name": "theirs"}), ("gcp.resource", generic)):
        rt = gcp_rest.resource_type(type_name)
        model = rt.Properties.model_validate(props)
        assert rt.find("dev.mine", model) is None
        with pytest.raises(ProviderError) as taken:
            rt.create("dev.mine", model)
        assert taken.value.kind is ErrorKind.FATAL and "cloudorch import dev.mine" in (taken.value.hint or "")
    got = topics.get(topic="projects/test-project/topics/theirs").execute()
    assert got["labels"] == {"owner": "other"}  # untouched


def test_lookup_by_id_and_by_filter(gcp_rest: GcpProvider) -> None:
    topic = gcp_rest.resource_type("gcp.pubsub_topic")
    for name, team in (("a-topic", "web"), ("b-topic", "data")):
        topic.create(f"dev.{name}", topic.Properties.model_validate({"name": name, "labels": {"team": team}}))
    found = topic.lookup("data.t", LookupQuery(filter={"labels": {"team": "data"}}))
    assert [o.attributes["name"] for o in found] == ["projects/test-project/topics/b-topic"]
    by_id = topic.lookup("data.t", LookupQuery(id="projects/test-project/topics/a-topic"))
    assert [o.properties["labels"] for o in by_id] == [{"team": "web"}]
    assert topic.lookup("data.t", LookupQuery(id="projects/test-project/topics/none")) == []

    generic = gcp_rest.resource_type("gcp.resource")
    listed = generic.lookup("data.g", LookupQuery(filter={"api": "pubsub/v1", "collection": "projects.topics",
                                                          "labels": {"team": "web"}}))  # fmt: skip
    assert [o.id for o in listed] == ["//pubsub.googleapis.com/projects/test-project/topics/a-topic"]
    again = generic.lookup("data.g", LookupQuery(id=listed[0].id))
    assert again[0].properties["name"] == "a-topic" and again[0].properties["api"] == "pubsub/v1"
