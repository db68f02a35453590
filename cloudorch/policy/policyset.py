"""A `PolicySet`: the loaded policies of one command, evaluated against an `input` document.

The Rego input is built first (building it needs the GIL), then the Rego rules run in regopy
threads (which release it) while the built-in rules run in Python; both feed one `PolicyReport`.
`check_resource` re-checks one change whose unknown values became known at apply. Deciding what
blocks is the report's job, not this module's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from cloudorch.changes import Change
from cloudorch.policy.builtin import BuiltinRule
from cloudorch.policy.document import build_change_input, judged_changes
from cloudorch.policy.model import PolicyInfo, Violation
from cloudorch.policy.rego import RegoEngine
from cloudorch.policy.report import PolicyReport


class PolicySet:
    def __init__(self, policies: Sequence[PolicyInfo], builtins: Sequence[BuiltinRule], rego: RegoEngine | None):
        self.policies = list(policies)
        self.builtins = list(builtins)
        self.rego = rego

    def __len__(self) -> int:
        return len(self.policies)

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.policies]

    def _run_builtins(
        self, doc: Mapping[str, Any], *, resource_only: bool = False
    ) -> tuple[list[Violation], dict[str, Sequence[str]]]:
        violations: list[Violation] = []
        checked: dict[str, Sequence[str]] = {}
        stage = doc.get("stage")
        for rule in self.builtins:
            if (resource_only and rule.scope != "resource") or not rule.match.stage_ok(stage):
                continue
            subjects = rule.subjects(doc)
            info = rule.info
            findings = rule.check_changeset(subjects, doc)
            if rule.scope == "changeset":
                checked[info.id] = [] if not subjects else [""]  # "" = the changeset as a whole
            else:
                checked[info.id] = [c["address"] for c in subjects]
            violations.extend(
                Violation(
                    policy_id=info.id,
                    level=info.level,
                    message=msg,
                    address=address,
                    kind=info.kind,
                    source=info.source,
                    line=info.line,
                    details=details,
                )
                for address, msg, details in findings
            )
        return violations, checked

    def evaluate(self, doc: Mapping[str, Any]) -> PolicyReport:
        """Every policy once over `doc` (from `build_input`, `build_state_input`, ...)."""
        start = time.perf_counter()
        rego_violations: list[Violation] = []
        if self.rego is not None and self.rego.rules:
            run = self.rego.start(doc)
            violations, checked = self._run_builtins(doc)
            rego_violations = run.result()
        else:
            violations, checked = self._run_builtins(doc)
        if self.rego is not None:
            judged: Sequence[str] = [c["address"] for c in judged_changes(doc)]
            for info in self.policies:
                if info.kind == "rego":
                    checked[info.id] = judged
        violations.extend(rego_violations)
        return PolicyReport(
            policies=self.policies,
            violations=violations,
            checked=checked,
            when=str(doc.get("when") or "plan"),
            stage=doc.get("stage"),
            plan_file=(doc.get("plan") or {}).get("file") or None,
            duration=time.perf_counter() - start,
        )

    def check_resource(self, change: Change, *, input_doc: Mapping[str, Any] | None = None) -> PolicyReport:
        """Re-check one change at apply once its values are known (call after the resource is created).

        Runs the per-resource built-ins and every Rego rule over a one-change input (cheap: no
        threads, a tiny document). Changeset-wide rules (max_changes, change_window) ran at plan and
        are skipped. `input_doc` is the plan-time document: its stage, release, user, time are kept.
        Only violations about this change's address are returned.
        """
        start = time.perf_counter()
        doc = build_change_input(change, input_doc)
        violations, checked = self._run_builtins(doc, resource_only=True)
        if self.rego is not None:
            for v in self.rego.evaluate(doc, {change.address}, parallel=False):
                if v.address == change.address:
                    violations.append(v)
            for info in self.policies:
                if info.kind == "rego":
                    checked[info.id] = [change.address]
        return PolicyReport(
            policies=self.policies,
            violations=[v for v in violations if v.address == change.address],
            checked=checked,
            when="apply",
            stage=doc.get("stage"),
            plan_file=(doc.get("plan") or {}).get("file") or None,
            duration=time.perf_counter() - start,
        )
