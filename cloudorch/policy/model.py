"""The nouns of policy checking: levels, policies, violations, overrides, and their errors.

Plain data only. Loading policies is `loader`'s job, evaluating them `policyset`'s, and
rendering results `formats`'; nothing here touches files, Rego or the terminal.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cloudorch.errors import ConfigError, Location, PolicyDeniedError


class Level(enum.StrEnum):
    """How a violation is enforced: reported only, blocking unless overridden, or always blocking."""

    ADVISORY = "advisory"  # reported, never blocks
    MANDATORY = "mandatory"  # blocks unless overridden with a recorded reason
    HARD = "hard"  # blocks; cannot be overridden

    @classmethod
    def parse(cls, value: object, *, where: str) -> Level:
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise PolicyLoadError(
                f"{where}: unknown policy level {value!r}",
                hint="use one of: advisory, mandatory, hard",
            ) from None


#: the address reported for a violation of the changeset as a whole (max_changes, change_window)
CHANGESET_SUBJECT = "(changeset)"


@dataclass(frozen=True)
class PolicyInfo:
    """One policy as loaded: what it is called, how it is enforced, where it was written."""

    id: str
    level: Level
    kind: str  # the built-in rule name (`required_tags`) or `rego`
    source: str | None = None  # file the policy came from; None for an inline plan-file entry
    line: int | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "level": self.level.value,
            "kind": self.kind,
            "source": self.source,
            "line": self.line,
            "description": self.description,
        }


@dataclass(frozen=True)
class Violation:
    """One policy failing for one address (or for the changeset as a whole when `address` is None)."""

    policy_id: str
    level: Level
    message: str
    address: str | None = None
    kind: str = ""  # built-in rule name, or `rego:<package>.<rule>`
    source: str | None = None
    line: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return self.address if self.address is not None else CHANGESET_SUBJECT

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy_id": self.policy_id,
            "level": self.level.value,
            "address": self.address,
            "message": self.message,
            "kind": self.kind,
            "source": self.source,
            "line": self.line,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Violation:
        return cls(
            policy_id=str(raw["policy_id"]),
            level=Level(raw["level"]),
            message=str(raw.get("message", "")),
            address=raw.get("address"),
            kind=str(raw.get("kind", "")),
            source=raw.get("source"),
            line=raw.get("line"),
            details=dict(raw.get("details") or {}),
        )

    def __str__(self) -> str:
        return f"{self.policy_id} [{self.level.value}] {self.subject}: {self.message}"


@dataclass(frozen=True)
class Override:
    """A mandatory policy waived for one run: who, why, when."""

    policy_id: str
    reason: str
    actor: str
    at: str

    def to_dict(self) -> dict[str, Any]:
        return {"policy_id": self.policy_id, "reason": self.reason, "actor": self.actor, "at": self.at}


@dataclass(frozen=True)
class RegoTestResult:
    """The outcome of one Rego `test_*` rule (`cloudorch policy test PATH`)."""

    name: str  # `data.<package>.test_x`
    file: str
    line: int | None
    passed: bool
    skipped: bool = False
    error: str | None = None


class PolicyLoadError(ConfigError):
    """A policy file or entry is wrong (syntax error, unknown rule, bad option); exit 1."""


class PolicyEvaluationError(ConfigError):
    """A policy failed while running (e.g. a Rego runtime error); never treated as a pass."""


class OverrideRefusedError(PolicyDeniedError):
    """`--override` named a hard policy; hard policies cannot be overridden (exit 3)."""


class PolicyBlockedError(PolicyDeniedError):
    """Mandatory or hard violations stand; carries them so the CLI can print each one (exit 3)."""

    def __init__(self, violations: Sequence[Violation], *, hint: str | None = None) -> None:
        self.violations = list(violations)
        lines = "\n".join(f"  {v}" for v in self.violations)
        n = len(self.violations)
        super().__init__(f"denied by policy: {n} blocking violation{'s' * (n != 1)}\n{lines}", hint=hint)


def location_of(source: str | None, line: int | None) -> Location | None:
    return None if source is None else Location(source, line)
