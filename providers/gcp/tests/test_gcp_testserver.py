"""The Google REST test server (`cloudorch_gcp.testserver`) through the real googleapiclient:
the JSON shapes of Google's API descriptions, errors, paging, operations of both styles, and the
fault and operation knobs the other tests rely on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cloudorch_gcp import GcpProvider
from cloudorch_gcp.discovery import Operation
from cloudorch_gcp.testserver import GoogleServer
from googleapiclient.errors import HttpError


def _error(exc: pytest.ExceptionInfo[HttpError]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(exc.value.content)["error"]
    return doc


def test_pubsub_collection_shapes(gcp_rest: GcpProvider) -> None:
    topics = gcp_rest.rest.collection("pubsub/v1", "projects.topics")
    svc = topics.api.service
    for i in range(3):
        request = svc.projects().topics().create(name=f"projects/p/topics/t{i}", body={"labels": {"i": str(i)}})
        gcp_rest.rest.execute(request)
    got = gcp_rest.rest.execute(svc.projects().topics().get(topic="projects/p/topics/t1"))
    assert got == {"name": "projects/p/topics/t1", "labels": {"i": "1"}}

    page = gcp_rest.rest.execute(svc.projects().topics().list(project="projects/p", pageSize=2))
    assert [t["name"] for t in page["topics"]] == ["projects/p/topics/t0", "projects/p/topics/t1"]
    rest = gcp_rest.rest.execute(svc.projects().topics().list(project="projects/p", pageToken=page["nextPageToken"]))
    assert [t["name"] for t in rest["topics"]] == ["projects/p/topics/t2"] and "nextPageToken" not in rest
    assert [t["name"] for t in topics.list("projects/p")] == [f"projects/p/topics/t{i}" for i in range(3)]

    # the update mask decides: labels replaced, the field not named is kept
    body = {"topic": {"labels": {"x": "y"}, "messageRetentionDuration": "60s"}, "updateMask": "labels"}
    patched = gcp_rest.rest.execute(svc.projects().topics().patch(name="projects/p/topics/t1", body=body))
    assert patched == {"name": "projects/p/topics/t1", "labels": {"x": "y"}}

    with pytest.raises(HttpError) as conflict:
        gcp_rest.rest.execute(svc.projects().topics().create(name="projects/p/topics/t1", body={}))
    assert conflict.value.resp.status == 409
    assert _error(conflict)["status"] == "ALREADY_EXISTS" and _error(conflict)["errors"][0]["reason"] == "alreadyExists"
    gcp_rest.rest.execute(svc.projects().topics().delete(topic="projects/p/topics/t1"))
    with pytest.raises(HttpError) as missing:
        gcp_rest.rest.execute(svc.projects().topics().get(topic="projects/p/topics/t1"))
    assert missing.value.resp.status == 404 and _error(missing)["status"] == "NOT_FOUND"


def test_pubsub_subscription_rules(gcp_rest: GcpProvider) -> None:
    svc = gcp_rest.rest.api("pubsub/v1").service
    with pytest.raises(HttpError) as no_topic:
        gcp_rest.rest.execute(svc.projects().subscriptions().create(
            name="projects/p/subscriptions/s", body={"topic": "projects/p/topics/none"}))  # fmt: skip
    assert no_topic.value.resp.status == 404
    gcp_rest.rest.execute(svc.projects().topics().create(name="projects/p/topics/t", body={}))
    sub = gcp_rest.rest.execute(svc.projects().subscriptions().create(
        name="projects/p/subscriptions/s", body={"topic": "projects/p/topics/t"}))  # fmt: skip
    assert (sub["ackDeadlineSeconds"], sub["messageRetentionDuration"], sub["state"]) == (10, "604800s", "ACTIVE")
    names = gcp_rest.rest.execute(svc.projects().topics().subscriptions().list(topic="projects/p/topics/t"))
    assert names == {"subscriptions": ["projects/p/subscriptions/s"]}
    gcp_rest.rest.execute(svc.projects().topics().delete(topic="projects/p/topics/t"))
    sub = gcp_rest.rest.execute(svc.projects().subscriptions().get(subscription="projects/p/subscriptions/s"))
    assert sub["topic"] == "_deleted-topic_"


def test_compute_operations_stay_running_for_n_polls(gcp_rest: GcpProvider, google_api: GoogleServer) -> None:
    google_api.configure(running_polls=3)
    networks = gcp_rest.rest.collection("compute/v1", "networks")
    op = networks.call("insert", "projects/p/global/networks", {"name": "net", "autoCreateSubnetworks": False})
    assert (op["kind"], op["status"], op["operationType"]) == ("compute#operation", "RUNNING", "insert")
    assert op["targetLink"] == f"{google_api.url}/compute/compute/v1/projects/p/global/networks/net"
    done = gcp_rest.rest.wait(Operation("compute", op))
    assert done["status"] == "DONE" and google_api.calls()["compute.globalOperations.wait"] == 3
    net = networks.get("projects/p/global/networks/net")
    assert net is not None and net["kind"] == "compute#network" and net["selfLink"] == op["targetLink"]
    assert net["id"].isdigit() and net["creationTimestamp"]

    subnets = gcp_rest.rest.collection("compute/v1", "subnetworks")
    google_api.configure(running_polls=1)
    body = {"network": net["selfLink"], "ipCidrRange": "10.0.0.0/24"}
    raw = subnets.create("projects/p/regions/r1/subnetworks/s", body)
    assert raw["name"] == "s" and google_api.calls()["compute.regionOperations.wait"] == 1


def test_longrunning_operations_and_their_errors(gcp_rest: GcpProvider, google_api: GoogleServer) -> None:
    google_api.configure(running_polls=2)
    services = gcp_rest.rest.collection("run/v2", "projects.locations.services")
    raw = services.create("projects/p/locations/l/services/web", {"template": {"containers": [{"image": "nginx"}]}})
    assert raw["name"] == "projects/p/locations/l/services/web" and raw["uid"] and raw["etag"]
    assert google_api.calls()["run.projects.locations.operations.get"] == 2

    google_api.configure(running_polls=0)
    google_api.fail_operation(400, "the image does not exist", path="services")
    from cloudorch_gcp.discovery import OperationFailed

    with pytest.raises(OperationFailed) as failed:
        services.create("projects/p/locations/l/services/bad", {})
    assert failed.value.status == 400 and "image" in failed.value.message
    assert services.get("projects/p/locations/l/services/bad") is None  # a failed operation made nothing


def test_faults_answer_429_and_503_with_retry_after(gcp_rest: GcpProvider, google_api: GoogleServer) -> None:
    topics = gcp_rest.rest.collection("pubsub/v1", "projects.topics")
    google_api.fail(429, retry_after="7", http_method="PUT")
    with pytest.raises(HttpError) as throttled:
        topics.create("projects/p/topics/t", {})
    assert throttled.value.resp.status == 429 and throttled.value.resp["retry-after"] == "7"
    assert _error(throttled)["status"] == "RESOURCE_EXHAUSTED"
    assert topics.get("projects/p/topics/t") is None  # a fault never reaches the store
    google_api.fail(503, times=2, retry_after="1")
    for _ in range(2):
        with pytest.raises(HttpError) as unavailable:
            topics.get("projects/p/topics/t")
        assert unavailable.value.resp.status == 503
    assert topics.get("projects/p/topics/t") is None  # the third call is served
