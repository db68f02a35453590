"""EventBridge: `aws.eventbridge_rule` and `aws.eventbridge_target`.

A rule's `event_pattern` is held as a JSON object, so a pattern AWS hands back with other spacing
or key order is the same pattern and never drift. Rule names are unique per event bus, so `find`
looks a rule up by name; a target is unique per rule by its `target_id`, so it needs no tag.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import field_validator, model_validator

from cloudorch.provider.contract import (
    ConfigError,
    ErrorKind,
    LookupQuery,
    Observed,
    ProviderError,
    ReadRequest,
    ResourceProperties,
    matches_filter,
    prop,
)
from cloudorch_aws.errors import error_code
from cloudorch_aws.resource import AwsResource, tag_dict, tag_list

GONE = ("ResourceNotFoundException",)
DEFAULT_BUS = "default"


def rule_id(bus: str, name: str) -> str:
    """A rule's id: its name on the default bus, `BUS/NAME` on another (Terraform's form too)."""
    return name if bus == DEFAULT_BUS else f"{bus}/{name}"


def split_rule_id(id: str) -> tuple[str, str]:
    """(bus, name) of a rule id; a bus given by ARN keeps its slash-free name."""
    if "/" in id:
        bus, name = id.rsplit("/", 1)
        return bus.rsplit("/", 1)[-1] if bus.startswith("arn:") else bus, name
    return DEFAULT_BUS, id


def _pattern(value: Any) -> Any:
    """An event pattern as a JSON object, whether written as one or as JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"event_pattern is not valid JSON: {exc.msg}") from exc
    if value is not None and not isinstance(value, dict):
        raise ValueError("event_pattern must be a JSON object")
    return value


# ============================================================================ rule


class RuleProperties(ResourceProperties):
    """An EventBridge rule: an event pattern or a schedule, on an event bus."""

    name: str = prop(force_new=True, pattern=r"^[\.\-_A-Za-z0-9]{1,64}$", description="Rule name, unique on its bus.")
    event_bus_name: str = prop(
        DEFAULT_BUS, force_new=True, description="Event bus name (or ARN); `default` is the account's."
    )
    event_pattern: dict[str, Any] | None = prop(
        None, description="Which events match, as a JSON object (compared as JSON, not as text)."
    )
    schedule_expression: str | None = prop(
        None, description="`rate(5 minutes)` or `cron(...)`; exactly one of this and event_pattern."
    )
    state: str = prop("ENABLED", pattern=r"^(ENABLED|DISABLED)$", description="ENABLED or DISABLED.")
    description: str = prop("", max_length=512, description="Free text.")
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")

    @field_validator("event_pattern", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return _pattern(value)

    @field_validator("event_bus_name")
    @classmethod
    def _bus(cls, value: str) -> str:
        # an ARN names the same bus as its last segment; one spelling keeps ids and diffs stable
        return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value

    @model_validator(mode="after")
    def _one_trigger(self) -> RuleProperties:
        # a check across properties: the planner skips it while either value is still unknown
        if (self.event_pattern is None) == (self.schedule_expression is None):
            raise ValueError("set exactly one of `event_pattern` and `schedule_expression`")
        return self


class RuleResource(AwsResource[RuleProperties]):
    """An EventBridge rule; the id is its name (`BUS/NAME` on a bus other than `default`)."""

    type_name = "aws.eventbridge_rule"
    Properties = RuleProperties
    service = "events"
    description = "An EventBridge rule matching an event pattern or running on a schedule."
    attributes = {
        "arn": "The rule ARN.",
        "name": "The rule name.",
        "event_bus_name": "The bus the rule is on.",
    }
    recomputed_on_update = frozenset()

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        name, bus = desired.get("name"), desired.get("event_bus_name", DEFAULT_BUS)
        return {"name": name, "event_bus_name": bus} if isinstance(name, str) and isinstance(bus, str) else {}

    def _arn(self, bus: str, name: str) -> str:
        path = name if bus == DEFAULT_BUS else f"{bus}/{name}"
        return f"arn:aws:events:{self.provider.region}:{self.provider.account_id}:rule/{path}"

    def _put(self, address: str, props: RuleProperties, *, tags: bool) -> str:
        kwargs: dict[str, Any] = {
            "Name": props.name,
            "EventBusName": props.event_bus_name,
            "State": props.state,
            "Description": props.description,
        }
        if props.event_pattern is not None:
            kwargs["EventPattern"] = json.dumps(props.event_pattern, sort_keys=True)
        if props.schedule_expression is not None:
            kwargs["ScheduleExpression"] = props.schedule_expression
        if tags:
            kwargs["Tags"] = tag_list(self.tags_to_apply(address, props.tags))
        got = self.call(address, "put_rule", **kwargs)
        return str(got["RuleArn"])

    def create(self, address: str, props: RuleProperties) -> Observed:
        # PutRule is an upsert by name: it would silently take over a rule someone else made, so a
        # create refuses a rule of that name unless it carries this address's tag (a crashed create)
        id = rule_id(props.event_bus_name, props.name)
        existing = self.call(address, "describe_rule", Name=props.name, EventBusName=props.event_bus_name, missing=GONE)
        if existing is not None:
            arn = existing.get("Arn") or self._arn(props.event_bus_name, props.name)
            tags = self.call(address, "list_tags_for_resource", ResourceARN=arn, missing=GONE)
            if not self.owned_by(tag_dict((tags or {}).get("Tags")), address):
                raise ProviderError(
                    f"{address}: an EventBridge rule {props.name} already exists on bus {props.event_bus_name}",
                    kind=ErrorKind.FATAL,
                    address=address,
                    hint=f"adopt it with `cloudorch import {address} {id}`, or choose another `name`",
                )
        self._put(address, props, tags=True)
        return self.finish_create(address, id, lambda: self._seen(address, id, props))

    def _seen(self, address: str, id: str, props: RuleProperties) -> Observed:
        seen = self._observe(address, id, props)
        if seen is None:
            raise ProviderError(f"rule {id} vanished after PutRule", kind=ErrorKind.TRANSIENT, address=address)
        return seen

    def update(self, address: str, id: str, old: RuleProperties, new: RuleProperties) -> Observed:
        arn = self._put(address, new, tags=False)
        if old.tags != new.tags:
            removed = [k for k in old.tags if k not in new.tags]
            if removed:
                self.call(address, "untag_resource", ResourceARN=arn, TagKeys=removed)
            self.call(address, "tag_resource", ResourceARN=arn, Tags=tag_list(self.tags_to_apply(address, new.tags)))
        return self._seen(address, id, new)

    def _observe(self, address: str | None, id: str, props: RuleProperties | None) -> Observed | None:
        bus, name = split_rule_id(id)
        got = self.call(address, "describe_rule", Name=name, EventBusName=bus, missing=GONE)
        return None if got is None else self._shape(address, bus, got, props)

    def _shape(
        self, address: str | None, bus: str, got: Mapping[str, Any], props: RuleProperties | None
    ) -> Observed | None:
        """A rule as DescribeRule or ListRules gives it, with its tags (one call)."""
        name = str(got["Name"])
        arn = got.get("Arn") or self._arn(bus, name)
        tags = self.call(address, "list_tags_for_resource", ResourceARN=arn, missing=GONE)
        if tags is None:
            return None
        pattern = got.get("EventPattern")
        out = {
            "name": got["Name"],
            "event_bus_name": got.get("EventBusName") or bus,
            "event_pattern": json.loads(pattern) if pattern else None,
            "schedule_expression": got.get("ScheduleExpression") or None,
            "state": got.get("State", "ENABLED"),
            "description": got.get("Description") or "",
            "tags": self.observed_tags(tag_dict(tags.get("Tags")), props.tags if props else None),
        }
        attrs = {"arn": arn, "name": got["Name"], "event_bus_name": out["event_bus_name"]}
        return Observed(rule_id(str(out["event_bus_name"]), got["Name"]), out, attrs)

    def read(self, address: str, id: str, props: RuleProperties) -> Observed | None:
        return self._observe(address, id, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        # one ListRules per bus says which rules exist and what they hold; then their tags
        if len(requests) < 2:
            return [self.read(r.address, r.id, r.properties) for r in requests]  # type: ignore[arg-type]
        buses = sorted({split_rule_id(r.id)[0] for r in requests})
        listed: dict[tuple[str, str], dict[str, Any]] = {}
        for bus in buses:
            try:
                rules = self.paginate(None, "list_rules", "Rules", EventBusName=bus)
            except ProviderError as exc:
                if exc.cause is not None and error_code(exc.cause) in GONE:  # the bus is gone, its rules too
                    continue
                raise
            listed.update({(bus, str(r["Name"])): r for r in rules})

        def one(r: ReadRequest) -> Observed | None:
            got = listed.get(split_rule_id(r.id))
            return None if got is None else self._shape(r.address, split_rule_id(r.id)[0], got, r.properties)  # type: ignore[arg-type]

        return self.parallel(one, list(requests))

    def delete(self, address: str, id: str, props: RuleProperties) -> None:
        bus, name = split_rule_id(id)
        self.call(address, "delete_rule", Name=name, EventBusName=bus, missing=GONE)

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(
                f"no EventBridge rule {id}",
                kind=ErrorKind.FATAL,
                address=address,
                hint="import a rule by NAME, or BUS/NAME for a bus other than default",
            )
        return seen

    def find(self, address: str, props: RuleProperties) -> Observed | None:
        return self._observe(address, rule_id(props.event_bus_name, props.name), props)

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        bus = query.filter.get("event_bus_name", DEFAULT_BUS)

        def listed() -> list[str]:
            kwargs: dict[str, Any] = {"EventBusName": bus}
            if isinstance(query.filter.get("name"), str):
                kwargs["NamePrefix"] = query.filter["name"]
            got = self.paginate(address, "list_rules", "Rules", **kwargs)
            return [rule_id(str(bus), r["Name"]) for r in got]

        return self.lookup_listed(query, lambda i: self._observe(address, i, None), listed)

    def estimate_seconds(self, props: RuleProperties) -> float:
        return 0.5


# ============================================================================ target


class TargetProperties(ResourceProperties):
    """Where a rule sends the events it matches: one target of one rule."""

    rule: str = prop(force_new=True, description="Rule name, usually `${resources.RULE.name}`.")
    event_bus_name: str = prop(DEFAULT_BUS, force_new=True, description="The rule's event bus name.")
    target_id: str = prop(
        force_new=True, pattern=r"^[\.\-_A-Za-z0-9]{1,64}$", description="The target's id, unique in its rule."
    )
    arn: str = prop(description="ARN of what receives the events (a queue, topic, function, bus, ...).")
    input: str | None = prop(
        None, description="Constant JSON text sent instead of the event; at most one of input and input_path."
    )
    input_path: str | None = prop(None, description="JSONPath of the part of the event to send, e.g. `$.detail`.")
    role_arn: str | None = prop(
        None, description="Role EventBridge assumes to reach the target (needed for some kinds)."
    )

    @field_validator("event_bus_name")
    @classmethod
    def _bus(cls, value: str) -> str:
        return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value

    @model_validator(mode="after")
    def _one_input(self) -> TargetProperties:
        if self.input is not None and self.input_path is not None:
            raise ValueError("set at most one of `input` and `input_path`")
        return self


def target_id(bus: str, rule: str, target: str) -> str:
    """A target's id: `RULE/TARGET_ID` (`BUS/RULE/TARGET_ID` on a bus other than `default`)."""
    return f"{rule_id(bus, rule)}/{target}"


def split_target_id(id: str) -> tuple[str, str, str]:
    parts = id.split("/")
    if len(parts) == 2:
        return DEFAULT_BUS, parts[0], parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    raise ProviderError(
        f"cannot read EventBridge target id {id!r}",
        kind=ErrorKind.FATAL,
        hint="a target id is RULE/TARGET_ID, or BUS/RULE/TARGET_ID on a bus other than default",
    )


class TargetResource(AwsResource[TargetProperties]):
    """A target of an EventBridge rule; the id is `RULE/TARGET_ID`. Changes go through PutTargets."""

    type_name = "aws.eventbridge_target"
    Properties = TargetProperties
    service = "events"
    taggable = False
    description = "A target of an EventBridge rule (a queue, topic, function, another bus)."
    attributes = {"target_id": "The target's id in its rule.", "rule": "The rule's name."}
    recomputed_on_update = frozenset()

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        rule, target = desired.get("rule"), desired.get("target_id")
        return {"rule": rule, "target_id": target} if isinstance(rule, str) and isinstance(target, str) else {}

    def _put(self, address: str, props: TargetProperties) -> None:
        target: dict[str, Any] = {"Id": props.target_id, "Arn": props.arn}
        if props.input is not None:
            target["Input"] = props.input
        if props.input_path is not None:
            target["InputPath"] = props.input_path
        if props.role_arn is not None:
            target["RoleArn"] = props.role_arn
        got = self.call(address, "put_targets", Rule=props.rule, EventBusName=props.event_bus_name, Targets=[target])
        failed = got.get("FailedEntries") or []
        if failed:
            f = failed[0]
            raise ProviderError(
                f"{address}: PutTargets refused target {props.target_id}: "
                f"{f.get('ErrorCode')}: {f.get('ErrorMessage')}",
                kind=ErrorKind.FATAL,
                address=address,
                hint="check the target's `arn` and `role_arn`",
            )

    def create(self, address: str, props: TargetProperties) -> Observed:
        # PutTargets is an upsert by target id: a retry never makes a second target, but it would
        # silently take over one someone else made, so a create refuses a taken id
        id = target_id(props.event_bus_name, props.rule, props.target_id)
        if self._observe(address, id) is not None:
            raise ProviderError(
                f"{address}: rule {props.rule} already has a target {props.target_id}",
                kind=ErrorKind.FATAL,
                address=address,
                hint=f"adopt it with `cloudorch import {address} {id}`, or choose another `target_id`",
            )
        self._put(address, props)
        return self.finish_create(address, id, lambda: self._seen(address, id, props))

    def _seen(self, address: str, id: str, props: TargetProperties) -> Observed:
        seen = self._observe(address, id)
        if seen is None:
            raise ProviderError(f"target {id} vanished after PutTargets", kind=ErrorKind.TRANSIENT, address=address)
        return seen

    def update(self, address: str, id: str, old: TargetProperties, new: TargetProperties) -> Observed:
        self._put(address, new)
        return self._seen(address, id, new)

    def _targets(self, address: str | None, bus: str, rule: str) -> list[dict[str, Any]] | None:
        """The rule's targets, or None when the rule itself is gone."""
        got = self.call(address, "list_targets_by_rule", Rule=rule, EventBusName=bus, missing=GONE)
        return None if got is None else list(got.get("Targets", []))

    def _shape(self, bus: str, rule: str, t: dict[str, Any]) -> Observed:
        out = {
            "rule": rule,
            "event_bus_name": bus,
            "target_id": t["Id"],
            "arn": t["Arn"],
            "input": t.get("Input"),
            "input_path": t.get("InputPath"),
            "role_arn": t.get("RoleArn"),
        }
        return Observed(target_id(bus, rule, t["Id"]), out, {"target_id": t["Id"], "rule": rule})

    def _observe(self, address: str | None, id: str) -> Observed | None:
        bus, rule, tid = split_target_id(id)
        for t in self._targets(address, bus, rule) or []:
            if t.get("Id") == tid:
                return self._shape(bus, rule, t)
        return None

    def read(self, address: str, id: str, props: TargetProperties) -> Observed | None:
        return self._observe(address, id)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        # one ListTargetsByRule answers for every target of a rule
        rules = sorted({split_target_id(r.id)[:2] for r in requests})
        listed = dict(zip(rules, self.parallel(lambda br: self._targets(None, br[0], br[1]), rules), strict=True))
        out: list[Observed | None] = []
        for r in requests:
            bus, rule, tid = split_target_id(r.id)
            match = next((t for t in listed[(bus, rule)] or [] if t.get("Id") == tid), None)
            out.append(None if match is None else self._shape(bus, rule, match))
        return out

    def delete(self, address: str, id: str, props: TargetProperties) -> None:
        bus, rule, tid = split_target_id(id)
        got = self.call(address, "remove_targets", Rule=rule, EventBusName=bus, Ids=[tid], missing=GONE)
        failed = (got or {}).get("FailedEntries") or []
        if failed and failed[0].get("ErrorCode") not in ("ResourceNotFoundException", None):
            f = failed[0]
            raise ProviderError(
                f"{address}: RemoveTargets failed for {tid}: {f.get('ErrorCode')}: {f.get('ErrorMessage')}",
                kind=ErrorKind.TRANSIENT,
                address=address,
            )

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id)
        if seen is None:
            raise ProviderError(
                f"no EventBridge target {id}",
                kind=ErrorKind.FATAL,
                address=address,
                hint="import a target by RULE/TARGET_ID (BUS/RULE/TARGET_ID on a bus other than default)",
            )
        return seen

    def find(self, address: str, props: TargetProperties) -> Observed | None:
        return self._observe(address, target_id(props.event_bus_name, props.rule, props.target_id))

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        if query.id is not None:
            seen = self._observe(address, query.id)
            return [seen] if seen is not None else []
        rule = query.filter.get("rule")
        if not isinstance(rule, str):
            raise ConfigError(
                f"{address}: looking up EventBridge targets needs `rule` in the filter",
                hint="add `rule: NAME` (and `event_bus_name` for a bus other than default) to the filter",
            )
        bus = str(query.filter.get("event_bus_name", DEFAULT_BUS))
        found = [self._shape(bus, rule, t) for t in self._targets(address, bus, rule) or []]
        return [o for o in found if matches_filter(o, query.filter)]

    def estimate_seconds(self, props: TargetProperties) -> float:
        return 0.5
