"""A dependency graph drawn as SVG, on the server: columns by dependency depth, one band per release
stage (or module instance) drawn as a box, nodes coloured by action and linked to their resource.
Every label and link is escaped; the drawing holds no script."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import quote

COLUMN = 240
ROW = 26
NODE_W = 210
NODE_H = 20
BAND_GAP = 36
COLOURS = {"create": "#2e7d32", "delete": "#c62828", "update": "#f9a825", "replace": "#ef6c00", "none": "#607d8b"}
_MODULE = re.compile(r"^((?:module\.[^.\[]+(?:\[[^\]]*\])?\.)+)")


def _group(node: dict[str, Any]) -> str:
    """The box a node is drawn in: its stage, else its module instance, else none."""
    if node.get("kind") == "stage":
        return f"stage {node['id']}"
    if node.get("stage"):
        return f"stage {node['stage']}"
    m = _MODULE.match(str(node["id"]))
    return m.group(1).rstrip(".") if m else ""


def render(doc: dict[str, Any], *, link: Callable[[dict[str, Any]], str | None] | None = None) -> str:
    """SVG of `graph_doc`'s document; `link(node)` is the page of a node's stack (its row is `#r-ADDRESS`)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for node in doc["nodes"]:
        groups.setdefault(_group(node), []).append(node)
    pos: dict[str, tuple[int, int]] = {}
    parts: list[str] = []
    y0 = 10
    width = COLUMN
    # bands in dependency order (dev before staging before prod), the ungrouped first
    for name in sorted(groups, key=lambda g: (g != "", min(n["depth"] for n in groups[g]), g)):
        members = groups[name]
        columns: dict[int, int] = {}
        top = y0 + (18 if name else 0)
        bottom = top
        for node in sorted(members, key=lambda n: (n["depth"], n["id"])):
            col = int(node["depth"])
            row = columns.get(col, 0)
            columns[col] = row + 1
            x, y = 20 + col * COLUMN, top + row * ROW
            pos[node["id"]] = (x, y)
            bottom = max(bottom, y + NODE_H)
            width = max(width, x + NODE_W + 20)
        if name:
            right = 20 + (max(columns) + 1) * COLUMN if columns else COLUMN
            parts.append(
                f'<rect class="box" x="8" y="{y0}" width="{right - 16}" height="{bottom - y0 + 8}" rx="6"/>'
                f'<text class="boxlabel" x="14" y="{y0 + 13}">{escape(name)}</text>'
            )
        y0 = bottom + BAND_GAP
    for edge in doc["edges"]:
        a, b = pos.get(edge["from"]), pos.get(edge["to"])
        if a and b:
            x1, y1, x2, y2 = a[0] + NODE_W, a[1] + NODE_H // 2, b[0], b[1] + NODE_H // 2
            parts.append(f'<line class="edge" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}"/>')
    for node in doc["nodes"]:
        x, y = pos[node["id"]]
        colour = COLOURS.get(str(node.get("action")), COLOURS["none"])
        label = str(node["id"])
        short = label if len(label) <= 30 else label[:27] + "..."
        title = f"{label} ({node.get('type') or node.get('kind')}, {node.get('action')})"
        shape = (
            f'<rect class="node" x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="3" fill="{colour}"/>'
            f'<text class="label" x="{x + 6}" y="{y + 14}">{escape(short)}</text><title>{escape(title)}</title>'
        )
        target = link(node) if link is not None and node.get("kind") == "resource" else None
        if target is not None:
            address = label.split(".", 1)[1] if node.get("stage") and "." in label else label
            href = f"{target}#r-{quote(address, safe='')}"
            shape = f'<a href="{escape(href)}" data-address="{escape(label)}">{shape}</a>'
        parts.append(f'<g class="n-{escape(str(node.get("action")))}">{shape}</g>')
    height = max(y0, 40)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="dependency graph">' + "".join(parts) + "</svg>"
    )
