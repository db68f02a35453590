"""Helpers shared by the GCP provider tests: the planner's diff rule."""

from __future__ import annotations

from typing import Any

from cloudorch.provider.contract import Observed, ResourceType, force_new_fields


def changed_keys(rt: ResourceType[Any], observed: Observed, user: dict[str, Any]) -> set[str]:
    """The planner's diff rule: every desired key the cloud reports, compared as JSON."""
    want = rt.Properties.model_validate(user).model_dump(mode="json")
    return {k for k, v in want.items() if k in observed.properties and observed.properties[k] != v}


def replaced_by(rt: ResourceType[Any], observed: Observed, user: dict[str, Any]) -> set[str]:
    return changed_keys(rt, observed, user) & force_new_fields(rt.Properties)
