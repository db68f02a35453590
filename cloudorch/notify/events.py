"""The events a run can raise, and what each means (the table in docs/notifications.md)."""

from __future__ import annotations

EVENTS: dict[str, str] = {
    "apply.succeeded": "an apply or destroy finished with every operation done",
    "apply.failed": "an apply or destroy ended with failed operations or an error",
    "apply.rolled_back": "a failed apply was undone (--on-failure=rollback)",
    "drift.detected": "drift is new or changed since the last drift run on this stage",
    "drift.resolved": "the drift the last drift run saw is gone",
    "policy.blocked": "a policy denied the plan, the apply or a promotion",
    "policy.overridden": "a mandatory policy was waived with --override",
    "release.awaiting_approval": "a promotion waits for approvals",
    "release.promoted": "a version was promoted into a stage",
    "release.rejected": "a version was rejected",
    "release.rolled_back": "a stage was rolled back to an earlier version",
    "recover.needed": "a run left a journal that `cloudorch recover` must fold into state",
}
