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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from cloudorch.errors import Location
from cloudorch.planfile.blocks import DataSource, DataSpec, ImportSpec, ImportTarget, Move, MovedSpec
from cloudorch.planfile.locals import Locals
from cloudorch.planfile.source import SourceMap
from cloudorch.planfile.stackref import StackRefSpec
from cloudorch.planfile.stages import section_json_schema

VariableType = Literal["string", "number", "bool", "list", "map", "any"]

#: names of resources, variables and outputs: they appear in addresses like `prod.web[eu]`
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
#: provider block keys: `aws`, or an aliased block `aws.west`
PROVIDER_KEY_PATTERN = r"^[a-z][a-z0-9_]*(\.[A-Za-z0-9_-]+)?$"
#: names listed under `sensitive_env:` (what `${env.NAME}` accepts)
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _drop_empty(data: Any, keys: tuple[str, ...]) -> Any:
    """`section:` with nothing under it (YAML null) means an empty section, not an error."""
    if isinstance(data, dict):
        for key in keys:  # a loop, not any(): this runs once per resource of the plan
            if data.get(key, 0) is None:
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


#: the lifecycle of every resource that writes none: frozen, so one instance serves them all
#: (a default instance per resource cost a model validation each)
_NO_LIFECYCLE = Lifecycle()


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
    lifecycle: Lifecycle = Field(default_factory=lambda: _NO_LIFECYCLE, description="Replacement and protection rules.")
    enabled: bool | str | None = Field(
        None,
        description="false (or a `${...}` expression giving false, known at plan: var, env, local, each) "
        "leaves the resource (or that for_each instance) out of the plan; one in state is deleted.",
    )

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
        self._written_refs = tuple(
            # a stack is read output by output: `stacks`, `network.outputs.vpc_id`
            (r.root, ".".join(str(p) for p in r.path[:3]) if r.root == "stacks" else str(r.path[0]))
            for r in refs
            if r.root != "resources" and r.path
        )

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


class ModuleCallSpec(_Strict):
    """One use of a module: where its `module.yaml` comes from, its instances and its inputs."""

    source: str = Field(
        description="A folder holding `module.yaml`, relative to this file, or "
        "`git+https://HOST/REPO.git//SUB/DIR?ref=REF` (also `git+file://`, `git+ssh://`), pinned in `cloudorch.lock`."
    )
    for_each: Any = Field(
        None, description="A list of strings or a mapping (or `${var.x}`): one module instance per key."
    )
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="Values of the module's variables; may hold `${...}` references."
    )
    providers: dict[str, str] = Field(
        default_factory=dict,
        description="Provider blocks for the module's resources: the key they use in the module -> a block "
        "of this file, e.g. `{aws: aws.eu}` or `{aws: \"aws.${each.key}\"}`; by default the caller's.",
    )
    enabled: bool | str | None = Field(
        None,
        description="false (or a `${...}` known at load, which may read `each`) leaves the instance out of the "
        "plan: its resources are deleted. Default true.",
    )
    description: str = Field("", description="What this use of the module is for.")

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        return _drop_empty(data, ("inputs", "providers"))


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
    locals: dict[str, Any] = Field(
        default_factory=dict,
        description="Named values computed once, read as `${local.NAME}`; they may read var, env, "
        "resources and other locals.",
    )
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
    stacks: dict[Annotated[str, Field(pattern=NAME_PATTERN)], StackRefSpec] = Field(
        default_factory=dict,
        description="Other stacks whose outputs this plan reads as `${stacks.NAME.outputs.OUT}`, from their state.",
    )
    sensitive_env: list[Annotated[str, Field(pattern=ENV_NAME_PATTERN)]] = Field(
        default_factory=list,
        description="Environment variables whose `${env.NAME}` values are secret: masked like a sensitive variable.",
    )
    modules: dict[str, ModuleCallSpec] = Field(
        default_factory=dict, description="Module uses by name; their resources are addressed `module.NAME[KEY].RES`."
    )
    data: dict[str, DataSpec] = Field(
        default_factory=dict, description="Objects read, not managed (`${data.NAME.ATTR}`), by name."
    )
    moved: list[MovedSpec] = Field(default_factory=list, description="Addresses renamed without destroy + create.")
    imports: list[ImportSpec] = Field(default_factory=list, description="Existing objects to adopt into state.")
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
        data = _drop_empty(
            data,
            ("variables", "providers", "resources", "outputs", "sensitive_env", "stacks", "locals", "modules", "data",
             "moved", "imports"),
        )
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
    #: names of the environment variables declared under `sensitive_env:`
    sensitive_env: frozenset[str] = frozenset()
    #: `${stacks.NAME...}` values read at load: NAME -> {"outputs": {OUT: value}} (only those referenced)
    stack_values: dict[str, Any] = field(default_factory=dict)
    #: (stack, output) pairs read above whose output the stack declares sensitive
    stack_secrets: frozenset[tuple[str, str]] = frozenset()
    #: for_each keys (and each.value) per resource that has for_each, in file order
    for_each_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    source_map: SourceMap | None = field(default=None, repr=False)
    #: `locals:` as written, and their values (`cloudorch.planfile.locals`)
    locals: dict[str, Any] = field(default_factory=dict)
    local_values: Locals = field(default_factory=Locals, repr=False)
    #: addresses of the instances whose `enabled` is false: not in the plan, deleted from state
    disabled: frozenset[str] = frozenset()
    #: sha256 over the module files the plan uses (and their pinned commits); "" without modules
    modules_digest: str = ""
    #: outputs of module instances that resources with for_each name by `[each.key]`, by instance
    #: address (`module.net[eu]`); `expand` resolves them per resource instance
    module_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: `data:` entries, `moved:` and `imports:` (for_each expanded), checked (see `blocks.py`)
    data: dict[str, DataSource] = field(default_factory=dict)
    moves: list[Move] = field(default_factory=list)
    imports: list[ImportTarget] = field(default_factory=list)
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

    def has_secrets(self) -> bool:
        """True if any variable is sensitive or any `${env.*}` the plan reads is declared sensitive."""
        return (
            bool(self.sensitive_variables())
            or any(k in self.env_values for k in self.sensitive_env)
            or bool(self.stack_secrets)
        )

    def sensitive_texts(self) -> set[str]:
        """Every non-empty string (and number, as text) inside the values of sensitive variables
        and of the sensitive environment variables the plan reads."""
        out: set[str] = set()
        todo: list[Any] = [self.variable_values.get(k) for k in self.sensitive_variables()]
        todo += [self.env_values[k] for k in self.sensitive_env if k in self.env_values]
        todo += [self.stack_values[s]["outputs"][o] for s, o in self.stack_secrets]
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
        """sha256 over the file text, the chosen variable values, the module files, and the values
        read from elsewhere that a saved plan does not hold: sensitive `${env.*}` and other stacks'
        outputs (`apply FILE` computes them again and must get what was planned)."""
        h = hashlib.sha256(self.text.encode("utf-8"))
        h.update(b"\0")
        h.update(json.dumps(self.variable_values, sort_keys=True, separators=(",", ":"), default=str).encode())
        if self.modules_digest:  # a saved plan is stale when a module file it was made from changed
            h.update(b"\0" + self.modules_digest.encode())
        secret_env = {k: self.env_values[k] for k in sorted(self.sensitive_env) if k in self.env_values}
        if secret_env:
            h.update(b"\0env\0")
            h.update(json.dumps(secret_env, sort_keys=True, separators=(",", ":")).encode())
        if self.stack_values:  # another stack's outputs moved: what was planned is not what applies
            h.update(b"\0stacks\0")
            h.update(json.dumps(self.stack_values, sort_keys=True, separators=(",", ":"), default=str).encode())
        return h.hexdigest()
