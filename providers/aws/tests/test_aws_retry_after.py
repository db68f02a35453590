"""AWS's Retry-After reaches the engine in both forms, read by the contract's shared parser.

A real boto3 client talks to moto; the throttling answer is injected on the wire by
`cloudorch_aws.faults`, with the header a throttling AWS service sends.
"""

from __future__ import annotations

import email.utils
import time

import pytest

from cloudorch.provider.contract import ErrorKind, ProviderError
from cloudorch_aws import AwsProvider
from cloudorch_aws.faults import Fault


def _create_bucket_error(provider: AwsProvider, headers: dict[str, str]) -> ProviderError:
    AwsProvider.client_hooks.append(Fault("s3", "CreateBucket", 503, "SlowDown", "slow down", headers=headers))
    rt = provider.resource_type("aws.s3_bucket")
    with pytest.raises(ProviderError) as info:
        rt.create("web.site", rt.Properties.model_validate({"name": "retry-after-bucket"}))
    assert info.value.kind is ErrorKind.THROTTLED
    return info.value


def test_delta_seconds(provider: AwsProvider) -> None:
    assert _create_bucket_error(provider, {"Retry-After": "7"}).retry_after == 7.0


def test_http_date(provider: AwsProvider) -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    seconds = _create_bucket_error(provider, {"Retry-After": when}).retry_after
    # the date is read, not dropped as an unreadable number; the clock ran between the two reads
    assert seconds is not None and 100 < seconds <= 120


def test_garbage_is_ignored(provider: AwsProvider) -> None:
    assert _create_bucket_error(provider, {"Retry-After": "soon"}).retry_after is None


def test_no_header(provider: AwsProvider) -> None:
    assert _create_bucket_error(provider, {}).retry_after is None
