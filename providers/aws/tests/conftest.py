"""Fixtures for the AWS provider tests: one moto server per session, reset between tests.

Real boto3 clients talk HTTP to moto on 127.0.0.1 through the provider's `endpoint_url`; no
`mock_aws` and no patched SDK calls. Real AWS credentials are removed from the environment so no
test can reach an account.
"""

from __future__ import annotations

import os
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudorch.provider.contract import ProviderContext
from cloudorch_aws import AwsConfig, AwsProvider

REGION = "us-east-1"
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith("AWS_"):
            del os.environ[key]
    os.environ.update(FAKE_ENV)
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    os.environ["AWS_ENDPOINT_URL"] = url
    try:
        yield url
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(autouse=True)
def _reset(moto_url: str) -> Iterator[None]:
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")).read()
    hooks = list(AwsProvider.client_hooks)
    yield
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
