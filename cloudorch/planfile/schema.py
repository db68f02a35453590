"""JSON Schema (draft 2020-12) of plan files, for `cloudorch schema` and editors.

This module owns the export only: the plan file models' own schema, plus each installed
resource type's Properties under an `if type == T then properties: ...` branch. Property values
may always be a `${...}` expression string instead of their declared type; so may `enabled`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from cloudorch.errors import ProviderNotFoundError
from cloudorch.planfile.model import PlanFileModel
from cloudorch.provider.contract import ResourceType
from cloudorch.provider.registry import Registry

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_EXPRESSION = {
    "type": "string",
    "pattern": r"\$\{[^}]+\}",
    "description": "A `${...}` reference (`${var.x}`, `${local.x}`, `${resources.NAME.ATTR}`) or CEL expression "
    "(`${var.prod ? 3 : 1}`, `${upper(var.name)}`), resolved when the plan is loaded, planned or applied.",
}


def _installed_types(registry: Registry) -> list[type[ResourceType[Any]]]:
    out: list[type[ResourceType[Any]]] = []
    for name in registry.names():
        try:
            out.extend(registry.provider_class(name).resource_types)
        except ProviderNotFoundError:
            continue  # a broken plugin must not hide the schema of the others
    return sorted(out, key=lambda t: t.type_name)


def _allow_expressions(properties_schema: dict[str, Any]) -> dict[str, Any]:
    props = properties_schema.get("properties", {})
    for name, sub in list(props.items()):
        props[name] = {"anyOf": [sub, {"$ref": "#/$defs/Expression"}], **_doc_of(sub)}
    return properties_schema


def _doc_of(sub: dict[str, Any]) -> dict[str, Any]:
    return {k: sub[k] for k in ("title", "description", "default") if k in sub}


def _output_shorthand(schema: dict[str, Any]) -> None:
    """`name: "${...}"` is short for `name: {value: "${...}"}` (OutputSpec._shorthand)."""
    schema["properties"] = dict(schema["properties"])
    output_ref = schema["properties"]["outputs"]["additionalProperties"]
    schema["properties"]["outputs"] = {
        **schema["properties"]["outputs"],
        "additionalProperties": {
            "anyOf": [
                output_ref,
                {"type": ["string", "number", "boolean", "array", "null"]},
                {"type": "object", "not": {"required": ["value"]}},
            ]
        },
    }


def module_json_schema(registry: Registry) -> dict[str, Any]:
    """The JSON Schema of a module file (`module.yaml`), sharing the plan schema's definitions."""
    plan = plan_json_schema(registry)
    defs = plan["$defs"]
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "cloudorch module file",
        **{k: v for k, v in defs["ModuleFile"].items() if k != "title"},
        "$defs": defs,
    }


def plan_json_schema(registry: Registry) -> dict[str, Any]:
    """The JSON Schema of a plan file, with every installed resource type's properties.

    `$defs.ModuleFile` is the schema of a module's `module.yaml` (see `module_json_schema`).
    """
    from cloudorch.planfile.modules import ModuleFileModel

    types = _installed_types(registry)
    models: list[type[BaseModel]] = [PlanFileModel, ModuleFileModel, *(t.Properties for t in types)]
    key_map, defs = models_json_schema([(m, "validation") for m in models], ref_template="#/$defs/{model}")
    all_defs: dict[str, Any] = dict(defs.get("$defs", {}))
    root_ref = key_map[(PlanFileModel, "validation")]["$ref"].rsplit("/", 1)[-1]
    schema: dict[str, Any] = dict(all_defs.pop(root_ref))
    all_defs["Expression"] = _EXPRESSION

    branches: list[dict[str, Any]] = []
    for t in types:
        ref_name = key_map[(t.Properties, "validation")]["$ref"].rsplit("/", 1)[-1]
        all_defs[ref_name] = _allow_expressions(dict(all_defs[ref_name]))
        branches.append(
            {
                "if": {"properties": {"type": {"const": t.type_name}}, "required": ["type"]},
                "then": {
                    "description": t.description,
                    "properties": {"properties": {"$ref": f"#/$defs/{ref_name}"}},
                },
            }
        )
    resource = dict(all_defs.get("ResourceSpec", {}))
    if resource:
        resource["properties"] = dict(resource["properties"])
        type_schema = dict(resource["properties"]["type"])
        if types:
            type_schema["enum"] = [t.type_name for t in types]
        resource["properties"]["type"] = type_schema
        resource["allOf"] = branches
        if "enabled" in resource["properties"]:
            # `enabled` is a bool or an expression giving one, never any other string
            enabled = resource["properties"]["enabled"]
            resource["properties"]["enabled"] = {
                "anyOf": [{"type": "boolean"}, {"$ref": "#/$defs/Expression"}, {"type": "null"}],
                **_doc_of(enabled),
            }
        all_defs["ResourceSpec"] = resource

    _output_shorthand(schema)
    module_ref = key_map[(ModuleFileModel, "validation")]["$ref"].rsplit("/", 1)[-1]
    module = dict(all_defs.pop(module_ref))
    _output_shorthand(module)
    all_defs["ModuleFile"] = module
    data_spec = all_defs.get("DataSpec")
    if data_spec and types:  # a data source's type is one that offers `lookup` (contract 2.2)
        data_spec["properties"] = dict(data_spec["properties"])
        data_spec["properties"]["type"] = {
            **data_spec["properties"]["type"],
            "enum": [t.type_name for t in types if t.lookup is not ResourceType.lookup],
        }
    schema["$defs"] = all_defs
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "cloudorch plan file",
        **{k: v for k, v in schema.items() if k != "title"},
    }
