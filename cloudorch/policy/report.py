"""A `PolicyReport`: the violations of one evaluation, which of them block, and overrides.

Owns enforcement levels (advisory never blocks, mandatory blocks unless overridden with a
reason, hard always blocks) and the audit events an override leaves in state. Rendering lives in
`formats`; the report itself never prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cloudorch.errors import ConfigError
from cloudorch.policy import formats
from cloudorch.policy.actor import current_actor
from cloudorch.policy.model import (
    Level,
    Override,
    OverrideRefusedError,
    PolicyBlockedError,
    PolicyInfo,
    Violation,
)
from cloudorch.state.model import StateEvent

#: what `to_sarif` asks the caller: where an address is written in the plan file
Locate = Callable[[str | None], "tuple[str, int | None] | None"]


def _ids(overrides: Mapping[str, str] | Iterable[str] | None) -> set[str]:
    return set(overrides or ())


@dataclass
class PolicyReport:
    policies: list[PolicyInfo]
    violations: list[Violation]
    #: policy id -> addresses it judged ("" = the changeset as a whole); for JUnit and pass counts
    checked: Mapping[str, Sequence[str]] = field(default_factory=dict)
    when: str = "plan"
    stage: str | None = None
    plan_file: str | None = None
    duration: float = 0.0
    overrides: dict[str, Override] = field(default_factory=dict)

    # -- enforcement ------------------------------------------------------------------------
    def is_overridden(self, violation: Violation, extra: Iterable[str] = ()) -> bool:
        return violation.level is Level.MANDATORY and (
            violation.policy_id in self.overrides or violation.policy_id in set(extra)
        )

    def blocking(self, overrides: Mapping[str, str] | Iterable[str] | None = None) -> list[Violation]:
        """Violations that stop the run: every hard one, and mandatory ones not overridden."""
        extra = _ids(overrides)
        return [
            v
            for v in self.violations
            if v.level is Level.HARD or (v.level is Level.MANDATORY and not self.is_overridden(v, extra))
        ]

    def warnings(self, overrides: Mapping[str, str] | Iterable[str] | None = None) -> list[Violation]:
        """Violations reported but not blocking: advisory ones and overridden mandatory ones."""
        blocking = {id(v) for v in self.blocking(overrides)}
        return [v for v in self.violations if id(v) not in blocking]

    @property
    def passed(self) -> bool:
        return not self.blocking()

    def apply_overrides(
        self,
        overrides: Mapping[str, str],
        actor: str | None = None,
        *,
        now: datetime | None = None,
    ) -> list[StateEvent]:
        """Waive mandatory policies for this run (`--override ID --reason TEXT`).

        Raises OverrideRefusedError (exit 3) for a hard policy, ConfigError for an unknown id or an
        empty reason. Returns one `policy_override` StateEvent per override that waived at least one
        violation, for the caller to append to state (the audit trail shown in history).
        """
        known = {p.id: p for p in self.policies}
        who = current_actor()
        actor_name = actor or who.name
        at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
        for policy_id, reason in overrides.items():
            info = known.get(policy_id)
            if info is None:
                raise ConfigError(
                    f"--override {policy_id}: no policy has this id",
                    hint=f"policy ids: {', '.join(sorted(known)) or '(none loaded)'}",
                )
            if info.level is Level.HARD or any(
                v.level is Level.HARD for v in self.violations if v.policy_id == policy_id
            ):
                raise OverrideRefusedError(
                    f"policy {policy_id} is hard and cannot be overridden",
                    hint="fix the violation, or ask the policy's owner to change its level",
                )
            if not (reason or "").strip():
                raise ConfigError(
                    f"--override {policy_id} needs a reason",
                    hint=f'add --reason "why {policy_id} may be waived this time"',
                )
        events: list[StateEvent] = []
        for policy_id, reason in overrides.items():
            self.overrides[policy_id] = Override(policy_id, reason.strip(), actor_name, at)
            waived = [v for v in self.violations if v.policy_id == policy_id and v.level is Level.MANDATORY]
            if not waived:
                continue
            events.append(
                StateEvent(
                    kind="policy_override",
                    at=at,
                    actor=actor_name,
                    detail={
                        "policy_id": policy_id,
                        "reason": reason.strip(),
                        "actor_source": who.source if actor is None else "given",
                        "when": self.when,
                        "stage": self.stage,
                        "plan_file": self.plan_file,
                        "violations": [{"address": v.address, "message": v.message} for v in waived],
                    },
                )
            )
        return events

    def raise_if_blocked(self, overrides: Mapping[str, str] | Iterable[str] | None = None) -> None:
        """Raise PolicyBlockedError (exit 3) listing each blocking violation."""
        blocking = self.blocking(overrides)
        if not blocking:
            return
        mandatory = sorted({v.policy_id for v in blocking if v.level is Level.MANDATORY})
        hint = (
            f'waive a mandatory policy with --override {mandatory[0]} --reason "..."' if mandatory else None
        )
        raise PolicyBlockedError(blocking, hint=hint)

    # -- persistence ------------------------------------------------------------------------
    @property
    def results(self) -> list[dict[str, Any]]:
        """One dict per violation, for `ChangeSet.policy_results` (and so a saved plan)."""
        out = []
        for v in self.violations:
            row = v.to_dict()
            override = self.overrides.get(v.policy_id) if self.is_overridden(v) else None
            row["overridden"] = override.to_dict() if override else None
            row["blocking"] = v.level is Level.HARD or (v.level is Level.MANDATORY and override is None)
            out.append(row)
        return out

    @classmethod
    def from_results(
        cls, results: Sequence[Mapping[str, Any]], policies: Sequence[PolicyInfo] = ()
    ) -> PolicyReport:
        """Rebuild a report from `ChangeSet.policy_results` (to show a saved plan's policy results)."""
        violations = [Violation.from_dict(dict(r)) for r in results]
        report = cls(policies=list(policies), violations=violations)
        for r in results:
            o = r.get("overridden")
            if o:
                report.overrides[o["policy_id"]] = Override(o["policy_id"], o["reason"], o["actor"], o["at"])
        return report

    def counts(self) -> dict[str, int]:
        blocking = self.blocking()
        return {
            "policies": len(self.policies),
            "violations": len(self.violations),
            "blocking": len(blocking),
            "advisory": sum(v.level is Level.ADVISORY for v in self.violations),
            "overridden": sum(self.is_overridden(v) for v in self.violations),
            "hard": sum(v.level is Level.HARD for v in blocking),
            "mandatory": sum(v.level is Level.MANDATORY for v in blocking),
        }

    # -- rendering (see formats.py) ---------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return formats.to_json(self)

    def to_sarif(self, locate: Locate | None = None) -> dict[str, Any]:
        return formats.to_sarif(self, locate)

    def to_junit(self) -> str:
        return formats.to_junit(self)

    def to_markdown(self) -> str:
        return formats.to_markdown(self)

    def to_text(self) -> str:
        return formats.to_text(self)

    def render(self, fmt: str, locate: Locate | None = None) -> str:
        """The text of `--policy-report FORMAT=FILE` for one of json, sarif, junit, markdown, text."""
        return formats.render(self, fmt, locate)
