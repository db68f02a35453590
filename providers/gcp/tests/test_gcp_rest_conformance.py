"""The conformance kit on `gcp.resource`, against the Google REST test server with the real
googleapiclient: a Pub/Sub topic (labels, answered at once) and a Compute network (no labels,
`compute#operation`s that stay RUNNING for a poll). Drift is made with googleapiclient built
apart from the provider; censuses ask the server's store; faults go through the provider's seam
on its httplib2 connections (`cloudorch_gcp.faults.WriteFaults.wrap_http`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from cloudorch_gcp import GcpProvider
from cloudorch_gcp.faults import WriteFaults
from cloudorch_gcp.testserver import GoogleServer
from google_testkit import exists, sdk

from cloudorch.provider.contract import Observed, ResourceType
from cloudorch.testing.conformance import ConformanceEnv, ConformanceExample, ConformanceSuite

SEAM = WriteFaults()
_SERVER: list[GoogleServer] = []
PROJECT = "conformance"
PROVIDER = {"project": PROJECT, "api_endpoint": "{google_url}", "operation_poll_interval": 0}


def _census(api: str, parent: str, segment: str) -> Any:
    def count(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
        return exists(_SERVER[0], api, f"{props.get('parent') or parent}/{segment}/{props['name']}")

    return count


def _topic_drift(rt: ResourceType[Any], seen: Observed) -> None:
    topics = sdk(_SERVER[0], "pubsub", "v1").projects().topics()
    body = {"topic": {"messageRetentionDuration": "3600s"}, "updateMask": "messageRetentionDuration"}
    topics.patch(name=seen.attributes["name"], body=body).execute()


def _network_drift(rt: ResourceType[Any], seen: Observed) -> None:
    compute = sdk(_SERVER[0], "compute", "v1")
    name = seen.attributes["name"].rsplit("/", 1)[-1]
    compute.networks().patch(project=PROJECT, network=name, body={"routingConfig": {"routingMode": "GLOBAL"}}).execute()


class TestGcpRestConformance(ConformanceSuite):
    examples = (
        ConformanceExample(
            type="gcp.resource",
            minimal={"api": "pubsub/v1", "collection": "projects.topics", "name": "t-{run}"},
            full={"api": "pubsub/v1", "collection": "projects.topics", "name": "t-{run}",
                  "body": {"messageRetentionDuration": "600s"}, "labels": {"team": "web"}},
            updates={"body": {"messageRetentionDuration": "1200s"}, "labels": {"team": "data"}},
            force_new={"name": "t2-{run}"},
            drift=_topic_drift,
            census=_census("pubsub", f"projects/{PROJECT}", "topics"),
            provider_config=PROVIDER,
        ),
    )


class TestGcpRestComputeConformance(ConformanceSuite):
    """Compute's shape: a short name, a selfLink as the id, operations awaited; no labels, so
    `find` adopts the network at the deterministic name."""

    examples = (
        ConformanceExample(
            type="gcp.resource",
            minimal={"api": "compute/v1", "collection": "networks", "name": "n-{run}",
                     "body": {"autoCreateSubnetworks": False}},
            full={"api": "compute/v1", "collection": "networks", "name": "n-{run}",
                  "body": {"autoCreateSubnetworks": False, "routingConfig": {"routingMode": "REGIONAL"}}},
            updates={"body": {"autoCreateSubnetworks": False, "routingConfig": {"routingMode": "GLOBAL"}}},
            force_new={"name": "n2-{run}"},
            drift=_network_drift,
            census=_census("compute", f"projects/{PROJECT}/global", "networks"),
            provider_config=PROVIDER,
        ),
    )
    max_calls = 1


@pytest.fixture
def conformance_env(google_server: GoogleServer, request: pytest.FixtureRequest,
                    monkeypatch: pytest.MonkeyPatch) -> ConformanceEnv:
    """The seam on every discovery client; compute's operations stay RUNNING for one poll."""
    google_server.reset()
    if request.cls is TestGcpRestComputeConformance:
        google_server.configure(running_polls=1)
    _SERVER[:] = [google_server]
    monkeypatch.setattr(GcpProvider, "http_wrapper", SEAM.wrap_http)
    return ConformanceEnv(seam=SEAM, values={"google_url": google_server.url})
