"""A fleet's result as documents: Markdown (one pull-request comment for the whole fleet), JUnit XML
(one test case per stack, for CI dashboards) and Graphviz/Mermaid of the stack graph.
Values are escaped with `cloudorch.markdown`; XML by the standard library's serializer."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from cloudorch import markdown as md
from cloudorch.fleet.discover import Fleet
from cloudorch.fleet.graph import edges
from cloudorch.fleet.orchestrate import FleetResult

_ICON = {
    "ok": "✅", "changes": "📝", "drifted": "⚠️", "denied": "⛔", "failed": "❌", "skipped": "⏭️",
    "interrupted": "✋",
}
#: at most this many changed addresses listed per stack in Markdown (a comment has a size limit)
MAX_LISTED = 20


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if v) or "-"


def to_markdown(result: FleetResult) -> str:
    totals = result.counts()
    lines = [
        f"### cloudorch fleet {md.text(result.command)}: {len(result.results)} stacks",
        "",
        " · ".join(f"{_ICON.get(k, '')} {v} {k}" for k, v in sorted(totals.items())),
        "",
        "| stack | result | changes | time |",
        "|---|---|---|---|",
    ]
    for r in result.results:
        lines.append(
            f"| {md.code(r.name)} | {_ICON.get(r.status, '')} {r.status} | {md.text(_counts_text(r.counts))} "
            f"| {r.seconds:.1f}s |"
        )
    detailed = [r for r in result.results if r.changes or r.message]
    if detailed:
        lines += ["", "<details><summary>Details per stack</summary>", ""]
        for r in detailed:
            lines.append(f"**{md.code(r.name)}** {r.status}" + (f": {md.text(r.message)}" if r.message else ""))
            shown = r.changes[:MAX_LISTED]
            lines += [f"- {md.code(c)}" for c in shown]
            if len(r.changes) > MAX_LISTED:
                lines.append(f"- ... and {len(r.changes) - MAX_LISTED} more")
            lines.append("")
        lines.append("</details>")
    return "\n".join(lines) + "\n"


def to_junit(result: FleetResult) -> str:
    """One `<testcase>` per stack: failed and denied stacks fail, skipped ones are skipped."""
    suite = ET.Element(
        "testsuite",
        name=f"cloudorch fleet {result.command}",
        tests=str(len(result.results)),
        failures=str(len(result.by_status("failed", "denied", "interrupted"))),
        skipped=str(len(result.by_status("skipped"))),
        time=f"{result.seconds:.3f}",
    )
    for r in result.results:
        case = ET.SubElement(
            suite, "testcase", classname=f"fleet.{result.command}", name=r.name, time=f"{r.seconds:.3f}"
        )
        if r.status in ("failed", "denied", "interrupted"):
            fail = ET.SubElement(case, "failure", message=md.safe(r.message or r.status), type=r.status)
            fail.text = md.safe_lines(r.message + (f"\nhint: {r.hint}" if r.hint else ""))
        elif r.status == "skipped":
            ET.SubElement(case, "skipped", message=md.safe(r.message))
        else:
            out = ET.SubElement(case, "system-out")
            out.text = md.safe_lines("\n".join([f"{r.status}: {_counts_text(r.counts)}", *r.changes]))
    suites = ET.Element("testsuites")
    suites.append(suite)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def graph_text(fleet: Fleet, fmt: str) -> str:
    """The stack graph as `dot` or `mermaid`: an arrow from each stack to the stacks that read it."""
    ups = edges(fleet)
    if fmt == "mermaid":
        ids = {s.name: f"s{i}" for i, s in enumerate(fleet.stacks)}
        out = ["flowchart LR"]
        out += [f'  {ids[s.name]}["{md.safe(s.name).replace(chr(34), "#quot;")}"]' for s in fleet.stacks]
        out += [f"  {ids[u]} --> {ids[n]}" for n in sorted(ups) for u in sorted(ups[n])]
        return "\n".join(out) + "\n"

    def q(name: str) -> str:
        return '"' + md.safe(name).replace("\\", "\\\\").replace('"', '\\"') + '"'

    out = ["digraph fleet {", "  rankdir=LR;"]
    out += [f"  {q(s.name)};" for s in fleet.stacks]
    out += [f"  {q(u)} -> {q(n)};" for n in sorted(ups) for u in sorted(ups[n])]
    return "\n".join(out) + "\n}\n"
