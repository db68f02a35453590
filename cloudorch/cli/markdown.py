"""A changeset as a pull-request comment (`cloudorch plan --format markdown`).

Compact and collapsible: a headline with counts per action, then the table of changes, policy
verdicts and drift inside `<details>`. Stable across runs of the same plan (no times, serials or
durations; rows sorted), and it starts with a hidden marker naming the plan and stage, so a bot
can find its earlier comment and edit it in place instead of adding another.
"""

from __future__ import annotations

from typing import Any

from cloudorch import markdown as md
from cloudorch.api import Action, Change, ChangeSet

#: rows shown per table; the rest are counted (GitHub caps a comment at 65536 characters)
MAX_ROWS = 50
_ICON = {
    Action.CREATE: "🟢",
    Action.UPDATE: "🟡",
    Action.REPLACE: "🟣",
    Action.DELETE: "🔴",
    Action.NOOP: "⚪",
}
_ORDER = {Action.DELETE: 0, Action.REPLACE: 1, Action.UPDATE: 2, Action.CREATE: 3, Action.NOOP: 4}


def marker(cs: ChangeSet, *, sandbox: bool = False) -> str:
    """The hidden first line a bot searches for to update its comment: one per state document."""
    return f"<!-- cloudorch-plan: {cs.state_key}{' (sandbox)' if sandbox else ''} -->"


def _what(c: Change) -> str:
    if c.action in (Action.UPDATE, Action.REPLACE) and c.diff:
        paths = [d.path + (" (forces replacement)" if d.force_new else "") for d in c.diff]
        return ", ".join(md.code(p) for p in paths[:6]) + (f" +{len(paths) - 6}" if len(paths) > 6 else "")
    return md.text("; ".join(c.reasons))


def _changes(cs: ChangeSet) -> list[str]:
    changes = sorted((c for c in cs.changes if c.is_change), key=lambda c: (_ORDER[c.action], c.address))
    if not changes:
        return []
    lines = [
        f"<details><summary>Changes ({len(changes)})</summary>",
        "",
        "| | action | address | type | what |",
        "|---|---|---|---|---|",
    ]
    for c in changes[:MAX_ROWS]:
        row = [_ICON[c.action], c.action.value, md.code(c.address), md.code(c.type), _what(c)]
        lines.append("| " + " | ".join(row) + " |")
    if len(changes) > MAX_ROWS:
        lines.append(f"\n…and {len(changes) - MAX_ROWS} more (`cloudorch plan --json` lists them all).")
    return [*lines, "", "</details>", ""]


def _policies(cs: ChangeSet) -> list[str]:
    if not cs.policy_results:
        return []
    from cloudorch.api import PolicyReport

    report = PolicyReport.from_results(cs.policy_results)
    violations = sorted(report.violations, key=lambda v: (v.policy_id, v.subject, v.message))

    def verdict(v: Any) -> str:
        if report.is_overridden(v):
            return "⏭️ overridden"
        return "⚠️ advisory" if v.level.value == "advisory" else "❌ denied"

    blocked = any(verdict(v) == "❌ denied" for v in violations)
    head = "❌ blocked" if blocked else "⚠️ passed with warnings"
    lines = [
        f"<details{' open' if blocked else ''}><summary>Policies: {head} ({len(violations)} violation(s))</summary>",
        "",
        "| verdict | level | policy | address | message |",
        "|---|---|---|---|---|",
    ]
    for v in violations[:MAX_ROWS]:
        lines.append(
            f"| {verdict(v)} | {v.level.value} | {md.code(v.policy_id)} | {md.code(v.subject)} | {md.text(v.message)} |"
        )
    if len(violations) > MAX_ROWS:
        lines.append(f"\n…and {len(violations) - MAX_ROWS} more.")
    return [*lines, "", "</details>", ""]


def _drift(cs: ChangeSet) -> list[str]:
    drift = sorted((c for c in cs.changes if c.drift), key=lambda c: c.address)
    if not drift:
        return []
    lines = [
        f"<details open><summary>Drift: {len(drift)} resource(s) changed outside cloudorch</summary>",
        "",
        "| address | type | what differs |",
        "|---|---|---|",
    ]
    for c in drift[:MAX_ROWS]:
        lines.append(f"| {md.code(c.address)} | {md.code(c.type)} | {md.text('; '.join(c.reasons) or 'differs')} |")
    return [*lines, "", "</details>", ""]


def render(cs: ChangeSet, *, stage: str | None = None, sandbox: bool = False) -> str:
    """The whole comment, ending in a newline."""
    cs = cs.masked()
    n = cs.counts()
    verb = "destroy plan" if cs.destroy else "plan"
    where = f" · stage {md.code(stage)}" if stage else ""
    where += " · 🧪 sandbox" if sandbox else ""
    if cs.has_changes:
        counts = (
            f"**{n['create']}** to create · **{n['update']}** to update · "
            f"**{n['replace']}** to replace · **{n['delete']}** to destroy"
        )
    else:
        counts = "**No changes.** The cloud matches the plan file."
    policy = [r for r in cs.policy_results if r]
    drift = sum(1 for c in cs.changes if c.drift)
    extras = []
    if policy:
        extras.append(f"{len(policy)} policy violation(s)")
    if drift:
        extras.append(f"{drift} drifted")
    if cs.imports:
        extras.append(f"{len(cs.imports)} to import")
    if cs.moves:
        extras.append(f"{len(cs.moves)} to move")
    lines = [
        marker(cs, sandbox=sandbox),
        f"### cloudorch {verb}: {md.code(cs.plan_name)}{where}",
        "",
        counts + (" · " + " · ".join(extras) if extras else ""),
        "",
        *_changes(cs),
        *_policies(cs),
        *_drift(cs),
    ]
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"
