"""The plan file's `data:`, `moved:` and `imports:` sections: their models and how loading checks them.

`data:` names objects cloudorch reads but does not manage (`${data.NAME.ATTR}`); `moved:` renames
addresses in state; `imports:` adopts existing objects. This module owns their shape and their
located errors at load (bad addresses, a type missing, an import named twice); what they do at
plan and apply is in `cloudorch.engine.datasources`, `moves` and `imports`. It reads no state and
calls no cloud.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloudorch.errors import ConfigError, Location, did_you_mean
from cloudorch.planfile.addresses import AddressError, parse_address
from cloudorch.planfile.expressions import ExpressionError, Reference, navigate, resolve

#: provider block keys (the same pattern as `model.PROVIDER_KEY_PATTERN`, which imports this module)
_PROVIDER_KEY_PATTERN = r"^[a-z][a-z0-9_]*(\.[A-Za-z0-9_-]+)?$"


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DataSpec(_Block):
    """An object cloudorch reads but does not manage, referenced as `${data.NAME.ATTR}`.

    Read at every plan through the type's `lookup`: by `id`, or by `filter`, or both. No match is
    an error (or null with `optional: true`); several matches are an error naming them.
    """

    type: str = Field(description="Resource type to look up, e.g. `aws.vpc`.")
    provider: str | None = Field(
        None, pattern=_PROVIDER_KEY_PATTERN, description="Provider block key; defaults to the type's prefix."
    )
    id: str | None = Field(None, description="The object's cloud id (vpc-..., a bucket name, an ARM id).")
    filter: dict[str, Any] | None = Field(
        None,
        description="Property or attribute values the object must have; a mapping (tags) matches when "
        "every pair it lists is present.",
    )
    optional: bool = Field(False, description="No match gives null instead of an error.")

    @model_validator(mode="after")
    def _needs_a_key(self) -> DataSpec:
        if self.id is None and not self.filter:
            raise ValueError("give `id` or `filter` (or both) to say which object to read")
        return self


class MovedSpec(_Block):
    """An address renamed: state's object at `from` now belongs to `to`, with no cloud change."""

    from_: str = Field(alias="from", description="The old address: `web`, `web[eu]`, `module.net[eu].vpc`.")
    to: str = Field(description="The new address, of the same shape.")


class ImportSpec(_Block):
    """An existing object adopted into state at `to` (one per key with `for_each`)."""

    to: str = Field(description="Address to adopt it at, e.g. `buckets[logs]` or `buckets[${each.key}]`.")
    id: str = Field(description="The object's cloud id (the same id `cloudorch import` takes).")
    type: str | None = Field(
        None, description="Resource type; required when the plan has no resource block for `to` yet."
    )
    provider: str | None = Field(None, pattern=_PROVIDER_KEY_PATTERN, description="Provider block key.")
    for_each: Any = Field(
        None, description="A list of strings or a mapping (or `${var.x}`): one import per key, with `each`."
    )


# --------------------------------------------------------------------------- loaded forms


@dataclass(frozen=True)
class DataSource:
    """A `data:` entry as loaded: `var`/`env` resolved."""

    name: str
    type: str
    provider: str
    id: str | None
    filter: dict[str, Any]
    optional: bool
    location: Location


@dataclass(frozen=True)
class Move:
    """A `moved:` entry: canonical addresses."""

    src: str
    dst: str
    location: Location


@dataclass(frozen=True)
class ImportTarget:
    """One import after `for_each`: a canonical address, the id, the type if the entry named one."""

    to: str
    id: str
    type: str | None
    provider: str | None
    location: Location


Locate = Callable[..., Location]


def check_data_ref(ref: Reference, data: Mapping[str, Any], location: Location) -> None:
    """A `${data.NAME...}` must name a `data:` entry."""
    head = str(ref.path[0])
    if head not in data:
        raise ConfigError(
            f"`{ref.text}` refers to data source `{head}`, which is not in this plan",
            location=location,
            hint=did_you_mean(head, list(data))
            or f"declare it under `data:`, e.g. `{head}: {{type: aws.vpc, id: ...}}`",
        )


def load_data(
    specs: Mapping[str, DataSpec], lookup: Callable[[Reference], Any], locate: Locate
) -> dict[str, DataSource]:
    out: dict[str, DataSource] = {}
    for name, spec in specs.items():
        prefix = spec.type.partition(".")[0]
        if spec.provider is not None and spec.provider.partition(".")[0] != prefix:
            raise ConfigError(
                f"data source `{name}` of type {spec.type} cannot use provider block `{spec.provider}`",
                location=locate("data", name, "provider"),
                hint=f"use a `{prefix}` block such as `{prefix}` or `{prefix}.<alias>`",
            )
        out[name] = DataSource(
            name=name,
            type=spec.type,
            provider=spec.provider or spec.type.partition(".")[0],
            id=resolve(spec.id, lookup) if spec.id is not None else None,
            filter=resolve(spec.filter or {}, lookup),
            optional=spec.optional,
            location=locate("data", name),
        )
    return out


def load_moves(specs: list[MovedSpec], locate: Locate) -> list[Move]:
    out: list[Move] = []
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        try:
            src, dst = parse_address(spec.from_), parse_address(spec.to)
        except AddressError as exc:
            raise ConfigError(str(exc), location=locate("moved", i)) from None
        if str(src) == str(dst):
            raise ConfigError(f"`moved` from {src} to itself", location=locate("moved", i), hint="remove this entry")
        if (src.resource is None) != (dst.resource is None):
            raise ConfigError(
                f"cannot move {src} to {dst}: one names a module, the other a resource",
                location=locate("moved", i),
                hint="move a module to a module, a resource to a resource",
            )
        if str(src) in seen:
            raise ConfigError(
                f"{src} is moved twice (entries {seen[str(src)]} and {i})",
                location=locate("moved", i),
                hint="chain moves instead: from a to b, then from b to c",
            )
        seen[str(src)] = i
        out.append(Move(str(src), str(dst), locate("moved", i)))
    return out


def load_imports(
    specs: list[ImportSpec],
    resources: Mapping[str, Any],
    lookup: Callable[[Reference], Any],
    locate: Locate,
) -> list[ImportTarget]:
    """Expand `for_each`, resolve `var`/`env`/`each`, check addresses and types; located errors."""
    out: list[ImportTarget] = []
    where: dict[str, int] = {}
    for i, spec in enumerate(specs):
        loc = locate("imports", i)
        for key, value in _each(spec, i, lookup, locate):

            def scoped(ref: Reference, key: str | None = key, value: Any = value) -> Any:
                if ref.root != "each":
                    return lookup(ref)
                if key is None:
                    raise ExpressionError(f"`{ref.text}`: `each` needs `for_each` on this import", ref.text)
                if ref.path[:1] == ("key",):
                    return key
                return navigate(value, ref.path[1:], ref.text)

            try:
                to_text, id_value = resolve(spec.to, scoped), resolve(spec.id, scoped)
                address = parse_address(str(to_text))
            except (ExpressionError, AddressError) as exc:
                raise ConfigError(str(exc), location=loc) from None
            step = address.resource
            if step is None:
                raise ConfigError(f"import `to: {address}` must name a resource instance", location=loc)
            if not isinstance(id_value, str) or not id_value:
                raise ConfigError(f"import to {address}: `id` must be a non-empty string", location=loc)
            block = resources.get(step.name) if len(address.steps) == 1 else None
            rtype = spec.type
            if block is not None and rtype is not None and rtype != block.type:
                raise ConfigError(
                    f"import to {address} says type {rtype}, but resource `{step.name}` is {block.type}",
                    location=loc,
                    hint="drop `type:` from the import, or fix it",
                )
            if block is None and rtype is None:
                raise ConfigError(
                    f"import to {address}: the plan has no resource `{step.name}`, so the import needs `type:`",
                    location=loc,
                    hint="add e.g. `type: aws.s3_bucket`; `cloudorch plan --generate-config-out FILE` then writes "
                    "the resource block",
                )
            text = str(address)
            if text in where:
                raise ConfigError(
                    f"{text} is imported twice (entries {where[text]} and {i})", location=loc
                )
            where[text] = i
            provider = spec.provider or (block.provider if block is not None else None)
            rtype = rtype if rtype is not None else str(block.type) if block is not None else None
            out.append(ImportTarget(text, id_value, rtype, provider, loc))
    return out


def _each(spec: ImportSpec, i: int, lookup: Callable[[Reference], Any], locate: Locate) -> list[tuple[str | None, Any]]:
    if spec.for_each is None:
        return [(None, None)]
    try:
        value = resolve(spec.for_each, lookup) if isinstance(spec.for_each, str) else spec.for_each
    except ExpressionError as exc:
        raise ConfigError(str(exc), location=locate("imports", i, "for_each")) from None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [(v, v) for v in value]
    if isinstance(value, dict):
        return [(str(k), v) for k, v in value.items()]
    raise ConfigError(
        "an import's for_each must be a list of strings or a mapping",
        location=locate("imports", i, "for_each"),
        hint='write e.g. `for_each: [logs, assets]` or `for_each: "${var.buckets}"`',
    )
