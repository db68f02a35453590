"""Fixtures for the AWS provider tests: moto (one server per session, reset before every test).

Real boto3 clients talk HTTP to moto on 127.0.0.1 through the provider's `endpoint_url`; no
`mock_aws` and no patched SDK calls. The server, its reset and the isolation from real
credentials come from `cloudorch.testing.plugin`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudorch.provider.contract import ProviderContext
from cloudorch_aws import AwsConfig, AwsProvider

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def moto_url(moto: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every test here starts from an empty moto; client hooks a test adds are removed after it."""
    monkeypatch.setenv("AWS_REGION", REGION)
    hooks = list(AwsProvider.client_hooks)
    yield moto
    AwsProvider.client_hooks[:] = hooks


@pytest.fixture
def provider(moto_url: str, tmp_path: Path) -> Iterator[AwsProvider]:
    p = AwsProvider(
        AwsConfig(region=REGION, endpoint_url=moto_url, default_tags={"team": "web"}),
        "aws",
        ProviderContext(plan_dir=tmp_path, env=dict(os.environ)),
    )
    yield p
    p.close()


@pytest.fixture
def aws(moto_url: str) -> Any:
    """A factory of plain boto3 clients for out-of-band changes: `aws("s3")`."""
    import boto3

    def make(service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=moto_url)

    return make
