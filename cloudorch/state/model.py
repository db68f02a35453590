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

from pydantic import BaseModel, Field, field_validator

from cloudorch import __version__

#: 2 added `deposed` objects and `tainted` records; a format-1 document reads as format 2 with neither
STATE_FORMAT = 2


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
    tainted: bool = Field(
        False,
        description="Its create made the object but a later step failed: the next plan replaces it.",
    )

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


class DeposedObject(BaseModel):
    """An object that a replacement superseded but that is not deleted yet.

    A create-before-destroy replace records the old object here from the moment the new one
    exists until the old one is gone, so neither object is ever unknown to state. A failed
    delete leaves it here; every later plan deletes it.
    """

    address: str
    key: str = Field(description="Tells deposed objects of one address apart (8 hex digits).")
    type: str
    provider: str
    id: str = Field(description="The cloud's id of the old object.")
    properties: dict[str, Any] = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)
    dependencies: list[str] = Field(default_factory=list)
    deposed_at: str = Field(default_factory=now_iso)

    @classmethod
    def of(cls, record: ResourceRecord, key: str | None = None) -> DeposedObject:
        return cls(
            address=record.address,
            key=key or uuid.uuid4().hex[:8],
            type=record.type,
            provider=record.provider,
            id=record.id,
            properties=dict(record.properties),
            attributes=dict(record.attributes),
            dependencies=list(record.dependencies),
        )

    def as_record(self) -> ResourceRecord:
        """The old object in the shape a provider call or a dependency check takes."""
        return ResourceRecord(
            address=self.address,
            type=self.type,
            provider=self.provider,
            id=self.id,
            properties=dict(self.properties),
            attributes=dict(self.attributes),
            dependencies=list(self.dependencies),
        )


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
    deposed: dict[str, list[DeposedObject]] = Field(
        default_factory=dict, description="Address -> old objects a replacement has not deleted yet."
    )
    outputs: dict[str, Any] = Field(default_factory=dict)
    events: list[StateEvent] = Field(default_factory=list)

    @field_validator("format_version")
    @classmethod
    def _upgrade(cls, value: int) -> int:
        # format 1 lacks only what defaults to empty here (deposed, tainted): read it as current
        return STATE_FORMAT if value < STATE_FORMAT else value

    def deposed_objects(self) -> list[DeposedObject]:
        return [d for objs in self.deposed.values() for d in objs]

    def add_deposed(self, obj: DeposedObject) -> None:
        self.deposed.setdefault(obj.address, []).append(obj)

    def drop_deposed(self, address: str, key: str) -> None:
        left = [d for d in self.deposed.get(address, []) if d.key != key]
        if left:
            self.deposed[address] = left
        else:
            self.deposed.pop(address, None)

    def canonical_json(self) -> str:
        """The text the checksum is computed over (stable key order, no whitespace).

        Exactly `json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))`,
        written one resource at a time: a dump of the whole state at once held every record twice
        more (as dicts, then as text), the peak memory of a large apply."""
        top = self.model_dump(mode="json", exclude={"resources"})
        parts: list[str] = []
        for key in sorted([*top, "resources"]):
            if key == "resources":
                records = self.resources
                value = (
                    "{"
                    + ",".join(
                        _dumps(address) + ":" + _dumps(records[address].model_dump(mode="json"))
                        for address in sorted(records)
                    )
                    + "}"
                )
            else:
                value = _dumps(top[key])
            parts.append(_dumps(key) + ":" + value)
        return "{" + ",".join(parts) + "}"

    def checksum(self) -> str:
        return "sha256:" + hashlib.sha256(self.canonical_json().encode()).hexdigest()


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def sensitive_marker(value: Any) -> dict[str, str]:
    """What state keeps instead of a sensitive value: enough to detect a change, nothing more."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return {"$sensitive": "sha256:" + hashlib.sha256(text.encode()).hexdigest()}


def is_sensitive_marker(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"$sensitive"}
