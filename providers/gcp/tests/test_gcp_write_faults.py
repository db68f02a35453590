"""The GCP fault seam (`cloudorch_gcp.faults`) on the storage client's real transport, against
fake-gcs-server: each transient fault never reaches the server, a lost answer does and acts there,
and only mutating requests are counted. The conformance kit's checks rely on exactly this."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cloudorch_gcp import GcpConfig, GcpProvider
from cloudorch_gcp.faults import TRANSIENT_ERRORS, WriteFaults

from cloudorch.errors import ErrorKind, ProviderError
from cloudorch.provider.contract import ProviderContext
from cloudorch.testing import RunningServer

T = TypeVar("T")


class _Pick(random.Random):
    """Picks the `index`th transient error."""

    def __init__(self, index: int) -> None:
        super().__init__(0)
        self.index = index

    def choice(self, seq: Sequence[T]) -> T:
        return seq[self.index]


@pytest.fixture
def faulty(gcp: GcpProvider, fake_gcs: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """(seam, a provider whose client has it); `gcp`'s own client, made first, has not."""
    assert gcp.client is not None
    seam = WriteFaults()
    monkeypatch.setattr(GcpProvider, "session_wrapper", seam.wrap)
    provider = GcpProvider(GcpConfig(project="test-project", endpoint=fake_gcs.url), "gcp",
                           ProviderContext(plan_dir=tmp_path, env={}))  # fmt: skip
    yield seam, provider
    provider.close()


@pytest.mark.parametrize("error", range(len(TRANSIENT_ERRORS)), ids=[str(e) for e in TRANSIENT_ERRORS])
def test_a_transient_fault_never_reaches_the_server(error: int, faulty: Any, gcp: GcpProvider) -> None:
    seam, provider = faulty
    rt = provider.resource_type("gcp.storage_bucket")
    name = f"seam-transient-{error}"
    with seam.failing(1, lost=False, rng=_Pick(error)) as fired, pytest.raises(ProviderError) as err:
        rt.create("dev.b", rt.Properties.model_validate({"name": name}))
    assert fired() and err.value.kind is ErrorKind.TRANSIENT
    assert gcp.client.lookup_bucket(name) is None


def test_a_lost_answer_acts_on_the_server(faulty: Any, gcp: GcpProvider) -> None:
    seam, provider = faulty
    rt = provider.resource_type("gcp.storage_bucket")
    with seam.failing(1, lost=True, rng=random.Random(1)) as fired, pytest.raises(ProviderError) as err:
        rt.create("dev.b", rt.Properties.model_validate({"name": "seam-lost"}))
    assert fired() and err.value.kind is ErrorKind.TRANSIENT
    assert gcp.client.lookup_bucket("seam-lost") is not None


def test_only_mutating_requests_are_counted(faulty: Any) -> None:
    seam, provider = faulty
    rt = provider.resource_type("gcp.storage_bucket")
    props = rt.Properties.model_validate({"name": "seam-count"})
    with seam.counting() as made:
        seen = rt.create("dev.b", props)
        creates = made()
        rt.read("dev.b", seen.id, props)
        assert made() == creates >= 1
        rt.delete("dev.b", seen.id, props)
        assert made() == creates + 1
