"""The Azure fault seam (`cloudorch_azure.faults`) on the real pipeline, against the ARM test
server: a transient fault never reaches the server, a lost answer does and acts there, and only
mutating requests are counted. The conformance kit's checks rely on exactly this."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure_testkit import provider_config
from cloudorch_azure import AzureConfig, AzureProvider
from cloudorch_azure.faults import WriteFaults
from cloudorch_azure.provider import TOKEN_ENV

from cloudorch.errors import ErrorKind, ProviderError
from cloudorch.provider.contract import ProviderContext
from cloudorch.testing import RunningServer
from cloudorch.testing.arm import ArmServer


@pytest.fixture
def seam(monkeypatch: pytest.MonkeyPatch) -> WriteFaults:
    faults = WriteFaults()
    monkeypatch.setattr(AzureProvider, "extra_policies", [faults.policy])
    return faults


@pytest.fixture
def faulty(seam: WriteFaults, arm: ArmServer, azurite: RunningServer, tmp_path: Path) -> Iterator[AzureProvider]:
    config = AzureConfig.model_validate(provider_config(arm, azurite))
    provider = AzureProvider(config, "azure", ProviderContext(plan_dir=tmp_path, env={TOKEN_ENV: "test-token"}))
    yield provider
    provider.close()


def test_a_transient_fault_never_reaches_the_server_and_a_lost_answer_acts_there(
    seam: WriteFaults, faulty: AzureProvider, arm: ArmServer
) -> None:
    rt = faulty.resource_type("azure.resource_group")
    props = rt.Properties.model_validate({"name": "rg-seam"})
    rng = random.Random(1)

    with seam.failing(1, lost=False, rng=rng) as fired, pytest.raises(ProviderError) as err:
        rt.create("dev.rg", props)
    assert fired() and err.value.kind is ErrorKind.TRANSIENT
    assert arm.requests("PUT") == []
    assert not faulty.resources.resource_groups.check_existence("rg-seam")

    with seam.failing(1, lost=True, rng=rng) as fired, pytest.raises(ProviderError) as err:
        rt.create("dev.rg", props)
    assert fired() and err.value.kind is ErrorKind.TRANSIENT
    assert [status for _, _, status in arm.requests("PUT")] == [201]
    assert faulty.resources.resource_groups.check_existence("rg-seam")


def test_only_mutating_requests_are_counted(seam: WriteFaults, faulty: AzureProvider) -> None:
    rt = faulty.resource_type("azure.resource_group")
    props = rt.Properties.model_validate({"name": "rg-count"})
    with seam.counting() as made:
        seen = rt.create("dev.rg", props)
        assert made() == 1  # the GET that looks for an existing group first is a read
        rt.read("dev.rg", seen.id, props)
        rt.delete("dev.rg", seen.id, props)
        assert made() == 2  # the DELETE; its polls are reads
