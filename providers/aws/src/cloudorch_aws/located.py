"""Checks across the properties of one resource that still name the property at fault.

A pydantic `model_validator` that raises a plain ValueError reports no field, so the plan can only
point at the resource. These helpers raise a pydantic ValidationError carrying the field, so the
planner (cloudorch/engine/planner.py `validate_properties`) points at the property's line, and skips
the check while one of the values it reads is still unknown (then the apply checks it again).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError


def field_error(model: str, field: str, message: str, value: Any = None) -> ValidationError:
    """A validation error about `field` of `model` (a check that reads another field too)."""
    kind = PydanticCustomError("value_error", message)
    return ValidationError.from_exception_data(model, [InitErrorDetails(type=kind, loc=(field,), input=value)])


def field_missing(model: str, field: str, message: str) -> ValidationError:
    """`field` is required in this case: an error of pydantic's type `missing`, so a plan whose value
    for it is not known yet is not refused."""
    kind = PydanticCustomError("missing", message)
    return ValidationError.from_exception_data(model, [InitErrorDetails(type=kind, loc=(field,), input={})])
