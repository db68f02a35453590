"""Input limits: how large, deep and wide a plan (or variable file) may be before it is refused.

A plan can come from a pull request, so every dimension that costs memory or time is bounded.
Each limit has a default (README, "Limits") and an environment variable that raises it; this
module only reads those numbers, the loaders enforce them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from cloudorch.errors import ConfigError


@dataclass(frozen=True)
class InputLimits:
    """The bounds one load works within; `from_env()` gives the configured ones."""

    #: bytes of one plan or variable file
    max_bytes: int = 10 * 1024 * 1024
    #: nesting of mappings and sequences in one YAML document
    max_depth: int = 64
    #: YAML nodes produced by aliases (`*name`, `<<: *name`), counted over the whole document
    max_alias_nodes: int = 100_000
    #: resource instances of one plan, after `for_each` expansion
    max_instances: int = 100_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InputLimits:
        env = os.environ if env is None else env
        values = {}
        for field_name, var in ENV_VARS.items():
            text = env.get(var)
            if text is None or not text.strip():
                continue
            try:
                number = int(text.strip().replace("_", ""))
            except ValueError:
                number = 0
            if number <= 0:
                raise ConfigError(
                    f"{var}={text!r} is not a positive whole number",
                    hint=f"unset it to use the default ({getattr(cls, field_name):,})",
                )
            values[field_name] = number
        return cls(**values)


#: field -> the environment variable that sets it
ENV_VARS: dict[str, str] = {
    "max_bytes": "CLOUDORCH_MAX_PLAN_BYTES",
    "max_depth": "CLOUDORCH_MAX_YAML_DEPTH",
    "max_alias_nodes": "CLOUDORCH_MAX_YAML_ALIAS_NODES",
    "max_instances": "CLOUDORCH_MAX_INSTANCES",
}


def raise_hint(field_name: str) -> str:
    """How to raise one limit, for the hint of the error that hit it."""
    return f"if this input is trusted and meant to be this large, raise the limit with {ENV_VARS[field_name]}"
