"""The pydantic models of a plan file and `PlanSpec`, the loaded, validated plan.

This module owns the shape of the file (the grammar of `stages:` and `release:` is in
`stages.py`); field descriptions double as the JSON Schema text. It does not read files or
resolve references: see `cloudorch.planfile.load` and `cloudorch.planfile.expressions`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from cloudorch.errors import Location
from cloudorch.planfile.source import SourceMap
from cloudorch.planfile.stages import section_json_schema

VariableType = Literal["string", "number", "bool", "list", "map", "any"]

#: names of resources, variables and outputs: they appear in addresses like `prod.web[eu]`
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
#: provider block keys: `aws`, or an aliased block `aws.west`
PROVIDER_KEY_PATTERN = r"^[a-z][a-z0-9_]*(\.[A-Za-z0-9_-]+)?$"


def _drop_empty(data: Any, keys: tuple[str, ...]) -> Any:
    """`section:` with nothing under it (YAML null) means an empty section, not an error."""
    if isinstance(data, dict) and any(data.get(k, 0) is None for k in keys):
        return {k: v for k, v in data.items() if not (k in keys and v is None)}
    return data


class _Strict(BaseModel):
    # YAML already gives typed values: don't let "yes" pass for a bool or 1 for a string
    model_config = ConfigDict(extra="forbid", strict=True)


class VariableSpec(_Strict):
    """A declared input; its value comes from `default` < `--var-file`s < `--var`."""

    type: VariableType = Field("any", description="The value's type; `--var` text is parsed by it.")
    default: Any = Field(None, description="Used when no var file or --var gives a value; omit to require one.")
    description: str = Field("", description="What the variable is for, shown in errors and `validate`.")
    sensitive: bool = Field(False, description="Mask the value in output.")

    @property
    def required(self) -> bool:
        """True if the plan gives no default (an explicit `default: null` is a default)."""
        return "default" not in self.model_fields_set


class Lifecycle(_Strict):
    """How the engine may treat a resource beyond create/update/delete."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    prevent_destroy: bool = Field(False, description="Refuse any plan that deletes or replaces it.")
    ignore_changes: list[str] = Field(
        default_factory=list, description="Property paths whose drift or change is not diffed."
    )
    create_before_destroy: bool = Field(False, description="On replace, create the new one before deleting.")


class ResourceSpec(_Strict):
    """One resource as written; for_each makes one instance per key, addressed `name[key]`."""

    type: str = Field(description="Resource type, `<provider>.<kind>` such as `aws.s3_bucket`.")
    provider: str | None = Field(
        None,
        pattern=PROVIDER_KEY_PATTERN,
        description="Provider block key such as `aws.west`; defaults to the type's prefix.",
    )
    properties: dict[str, Any] = Field(
        default_factory=dict, description="The type's properties; strings may hold `${...}` references."
    )
    depends_on: list[str] = Field(
        default_factory=list, description="Resources to create first, beyond those referenced."
    )
    for_each: Any = Field(None, description="A list of strings or a mapping (or `${var.x}`): one instance per key.")
    lifecycle: Lifecycle = Field(default_factory=Lifecycle, description="Replacement and protection rules.")

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        return _drop_empty(data, ("properties", "depends_on", "lifecycle"))


class OutputSpec(_Strict):
    """A value shown after apply and readable by other tools (`cloudorch output`)."""

    value: Any = Field(description="Usually a `${resources.NAME.ATTR}` reference.")
    description: str = Field("", description="What the output is.")
    sensitive: bool = Field(
        False,
        description="Mask the value in output; required when the value comes from a sensitive variable or property.",
    )
    # the `var`/`each`/`env` references as written: loading resolves them in `value`, and whether
    # the output is built from a sensitive variable is decided from these (copies keep them)
    _written_refs: tuple[tuple[str, str], ...] = PrivateAttr(default=())

    def model_post_init(self, context: Any, /) -> None:
        from cloudorch.planfile.expressions import ExpressionError, find_refs

        try:
            refs = find_refs(self.value)
        except ExpressionError:
            return  # loading reports it with a location
        self._written_refs = tuple((r.root, str(r.path[0])) for r in refs if r.root != "resources" and r.path)

    @property
    def written_refs(self) -> tuple[tuple[str, str], ...]:
        """(root, head) of each non-resource reference in the value as the plan file wrote it."""
        return self._written_refs

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `name: "${resources.x.y}"` is short for `name: {value: "${resources.x.y}"}`
        if isinstance(data, dict) and "value" in data and set(data) <= {"value", "description", "sensitive"}:
            return data
        return {"value": data}


def _release_schema(schema: dict[str, Any], section: str) -> None:
    """The JSON Schema of `stages:` / `release:` comes from their models in `stages.py`."""
    description = schema.get("description")
    schema.clear()
    schema.update(section_json_schema(section), description=description)


def _notifications_schema(schema: dict[str, Any]) -> None:
    from cloudorch.notify.targets import entries_json_schema

    description = schema.get("description")
    schema.clear()
    schema.update(entries_json_schema(), description=description)


class PlanFileModel(_Strict):
    """The top level of a plan file."""

    version: Literal[1] = Field(description="Plan file format version; only 1 exists.")
    name: str | None = Field(None, description="The plan's name, e.g. the application.")
    variables: dict[str, VariableSpec] = Field(default_factory=dict, description="Declared inputs.")
    providers: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Provider blocks by key (`aws`, `aws.west`); each provider validates its own block.",
    )
    resources: dict[str, ResourceSpec] = Field(default_factory=dict, description="Resources by name.")
    outputs: dict[str, OutputSpec] = Field(default_factory=dict, description="Outputs by name.")
    # kept as dicts (templates inside); `stages.stages_of` checks them, with locations
    stages: dict[str, Any] | None = Field(
        None,
        description="Release stages by name: needs, vars, gates, verify, on_failed_verification.",
        json_schema_extra=lambda schema: _release_schema(schema, "stages"),
    )
    release: dict[str, Any] | None = Field(
        None,
        description="The release promoted through stages: `version`, approval `groups`, any other keys.",
        json_schema_extra=lambda schema: _release_schema(schema, "release"),
    )
    policies: list[Any] | None = Field(None, description="Policy sources and built-in rules.")
    backend: dict[str, Any] | None = Field(None, description="Where state lives; local `.cloudorch/` by default.")
    # kept as a list of dicts; `notify.targets.parse_entries` checks them, with locations
    notifications: list[Any] | None = Field(
        None,
        description="Who hears of which run events: `url` (https webhook or an apprise URL), `on` (events), "
        "`stages`, `secret_env` (HMAC-SHA256 signing secret). See docs/notifications.md.",
        json_schema_extra=lambda schema: _notifications_schema(schema),
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        data = _drop_empty(data, ("variables", "providers", "resources", "outputs"))
        providers = data.get("providers") if isinstance(data, dict) else None
        if isinstance(providers, dict) and any(v is None for v in providers.values()):
            # `aws:` alone is a provider block with every setting at its default
            data = {**data, "providers": {k: {} if v is None else v for k, v in providers.items()}}
        return data


TOP_LEVEL_KEYS = tuple(PlanFileModel.model_fields)
RESOURCE_KEYS = tuple(ResourceSpec.model_fields)


@dataclass
class PlanSpec:
    """A loaded plan: validated, with variable values chosen and `${var.*}`/`${env.*}` resolved.

    `providers` and `backend` are final values. `resources` are as written (see `expand` for
    instances); `outputs`, `stages`, `release` and `policies` are templates that still hold
    `${resources...}`, `${stage...}` and `${release...}` references and keep `$${` escaped:
    pass them through `resolve` before use. Do not mutate: instances share its containers.
    """

    version: int
    name: str | None
    variables: dict[str, VariableSpec]
    providers: dict[str, dict[str, Any]]
    resources: dict[str, ResourceSpec]
    outputs: dict[str, OutputSpec]
    stages: dict[str, Any] | None
    release: dict[str, Any] | None
    policies: list[Any] | None
    backend: dict[str, Any] | None
    path: Path
    text: str
    variable_values: dict[str, Any]
    #: values of the `${env.*}` the plan references, read once at load
    env_values: dict[str, str] = field(default_factory=dict)
    #: for_each keys (and each.value) per resource that has for_each, in file order
    for_each_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    source_map: SourceMap | None = field(default=None, repr=False)
    #: `notifications:` with `${var.*}`/`${env.*}` resolved (checked by `notify.targets.parse_entries`)
    notifications: list[Any] | None = None

    def location(self, *field_path: str | int) -> Location:
        """The best known location of a field path, walking up to the nearest recorded parent."""
        if self.source_map is None:
            return Location(str(self.path), field=".".join(str(p) for p in field_path) or None)
        return self.source_map.location(field_path)

    def sensitive_variables(self) -> frozenset[str]:
        """Names of the variables declared `sensitive: true`."""
        return frozenset(k for k, v in self.variables.items() if v.sensitive)

    def sensitive_texts(self) -> set[str]:
        """Every non-empty string (and number, as text) inside the values of sensitive variables."""
        out: set[str] = set()
        todo = [self.variable_values.get(k) for k in self.sensitive_variables()]
        while todo:
            item = todo.pop()
            if isinstance(item, dict):
                todo.extend(item.values())
            elif isinstance(item, list):
                todo.extend(item)
            elif isinstance(item, str | int | float) and not isinstance(item, bool) and str(item):
                out.add(str(item))
        return out

    def plan_hash(self) -> str:
        """sha256 over the file text and the chosen variable values (a saved plan's identity)."""
        h = hashlib.sha256(self.text.encode("utf-8"))
        h.update(b"\0")
        h.update(json.dumps(self.variable_values, sort_keys=True, separators=(",", ":"), default=str).encode())
        return h.hexdigest()
