"""Release health checks the AWS provider answers: `aws_alarms` (no CloudWatch alarm in ALARM).

`check_health` is the provider's side of the release `health` gate: the core asks by name and
never imports boto3. It reads CloudWatch through the provider block's own client (its region,
credentials and `endpoint_url`) and only reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloudorch.provider.contract import ConfigError

if TYPE_CHECKING:
    from cloudorch_aws.provider import AwsProvider

#: how many alarm names a verdict lists before "and N more"
_SHOWN = 10


class AlarmsCheck(BaseModel):
    """`aws_alarms: {prefix: "shop-staging-"}` (or `names: [...]`)."""

    model_config = ConfigDict(extra="forbid")
    prefix: str | None = Field(None, description="Alarms whose name starts with this.")
    names: list[str] = Field(default_factory=list, description="Or exactly these alarms.")
    provider: str | None = Field(None, description="The provider block to read with (`aws`, `aws.us`); default aws.")


def _parse(spec: Mapping[str, Any]) -> AlarmsCheck:
    try:
        check = AlarmsCheck.model_validate(dict(spec))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(
            f"aws_alarms: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}",
            hint='aws_alarms: {prefix: "shop-staging-"} or {names: [...]}',
        ) from None
    if not check.prefix and not check.names:
        raise ConfigError("aws_alarms needs a `prefix` or `names`", hint='aws_alarms: {prefix: "shop-staging-"}')
    return check


def alarms_in_alarm(provider: AwsProvider, spec: Mapping[str, Any]) -> tuple[bool, str]:
    """(True, "...") when no matching metric or composite alarm is in state ALARM."""
    check = _parse(spec)
    client = provider.client("cloudwatch")
    kwargs: dict[str, Any] = {"StateValue": "ALARM"}
    if check.names:
        kwargs["AlarmNames"] = check.names
    else:
        kwargs["AlarmNamePrefix"] = check.prefix
    firing: list[str] = []
    try:
        for page in client.get_paginator("describe_alarms").paginate(**kwargs):
            # filter again here: moto ignores StateValue when a name prefix is given as well
            for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                if alarm.get("StateValue") == "ALARM":
                    firing.append(alarm["AlarmName"])
    except Exception as exc:
        raise provider.classify(exc, None) from exc
    what = f"prefix {check.prefix!r}" if not check.names else "names " + ", ".join(check.names)
    if not firing:
        return True, f"no CloudWatch alarm in ALARM ({what}, region {provider.region})"
    shown = ", ".join(sorted(firing)[:_SHOWN]) + (f" and {len(firing) - _SHOWN} more" if len(firing) > _SHOWN else "")
    return False, f"{len(firing)} CloudWatch alarm(s) in ALARM: {shown}"


CHECKS = {"aws_alarms": alarms_in_alarm}
