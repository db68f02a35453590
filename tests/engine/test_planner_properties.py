"""Property test of the planner: random `core` plans with random edits, planned and applied.

The oracle is independent of the planner: apply the edited plan and compare each address's
state before and after (id and properties). The plan must show an update or a replace for
exactly the addresses that really changed (no spurious update or replace, nothing missed),
apply must not find any planned update to be a no-op, and a re-plan must show no changes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudorch.cli import main

#: what a reference may read of each type: a value or the id of a core.null; the id (its path),
#: the content hash or size, or a property of a core.file
READABLE = {"core.null": ("k", "id", "values"), "core.file": ("id", "sha256", "size", "content", "path")}


@dataclass
class Node:
    type: str
    refs: list[tuple[int, str]] = field(default_factory=list)  # (earlier node, what it reads)
    value: int = 0  # the literal an edit changes: a value (null) or part of the content (file)
    force: int = 0  # the literal of a force-new property: a trigger (null) or part of the path (file)


@st.composite
def graphs(draw: st.DrawFn) -> list[Node]:
    n = draw(st.integers(min_value=2, max_value=7))
    nodes: list[Node] = []
    for i in range(n):
        node = Node(type=draw(st.sampled_from(sorted(READABLE))))
        if i:
            targets = draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True))
            node.refs = [(t, draw(st.sampled_from(READABLE[nodes[t].type]))) for t in targets]
        nodes.append(node)
    return nodes


@st.composite
def edits(draw: st.DrawFn, nodes: list[Node]) -> list[tuple[int, str]]:
    """Which nodes change, and how: `value` (in place) or `force` (a force-new property)."""
    picked = draw(st.lists(st.integers(0, len(nodes) - 1), min_size=1, max_size=3, unique=True))
    return [(i, draw(st.sampled_from(["value", "force"]))) for i in picked]


def _plan_doc(nodes: list[Node]) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for i, node in enumerate(nodes):
        refs = {f"r{t}_{what}": f"${{resources.n{t}.{what}}}" for t, what in node.refs}
        if node.type == "core.null":
            props: dict[str, Any] = {"values": {"k": f"v{node.value}", **refs}, "triggers": {"t": str(node.force)}}
        else:
            text = " ".join(f"{k}={v}" for k, v in sorted(refs.items()))
            props = {"path": f"out/n{i}-{node.force}.txt", "content": f"c{node.value} {text}\n"}
        resources[f"n{i}"] = {"type": node.type, "properties": props}
    return {"version": 1, "name": "prop", "resources": resources}


def _cli(*args: str) -> tuple[int, Any]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(args))
    text = out.getvalue()
    return code, json.loads(text) if text.startswith("{") else text


def _state(plan: Path) -> dict[str, tuple[str, Any]]:
    path = plan.parent / ".cloudorch" / "state" / "prop.json"
    doc = json.loads(path.read_text())
    return {a: (r["id"], r["properties"]) for a, r in doc["state"]["resources"].items()}


_counter = iter(range(1_000_000))


@settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_plan_shows_exactly_what_changes(data: st.DataObject, tmp_path: Path) -> None:
    nodes = data.draw(graphs())
    changes = data.draw(edits(nodes))
    root = tmp_path / f"case{next(_counter)}"
    root.mkdir()
    plan = root / "prop.yaml"
    plan.write_text(yaml.safe_dump(_plan_doc(nodes)))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        code, doc = _cli("apply", str(plan), "--auto-approve", "--json")
        assert code == 0, doc
        before = _state(plan)

        for i, how in changes:
            if how == "value":
                nodes[i].value += 1
            else:
                nodes[i].force += 1
        plan.write_text(yaml.safe_dump(_plan_doc(nodes)))

        # apply shows the plan it carried out (`changeset`), then what happened (`result`)
        code, doc = _cli("apply", str(plan), "--auto-approve", "--json")
        assert code == 0, doc
        planned = {c["address"] for c in doc["changeset"]["changes"] if c["action"] in ("update", "replace")}
        assert {c["action"] for c in doc["changeset"]["changes"]} <= {"update", "replace", "no-op"}
        after = _state(plan)
        really_changed = {a for a in after if after[a] != before[a]}
        assert planned == really_changed, (changes, _plan_doc(nodes))
        assert doc["result"]["unchanged_after_resolve"] == []

        code, doc = _cli("plan", str(plan), "--json")
        assert code == 0, doc
        assert doc["summary"]["has_changes"] is False, [c for c in doc["changes"] if c["action"] != "no-op"]
    finally:
        os.chdir(cwd)
