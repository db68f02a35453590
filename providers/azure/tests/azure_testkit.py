"""Helpers shared by the Azure provider tests: the provider config for the local servers, the planner's diff rule."""

from __future__ import annotations

from typing import Any

from cloudorch.provider.contract import Observed, ResourceType, force_new_fields
from cloudorch.testing import RunningServer
from cloudorch.testing.arm import ArmServer

SUBSCRIPTION = "00000000-0000-0000-0000-0000000000aa"


def provider_config(arm: ArmServer, azurite: RunningServer, **overrides: Any) -> dict[str, Any]:
    return {
        "subscription_id": SUBSCRIPTION,
        "arm_endpoint": arm.url,
        "ca_bundle": str(arm.ca_bundle),
        "storage_connection_string": azurite.extra["connection_string"],
        "location": "westeurope",
        "default_tags": {"team": "platform"},
        "polling_interval": 0,
        **overrides,
    }


def desired(rt: ResourceType[Any], user: dict[str, Any]) -> Any:
    return rt.Properties.model_validate(user)


def changed_keys(rt: ResourceType[Any], observed: Observed, user: dict[str, Any]) -> set[str]:
    """The planner's diff rule: every desired key the cloud reports, compared as JSON."""
    want = rt.Properties.model_validate(user).model_dump(mode="json")
    return {k for k, v in want.items() if k in observed.properties and observed.properties[k] != v}


def replaced_by(rt: ResourceType[Any], observed: Observed, user: dict[str, Any]) -> set[str]:
    return changed_keys(rt, observed, user) & force_new_fields(rt.Properties)
