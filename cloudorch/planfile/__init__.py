"""The plan file: YAML loading with located errors, references, for_each expansion, the stages and
release grammar (`stages`), type checks against the providers' models, JSON Schema.

It never talks to a cloud, reads state or prints; it imports only `errors`, `graph` and `provider`,
never `state`, `policy`, `engine`, `run`, `release`, `api` or `cli`.
"""

from cloudorch.planfile.expand import Instance, expand
from cloudorch.planfile.expressions import (
    ExpressionError,
    Reference,
    Unknown,
    contains_unknown,
    find_refs,
    navigate,
    resolve,
    unknown_paths,
)
from cloudorch.planfile.load import load_plan, load_plan_text
from cloudorch.planfile.model import Lifecycle, OutputSpec, PlanSpec, ResourceSpec, VariableSpec
from cloudorch.planfile.schema import plan_json_schema
from cloudorch.planfile.typecheck import check_types

__all__ = [
    "ExpressionError",
    "Instance",
    "Lifecycle",
    "OutputSpec",
    "PlanSpec",
    "Reference",
    "ResourceSpec",
    "Unknown",
    "VariableSpec",
    "check_types",
    "contains_unknown",
    "expand",
    "find_refs",
    "load_plan",
    "load_plan_text",
    "navigate",
    "plan_json_schema",
    "resolve",
    "unknown_paths",
]
