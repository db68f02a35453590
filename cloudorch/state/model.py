"""The state document: what cloudorch last saw and did for one plan (or one stage of it).

It carries `lineage` (a uuid fixed when the state is first created) and `serial` (bumped on
every write) so that saved plans and concurrent writers can tell whether the world moved.
Persistence, locking and history belong to `cloudorch.state.backends`, not here.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from cloudorch import __version__

STATE_FORMAT = 1


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ResourceRecord(BaseModel):
    """One resource as last applied and read back."""

    address: str
    type: str
    provider: str = Field(description="Provider block key: `aws` or an alias `aws.west`.")
    id: str = Field(description="The cloud's id for the object.")
    properties: dict[str, Any] = Field(
        default_factory=dict,
        description="Properties as applied. Sensitive ones are stored as {'$sensitive': 'sha256:...'} only.",
    )
    attributes: dict[str, Any] = Field(default_factory=dict, description="Computed values read back.")
    dependencies: list[str] = Field(default_factory=list, description="Addresses it depended on when applied.")
    sensitive: list[str] = Field(default_factory=list, description="Names of properties stored hashed.")
    created_at: str = Field(default_factory=now_iso)
    updated_at: str = Field(default_factory=now_iso)


    def value(self, path: Sequence[str | int]) -> Any:
        """What `${resources.ADDRESS.path}` means here: an attribute, else a property, then into it.

        The whole object (properties and attributes) for an empty path; LookupError or
        TypeError when the path does not exist.
        """
        if not path:
            return {**self.properties, **self.attributes}
        head = str(path[0])
        value: Any = self.attributes[head] if head in self.attributes else self.properties[head]
        for step in path[1:]:
            value = value[step]
        return value


class StateEvent(BaseModel):
    """Something worth keeping in the audit trail: an apply, a recovery, a policy override, a release."""

    kind: str
    at: str = Field(default_factory=now_iso)
    actor: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class State(BaseModel):
    format_version: int = STATE_FORMAT
    lineage: str = Field(default_factory=lambda: str(uuid.uuid4()))
    serial: int = 0
    cloudorch_version: str = __version__
    plan_name: str = ""
    state_key: str = Field("default", description="Which document of the plan: `default` or a stage name.")
    written_at: str = Field(default_factory=now_iso)
    resources: dict[str, ResourceRecord] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)
    events: list[StateEvent] = Field(default_factory=list)

    def canonical_json(self) -> str:
        """The text the checksum is computed over (stable key order, no whitespace)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def checksum(self) -> str:
        return "sha256:" + hashlib.sha256(self.canonical_json().encode()).hexdigest()


def sensitive_marker(value: Any) -> dict[str, str]:
    """What state keeps instead of a sensitive value: enough to detect a change, nothing more."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return {"$sensitive": "sha256:" + hashlib.sha256(text.encode()).hexdigest()}


def is_sensitive_marker(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"$sensitive"}
