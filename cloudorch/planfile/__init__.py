"""The plan file: loading and validating YAML, references, for_each expansion, JSON Schema.

This package owns everything between a plan file on disk and a list of resource instances with
located errors; it never talks to a cloud and never prints. The engine imports the names below;
the modules behind them are private to this package.
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
