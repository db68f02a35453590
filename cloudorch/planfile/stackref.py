"""Cross-stack references: the `stacks:` section and the values `${stacks.NAME.outputs.OUT}` reads.

A plan names the stacks it reads (`stacks: {network: {plan: ../network/plan.yaml, stage: prod}}`);
their outputs are read from each stack's state when the plan is loaded, so a reference to them is
as known at plan time as a variable. This module owns the shape of a reference and of what a
reader returns; reading state is the caller's (`cloudorch.run.stacks`): the plan-file layer never
reads state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StackRefSpec(BaseModel):
    """One stack this plan reads outputs from."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    plan: str = Field(description="The stack's plan file, relative to this plan file's folder.")
    stage: str | None = Field(None, description="The release stage whose state to read (plans with `stages:`).")
    vars: dict[str, str] = Field(
        default_factory=dict,
        description="`--var` values the stack's plan file needs to be loaded (its required variables).",
    )

    def plan_path(self, base: Path) -> Path:
        """The stack's plan file, resolved against the folder of the plan that reads it."""
        return (base / self.plan).resolve()


@dataclass(frozen=True)
class StackOutput:
    """One output of another stack as its state records it.

    A sensitive output's clear value is not in state (a hash is): `reveal` computes it again, and
    is called only for an output a plan references."""

    value: Any
    sensitive: bool = False
    reveal: Callable[[], Any] | None = field(default=None, compare=False, repr=False)

    def clear_value(self) -> Any:
        return self.reveal() if self.reveal is not None else self.value


#: (stack name, its spec, folder of the reading plan) -> the stack's outputs by name
StackReader = Callable[[str, StackRefSpec, Path], Mapping[str, StackOutput]]


class StackReadError(Exception):
    """A reader could not give a stack's outputs; the loader adds where the reference was written."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
