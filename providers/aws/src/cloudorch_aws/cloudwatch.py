"""CloudWatch: `aws.cloudwatch_alarm`, a metric alarm whose state release gates can read.

`PutMetricAlarm` both creates and updates, so create after a crash is simply repeated.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from cloudorch.provider.contract import ErrorKind, Observed, ProviderError, ResourceProperties, prop
from cloudorch_aws.resource import AwsResource, tag_dict, tag_list


class AlarmProperties(ResourceProperties):
    """A metric alarm on one metric."""

    name: str = prop(force_new=True, min_length=1, max_length=255, description="Alarm name.")
    namespace: str = prop(description="Metric namespace, e.g. AWS/Lambda.")
    metric_name: str = prop(description="Metric name, e.g. Errors.")
    statistic: Literal["SampleCount", "Average", "Sum", "Minimum", "Maximum"] = prop(
        "Average", description="How data points are aggregated over each period."
    )
    comparison_operator: Literal[
        "GreaterThanOrEqualToThreshold",
        "GreaterThanThreshold",
        "LessThanThreshold",
        "LessThanOrEqualToThreshold",
    ] = prop("GreaterThanOrEqualToThreshold", description="How the statistic is compared with the threshold.")
    threshold: float = prop(description="The value compared against.")
    period: int = prop(60, ge=10, description="Seconds per data point.")
    evaluation_periods: int = prop(1, ge=1, description="Periods over which to evaluate.")
    dimensions: dict[str, str] = prop(default_factory=dict, description="Metric dimensions, name -> value.")
    treat_missing_data: Literal["breaching", "notBreaching", "ignore", "missing"] = prop(
        "missing", description="How missing data points count."
    )
    description: str = prop("", description="Free text.")
    alarm_actions: list[str] = prop(default_factory=list, description="ARNs notified on ALARM (a set).")
    ok_actions: list[str] = prop(default_factory=list, description="ARNs notified on OK (a set).")
    tags: dict[str, str] = prop(default_factory=dict, description="Tags.")

    @field_validator("alarm_actions", "ok_actions")
    @classmethod
    def _set(cls, value: list[str]) -> list[str]:
        return sorted(set(value))


class AlarmResource(AwsResource[AlarmProperties]):
    """A CloudWatch metric alarm; the id is its name."""

    type_name = "aws.cloudwatch_alarm"
    Properties = AlarmProperties
    service = "cloudwatch"
    description = "A CloudWatch metric alarm (its state is exposed for release gates)."
    attributes = {"arn": "The alarm ARN.", "state": "OK, ALARM or INSUFFICIENT_DATA when last read."}
    # an alarm put again starts from INSUFFICIENT_DATA
    recomputed_on_update = frozenset({"state"})

    def _put(self, address: str, props: AlarmProperties, *, with_tags: bool) -> None:
        kwargs: dict[str, Any] = {}
        if with_tags:
            kwargs["Tags"] = tag_list(self.tags_to_apply(address, props.tags))
        self.call(
            address,
            "put_metric_alarm",
            AlarmName=props.name,
            Namespace=props.namespace,
            MetricName=props.metric_name,
            Statistic=props.statistic,
            ComparisonOperator=props.comparison_operator,
            Threshold=props.threshold,
            Period=props.period,
            EvaluationPeriods=props.evaluation_periods,
            Dimensions=[{"Name": k, "Value": v} for k, v in sorted(props.dimensions.items())],
            TreatMissingData=props.treat_missing_data,
            AlarmDescription=props.description,
            AlarmActions=props.alarm_actions,
            OKActions=props.ok_actions,
            **kwargs,
        )

    def create(self, address: str, props: AlarmProperties) -> Observed:
        self._put(address, props, with_tags=True)
        seen = self._observe(address, props.name, props)
        if seen is None:
            raise ProviderError(f"alarm {props.name} vanished after create", kind=ErrorKind.TRANSIENT, address=address)
        return seen

    def update(self, address: str, id: str, old: AlarmProperties, new: AlarmProperties) -> Observed:
        self._put(address, new, with_tags=False)
        seen = self._observe(address, id, new)
        if seen is None:
            raise ProviderError(f"alarm {id} is gone", kind=ErrorKind.FATAL, address=address)
        if old.tags != new.tags:
            arn = seen.attributes["arn"]
            removed = [k for k in old.tags if k not in new.tags]
            if removed:
                self.call(address, "untag_resource", ResourceARN=arn, TagKeys=removed)
            self.call(address, "tag_resource", ResourceARN=arn, Tags=tag_list(self.tags_to_apply(address, new.tags)))
            seen = Observed(seen.id, {**seen.properties, "tags": dict(sorted(new.tags.items()))}, seen.attributes)
        return seen

    def _observe(self, address: str | None, name: str, props: AlarmProperties | None) -> Observed | None:
        got = self.call(address, "describe_alarms", AlarmNames=[name], AlarmTypes=["MetricAlarm"])
        alarms = got.get("MetricAlarms", [])
        if not alarms:
            return None
        a = alarms[0]
        tags = tag_dict(self.call(address, "list_tags_for_resource", ResourceARN=a["AlarmArn"]).get("Tags"))
        out = {
            "name": a["AlarmName"],
            "namespace": a.get("Namespace"),
            "metric_name": a.get("MetricName"),
            "statistic": a.get("Statistic"),
            "comparison_operator": a.get("ComparisonOperator"),
            "threshold": float(a.get("Threshold", 0)),
            "period": a.get("Period"),
            "evaluation_periods": a.get("EvaluationPeriods"),
            "dimensions": dict(sorted((d["Name"], d["Value"]) for d in a.get("Dimensions", []))),
            "treat_missing_data": a.get("TreatMissingData") or "missing",
            "description": a.get("AlarmDescription") or "",
            "alarm_actions": sorted(set(a.get("AlarmActions", []))),
            "ok_actions": sorted(set(a.get("OKActions", []))),
            "tags": self.observed_tags(tags, props.tags if props else None),
        }
        return Observed(name, out, {"arn": a["AlarmArn"], "state": a.get("StateValue")})

    def read(self, address: str, id: str, props: AlarmProperties) -> Observed | None:
        return self._observe(address, id, props)

    def delete(self, address: str, id: str, props: AlarmProperties) -> None:
        self.call(address, "delete_alarms", AlarmNames=[id], missing=("ResourceNotFound",))

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no CloudWatch alarm {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def find(self, address: str, props: AlarmProperties) -> Observed | None:
        seen = self._observe(address, props.name, props)
        return seen

    def estimate_seconds(self, props: AlarmProperties) -> float:
        return 0.5
