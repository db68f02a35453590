"""The AWS provider's release health check `aws_alarms`, against CloudWatch alarms in moto."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cloudorch.errors import ConfigError, ProviderError
from cloudorch_aws import AwsConfig, AwsProvider


def _alarm(cw: Any, name: str, state: str) -> None:
    cw.put_metric_alarm(
        AlarmName=name,
        Namespace="Shop",
        MetricName="Errors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cw.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")


def test_alarms_with_the_prefix_in_alarm_fail_the_check(provider: AwsProvider, aws: Callable[[str], Any]) -> None:
    cw = aws("cloudwatch")
    ok, detail = provider.check_health("aws_alarms", {"prefix": "shop-staging-"})
    assert ok and "no CloudWatch alarm in ALARM" in detail

    _alarm(cw, "shop-staging-5xx", "OK")
    _alarm(cw, "shop-prod-5xx", "ALARM")  # another prefix: not this check's business
    assert provider.check_health("aws_alarms", {"prefix": "shop-staging-"})[0]

    _alarm(cw, "shop-staging-latency", "ALARM")
    ok, detail = provider.check_health("aws_alarms", {"prefix": "shop-staging-"})
    assert not ok and detail == "1 CloudWatch alarm(s) in ALARM: shop-staging-latency"

    ok, detail = provider.check_health("aws_alarms", {"names": ["shop-staging-5xx"]})
    assert ok
    assert not provider.check_health("aws_alarms", {"names": ["shop-staging-5xx", "shop-prod-5xx"]})[0]


def test_bad_specs_and_unknown_checks_are_config_errors(provider: AwsProvider) -> None:
    with pytest.raises(ConfigError, match="needs a `prefix` or `names`"):
        provider.check_health("aws_alarms", {})
    with pytest.raises(ConfigError, match="prefx"):
        provider.check_health("aws_alarms", {"prefx": "x"})
    with pytest.raises(ConfigError, match="offers no health check 'aws_canaries'"):
        provider.check_health("aws_canaries", {})


def test_an_unreachable_endpoint_is_a_provider_error(moto_url: str) -> None:
    p = AwsProvider(AwsConfig(region="us-east-1", endpoint_url="http://127.0.0.1:9"))
    try:
        with pytest.raises(ProviderError) as info:
            p.check_health("aws_alarms", {"prefix": "x"})
        assert info.value.retryable
    finally:
        p.close()
