"""What is installed: the plan-file JSON Schema and the providers with their resource types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloudorch.errors import ConfigError


def schema() -> dict[str, object]:
    from cloudorch.planfile import plan_json_schema
    from cloudorch.provider.registry import Registry

    return plan_json_schema(Registry())


@dataclass(frozen=True)
class ResourceTypeInfo:
    type: str
    description: str
    properties: list[str]
    force_new: list[str]
    sensitive: list[str]
    attributes: list[str]


@dataclass(frozen=True)
class ProviderInfo:
    """One installed provider; `error` says why it could not be loaded (then `types` is empty)."""

    name: str
    package: str | None = None
    types: list[ResourceTypeInfo] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"name": self.name, "error": self.error, "types": []}
        return {"name": self.name, "package": self.package, "types": [t.__dict__.copy() for t in self.types]}


def providers_info() -> list[ProviderInfo]:
    from cloudorch.provider.contract import force_new_fields, sensitive_fields
    from cloudorch.provider.registry import Registry

    reg = Registry()
    out: list[ProviderInfo] = []
    for name in reg.names():
        try:
            cls = reg.provider_class(name)
        except ConfigError as exc:
            out.append(ProviderInfo(name, error=exc.message))
            continue
        types = [
            ResourceTypeInfo(
                type=rt.type_name,
                description=rt.description,
                properties=sorted(rt.Properties.model_fields),
                force_new=sorted(force_new_fields(rt.Properties)),
                sensitive=sorted(sensitive_fields(rt.Properties)),
                attributes=sorted(rt.attributes),
            )
            for rt in cls.resource_types
        ]
        out.append(ProviderInfo(name, package=cls.package, types=types))
    return out
