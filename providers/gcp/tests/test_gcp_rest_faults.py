"""The GCP fault seam on the discovery clients' real httplib2 connections (`WriteFaults.wrap_http`),
against the Google REST test server: a transient fault never reaches the server, a lost answer
does and acts there, and only mutating requests are counted. The conformance kit's checks on the
Pub/Sub and `gcp.resource` types rely on exactly this (without it they would report n/a)."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cloudorch_gcp import GcpConfig, GcpProvider
from cloudorch_gcp.faults import TRANSIENT_ERRORS, WriteFaults
from cloudorch_gcp.testserver import GoogleServer
from google_testkit import exists

from cloudorch.errors import ErrorKind, ProviderError
from cloudorch.provider.contract import ProviderContext

T = TypeVar("T")


class _Pick(random.Random):
    def __init__(self, index: int) -> None:
        super().__init__(0)
        self.index = index

    def choice(self, seq: Sequence[T]) -> T:
        return seq[self.index]


@pytest.fixture
def faulty(google_api: GoogleServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    seam = WriteFaults()
    monkeypatch.setattr(GcpProvider, "http_wrapper", seam.wrap_http)
    config = GcpConfig(project="p", api_endpoint=google_api.url, operation_poll_interval=0)
    provider = GcpProvider(config, "gcp", ProviderContext(plan_dir=tmp_path, env={}))
    yield seam, provider
    provider.close()


@pytest.mark.parametrize("error", range(len(TRANSIENT_ERRORS)), ids=[str(e) for e in TRANSIENT_ERRORS])
def test_a_transient_fault_never_reaches_the_server(error: int, faulty: Any, google_api: GoogleServer) -> None:
    seam, provider = faulty
    rt = provider.resource_type("gcp.pubsub_topic")
    with seam.failing(1, lost=False, rng=_Pick(error)) as fired, pytest.raises(ProviderError) as err:
        rt.create("dev.t", rt.Properties.model_validate({"name": "transient"}))
    assert fired() and err.value.kind is ErrorKind.TRANSIENT
    assert exists(google_api, "pubsub", "projects/p/topics/transient") == 0


def test_a_lost_answer_acts_on_the_server(faulty: Any, google_api: GoogleServer) -> None:
    seam, provider = faulty
    rt = provider.resource_type("gcp.pubsub_topic")
    with seam.failing(1, lost=True, rng=random.Random(1)) as fired, pytest.raises(ProviderError) as err:
        rt.create("dev.t", rt.Properties.model_validate({"name": "lost"}))
    assert fired() and err.value.kind is ErrorKind.TRANSIENT
    assert exists(google_api, "pubsub", "projects/p/topics/lost") == 1


def test_only_mutating_requests_are_counted(faulty: Any) -> None:
    seam, provider = faulty
    rt = provider.resource_type("gcp.pubsub_topic")
    props = rt.Properties.model_validate({"name": "counted"})
    with seam.counting() as made:
        seen = rt.create("dev.t", props)
        assert made() == 1
        rt.read("dev.t", seen.id, props)
        rt.read_many([])
        assert made() == 1
        rt.delete("dev.t", seen.id, props)
        assert made() == 2
