"""Policy report formats: json, sarif (2.1.0, for code scanning), junit (CI test tabs), markdown
(pull-request comments, $GITHUB_STEP_SUMMARY) and text (the terminal).

Pure functions from a `PolicyReport` to a document or a string; they never write files or
print — `--policy-report FORMAT=FILE` writing is the CLI's job.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cloudorch import __version__
from cloudorch import markdown as md
from cloudorch.errors import ConfigError
from cloudorch.policy.model import CHANGESET_SUBJECT, Level, Violation

if TYPE_CHECKING:
    from cloudorch.policy.report import PolicyReport

FORMATS = ("json", "sarif", "junit", "markdown", "text")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/cloudorch/cloudorch"
MARKDOWN_ROWS = 200

LocateFn = Callable[[str | None], "tuple[str, int | None] | None"]


def _status(report: PolicyReport, v: Violation) -> str:
    if report.is_overridden(v):
        return "overridden"
    return "warning" if v.level is Level.ADVISORY else "denied"


def _sorted(report: PolicyReport) -> list[Violation]:
    order = {Level.HARD: 0, Level.MANDATORY: 1, Level.ADVISORY: 2}
    return sorted(
        report.violations,
        key=lambda v: (report.is_overridden(v), order[v.level], v.policy_id, v.subject, v.message),
    )


def to_json(report: PolicyReport) -> dict[str, Any]:
    return {
        "format_version": 1,
        "cloudorch_version": __version__,
        "when": report.when,
        "stage": report.stage,
        "plan_file": report.plan_file,
        "passed": report.passed,
        "summary": report.counts(),
        "duration_seconds": round(report.duration, 4),
        "policies": [p.to_dict() for p in report.policies],
        "violations": report.results,
        "overrides": [o.to_dict() for o in report.overrides.values()],
    }


def _sarif_level(report: PolicyReport, v: Violation) -> str:
    if report.is_overridden(v) or v.level is Level.ADVISORY:
        return "warning"
    return "error"


def _uri(path: str) -> str:
    return path.replace("\\", "/")


def to_sarif(report: PolicyReport, locate: LocateFn | None = None) -> dict[str, Any]:
    """SARIF 2.1.0. Each result is placed where `locate(address)` says the resource is written in
    the plan file (`locate(None)` for changeset-wide results), else at the policy's own file, else
    at the plan file's first line."""
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for p in report.policies:
        index[p.id] = len(rules)
        rules.append(
            {
                "id": p.id,
                "name": p.kind,
                "shortDescription": {"text": p.description or f"{p.kind} policy {p.id}"},
                "defaultConfiguration": {"level": "warning" if p.level is Level.ADVISORY else "error"},
                "properties": {"enforcement": p.level.value, "kind": p.kind},
            }
        )
    results = []
    for v in _sorted(report):
        if v.policy_id not in index:  # e.g. a Rego result naming its own id
            index[v.policy_id] = len(rules)
            rules.append({"id": v.policy_id, "shortDescription": {"text": v.kind or v.policy_id}})
        place = locate(v.address) if locate is not None else None
        if place is None and v.source is not None:
            place = (v.source, v.line)
        if place is None:
            place = (report.plan_file or "cloudorch.yaml", 1)
        physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(place[0])}}
        if place[1] is not None and place[1] >= 1:
            physical["region"] = {"startLine": place[1]}
        location: dict[str, Any] = {"physicalLocation": physical}
        if v.address is not None:
            location["logicalLocations"] = [{"fullyQualifiedName": v.address, "kind": "resource"}]
        text = f"{v.subject}: {v.message}" if v.address is not None else v.message
        fingerprint = hashlib.sha256(f"{v.policy_id}\0{v.subject}\0{v.message}".encode()).hexdigest()
        result: dict[str, Any] = {
            "ruleId": v.policy_id,
            "ruleIndex": index[v.policy_id],
            "level": _sarif_level(report, v),
            "message": {"text": text},
            "locations": [location],
            "partialFingerprints": {"cloudorchPolicy/v1": fingerprint},
            "properties": {"enforcement": v.level.value, "address": v.address, "details": v.details},
        }
        override = report.overrides.get(v.policy_id) if report.is_overridden(v) else None
        if override is not None:
            result["suppressions"] = [
                {
                    "kind": "external",
                    "status": "accepted",
                    "justification": f"overridden by {override.actor}: {override.reason}",
                }
            ]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "cloudorch",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }


def to_junit(report: PolicyReport) -> str:
    """One testsuite per policy, one testcase per policy x resource it judged."""
    by_policy: dict[str, list[Violation]] = {}
    for v in report.violations:
        by_policy.setdefault(v.policy_id, []).append(v)
    levels = {p.id: p.level for p in report.policies}
    policy_ids = [p.id for p in report.policies] + [pid for pid in by_policy if pid not in levels]
    root = ET.Element("testsuites", name="cloudorch policy")
    total = failures = 0
    for pid in policy_ids:
        subjects = [s or CHANGESET_SUBJECT for s in report.checked.get(pid, ())]
        found = by_policy.get(pid, [])
        subjects = list(dict.fromkeys([*subjects, *(v.subject for v in found)]))
        per_subject: dict[str, list[Violation]] = {}
        for v in found:
            per_subject.setdefault(v.subject, []).append(v)
        suite = ET.SubElement(root, "testsuite", name=pid)
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="level", value=levels.get(pid, Level.MANDATORY).value)
        suite_failures = 0
        for subject in subjects:
            case = ET.SubElement(suite, "testcase", classname=f"policy.{pid}", name=subject, time="0")
            vs = per_subject.get(subject, [])
            blocking = [v for v in vs if _status(report, v) == "denied"]
            if blocking:
                suite_failures += 1
                failure = ET.SubElement(
                    case, "failure", message=blocking[0].message, type=blocking[0].level.value
                )
                failure.text = "\n".join(f"[{v.level.value}] {v.message}" for v in blocking)
            others = [v for v in vs if v not in blocking]
            if others:
                out = ET.SubElement(case, "system-out")
                out.text = "\n".join(_note(report, v) for v in others)
        suite.set("tests", str(len(subjects)))
        suite.set("failures", str(suite_failures))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        total += len(subjects)
        failures += suite_failures
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", "0")
    root.set("time", f"{report.duration:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _note(report: PolicyReport, v: Violation) -> str:
    override = report.overrides.get(v.policy_id) if report.is_overridden(v) else None
    if override is not None:
        return f"OVERRIDDEN by {override.actor} ({override.reason}): {v.message}"
    return f"WARNING [{v.level.value}]: {v.message}"





def to_markdown(report: PolicyReport) -> str:
    c = report.counts()
    head = "❌ blocked" if not report.passed else ("⚠️ passed with warnings" if report.violations else "✅ passed")
    lines = [
        f"### cloudorch policy check: {head}",
        "",
        f"{c['policies']} policies · {c['blocking']} blocking · {c['advisory']} advisory · "
        f"{c['overridden']} overridden" + (f" · stage `{report.stage}`" if report.stage else ""),
        "",
    ]
    if report.violations:
        lines += ["| | Level | Policy | Address | Message |", "|---|---|---|---|---|"]
        icon = {"denied": "❌", "warning": "⚠️", "overridden": "⏭️"}
        rows = _sorted(report)
        for v in rows[:MARKDOWN_ROWS]:
            status = _status(report, v)
            msg = md.text(v.message)
            override = report.overrides.get(v.policy_id) if status == "overridden" else None
            if override is not None:
                msg += f" _(overridden by {md.text(override.actor)}: {md.text(override.reason)})_"
            row = [icon[status], v.level.value, md.code(v.policy_id), md.code(v.subject), msg]
            lines.append("| " + " | ".join(row) + " |")
        if len(rows) > MARKDOWN_ROWS:
            lines.append(f"\n…and {len(rows) - MARKDOWN_ROWS} more; see the JSON or SARIF report.")
    return "\n".join(lines) + "\n"


def to_text(report: PolicyReport) -> str:
    c = report.counts()
    if not report.violations:
        return f"Policies: {c['policies']} checked, no violations.\n"
    lines = [
        f"Policies: {c['blocking']} blocking, {c['advisory']} advisory, {c['overridden']} overridden "
        f"({c['policies']} policies checked)"
    ]
    width = max(len(v.policy_id) for v in report.violations)
    tag = {"denied": "DENY", "warning": "WARN", "overridden": "OVERRIDDEN"}
    for v in _sorted(report):
        status = _status(report, v)
        line = f"  {tag[status]:<10} {v.level.value:<9} {v.policy_id:<{width}}  {v.subject}: {v.message}"
        override = report.overrides.get(v.policy_id) if status == "overridden" else None
        if override is not None:
            line += f"  (by {override.actor}: {override.reason})"
        lines.append(line)
    return "\n".join(lines) + "\n"


def render(report: PolicyReport, fmt: str, locate: LocateFn | None = None) -> str:
    if fmt == "json":
        return json.dumps(to_json(report), indent=2, default=str) + "\n"
    if fmt == "sarif":
        return json.dumps(to_sarif(report, locate), indent=2, default=str) + "\n"
    if fmt == "junit":
        return to_junit(report)
    if fmt == "markdown":
        return to_markdown(report)
    if fmt == "text":
        return to_text(report)
    raise ConfigError(f"unknown policy report format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")


def parse_report_target(spec: str) -> tuple[str, str]:
    """Split one `--policy-report FORMAT=FILE` value, checking the format."""
    fmt, sep, path = spec.partition("=")
    fmt = fmt.strip().lower()
    if not sep or not path.strip():
        raise ConfigError(
            f"--policy-report {spec!r}: expected FORMAT=FILE", hint="e.g. --policy-report sarif=policy.sarif"
        )
    if fmt not in FORMATS:
        raise ConfigError(f"--policy-report {spec!r}: unknown format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    return fmt, path.strip()
