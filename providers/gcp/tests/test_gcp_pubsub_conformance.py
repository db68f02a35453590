"""The conformance kit on `gcp.pubsub_topic` and `gcp.pubsub_subscription`, against the Google
REST test server with the real googleapiclient. Drift is made with googleapiclient built apart
from the provider; censuses ask the server's store; faults go through the provider's seam."""

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


def _census(segment: str) -> Any:
    def count(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
        return exists(_SERVER[0], "pubsub", f"projects/{props.get('project') or PROJECT}/{segment}/{props['name']}")

    return count


def _topic_drift(rt: ResourceType[Any], seen: Observed) -> None:
    body = {"topic": {"messageRetentionDuration": "3600s"}, "updateMask": "messageRetentionDuration"}
    sdk(_SERVER[0], "pubsub", "v1").projects().topics().patch(name=seen.attributes["name"], body=body).execute()


def _subscription_drift(rt: ResourceType[Any], seen: Observed) -> None:
    body = {"subscription": {"ackDeadlineSeconds": 99}, "updateMask": "ackDeadlineSeconds"}
    subscriptions = sdk(_SERVER[0], "pubsub", "v1").projects().subscriptions()
    subscriptions.patch(name=seen.attributes["name"], body=body).execute()


def _unset_dropped(prop: str, value: Any) -> Any:
    """A nested block as the user writes it: keys left unset (None) are not written."""
    if isinstance(value, Mapping):
        return {k: _unset_dropped(k, v) for k, v in value.items() if v is not None}
    return value


class TestGcpPubSubConformance(ConformanceSuite):
    examples = (
        ConformanceExample(
            type="gcp.pubsub_topic",
            minimal={"name": "topic-{run}"},
            full={"name": "topic-{run}", "labels": {"team": "web"}, "message_retention_duration": "600s",
                  "allowed_persistence_regions": ["europe-west1"]},
            updates={"labels": {"team": "data"}, "message_retention_duration": "1200s",
                     "allowed_persistence_regions": ["europe-west1", "europe-west4"]},
            # the kit wants a new id from a replace: only a new name gives one (kms_key_name, force-new as
            # well, keeps the name and so the id: test_gcp_pubsub.py replaces by it)
            force_new={"name": "topic2-{run}"},
            drift=_topic_drift,
            census=_census("topics"),
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="gcp.pubsub_subscription",
            minimal={"name": "sub-{run}", "topic": "orders"},
            full={"name": "sub-{run}", "topic": "orders", "labels": {"team": "web"}, "ack_deadline_seconds": 30,
                  "message_retention_duration": "1200s", "retain_acked_messages": True,
                  "dead_letter_policy": {"dead_letter_topic": "projects/conformance/topics/dead",
                                         "max_delivery_attempts": 7},
                  "retry_policy": {"minimum_backoff": "5s"}},
            updates={"ack_deadline_seconds": 60, "labels": {"team": "data"},
                     "push_config": {"push_endpoint": "https://push.example.com/in", "attributes": {"a": "b"},
                                     "oidc_service_account_email": "pusher@conformance.iam.gserviceaccount.com"},
                     "dead_letter_policy": None, "retry_policy": {"minimum_backoff": "20s", "maximum_backoff": "300s"}},
            force_new={"name": "sub2-{run}"},  # topic, filter, ordering: test_gcp_pubsub.py
            drift=_subscription_drift,
            normalise=_unset_dropped,
            # an import reports topics by their full names, whatever spelling the plan file used
            import_ignore=("topic", "dead_letter_policy"),
            census=_census("subscriptions"),
            provider_config=PROVIDER,
        ),
    )
    max_calls = 1


@pytest.fixture
def conformance_env(google_server: GoogleServer, monkeypatch: pytest.MonkeyPatch) -> ConformanceEnv:
    """The seam on every discovery client; the subscriptions' topics made with the SDK."""
    google_server.reset()
    topics = sdk(google_server, "pubsub", "v1").projects().topics()
    for topic in ("orders", "payments", "dead"):
        topics.create(name=f"projects/{PROJECT}/topics/{topic}", body={}).execute()
    _SERVER[:] = [google_server]
    monkeypatch.setattr(GcpProvider, "http_wrapper", SEAM.wrap_http)
    return ConformanceEnv(seam=SEAM, values={"google_url": google_server.url})
