"""The data of every page, as plain JSON documents: the page is a thin view of what `/api/...`
answers. Everything here reads (state, its history, the release ledger, a running apply's journal)
and nothing writes. Sensitive values never leave: state keeps them as hashes, shown `(sensitive)`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudorch.errors import CloudorchError, ConfigError
from cloudorch.fleet.discover import Fleet, Stack, discover
from cloudorch.fleet.status import fleet_status
from cloudorch.planfile.variables import missing_variables_unknown
from cloudorch.run.options import RunOptions
from cloudorch.state.model import is_sensitive_marker

SENSITIVE = "(sensitive)"


def _masked(value: Any) -> Any:
    if is_sensitive_marker(value):
        return SENSITIVE
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _opts(stack: Stack) -> RunOptions:
    return RunOptions(plan_file=stack.plan_file, stage=stack.stage, vars=dict(stack.vars), command="cloudorch ui")


@dataclass
class Catalog:
    """The stacks the server shows, and a snapshot of their status refreshed in the background
    (reading 1,000 states takes longer than a page may)."""

    paths: Sequence[Path]
    every: float = 5.0
    fleet: Fleet = field(init=False)
    _snapshot: dict[str, Any] = field(init=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.fleet = discover(list(self.paths))
        self.refresh()

    def stack(self, name: str) -> Stack:
        found = self.fleet.by_name().get(name)
        if found is None:
            raise ConfigError(f"no stack named {name!r}")
        return found

    def refresh(self) -> None:
        rows = fleet_status(self.fleet)
        doc = {
            "as_of": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "stacks": [
                {**r.to_json(), "plan": Path(r.plan_file).stem, "pipeline": bool(r.stage)}
                for r in rows
            ],
        }
        with self._lock:
            self._snapshot = doc

    def overview(self) -> dict[str, Any]:
        with self._lock:
            return self._snapshot

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.every):
                try:
                    self.refresh()
                except Exception:  # a failed refresh keeps the last snapshot; the next one tries again
                    continue

        threading.Thread(target=loop, name="cloudorch-ui-refresh", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


def stack_doc(stack: Stack) -> dict[str, Any]:
    """A stack's resources (masked), its state history by serial and what its last write said."""
    from cloudorch.run.state_ops import read_state

    with missing_variables_unknown():
        _, state, backend = read_state(_opts(stack))
    resources = []
    if state is not None:
        for address, rec in sorted(state.resources.items()):
            resources.append(
                {
                    "address": address,
                    "type": rec.type,
                    "id": rec.id,
                    "properties": _masked(rec.properties),
                    "attributes": _masked({k: v for k, v in rec.attributes.items() if k not in rec.sensitive}),
                    "tainted": rec.tainted,
                    "updated_at": rec.updated_at,
                }
            )
    history = [
        {"serial": h.serial, "written_at": h.written_at, "resources": h.resource_count, "current": h.current}
        for h in (backend.history() if state is not None else [])
    ]
    return {
        "name": stack.name,
        "plan_file": str(stack.plan_file),
        "stage": stack.stage,
        "serial": state.serial if state is not None else 0,
        "lineage": state.lineage if state is not None else None,
        "outputs": _masked({k: v.get("value") for k, v in (state.outputs if state else {}).items()}),
        "resources": resources,
        "history": history,
        "live": live_doc(stack),
    }


def diff_doc(stack: Stack, old: int, new: int) -> dict[str, Any]:
    """What changed in state between two serials: addresses added, removed and changed (by property)."""
    from cloudorch.run.state_ops import read_state

    with missing_variables_unknown():
        _, _, backend = read_state(_opts(stack))
    try:
        a, b = backend.read_version(old), backend.read_version(new)
    except CloudorchError as exc:
        raise ConfigError(f"cannot read serial {old} or {new} of {stack.name}: {exc.message}") from None
    added = sorted(set(b.resources) - set(a.resources))
    removed = sorted(set(a.resources) - set(b.resources))
    changed = []
    for address in sorted(set(a.resources) & set(b.resources)):
        ra, rb = a.resources[address], b.resources[address]
        keys = sorted(set(ra.properties) | set(rb.properties))
        props = [
            {"property": k, "old": _masked(ra.properties.get(k)), "new": _masked(rb.properties.get(k))}
            for k in keys
            if ra.properties.get(k) != rb.properties.get(k)
        ]
        if props or ra.id != rb.id:
            changed.append({"address": address, "old_id": ra.id, "new_id": rb.id, "properties": props})
    return {"name": stack.name, "old": old, "new": new, "added": added, "removed": removed, "changed": changed}


def live_doc(stack: Stack) -> dict[str, Any]:
    """A run in progress on this stack (or killed and waiting), from its journal: what finished, what runs."""
    from cloudorch.run.session import backend_for, read_plan
    from cloudorch.state.journal import pending

    opts = _opts(stack)
    try:
        with missing_variables_unknown():
            backend = backend_for(read_plan(opts), opts)
        run = pending(backend)
    except CloudorchError as exc:
        return {"running": False, "error": exc.message}
    if run is None:
        return {"running": False}
    header = run.replay.header or {}
    return {
        "running": not run.ended_cleanly,
        "command": header.get("command"),
        "actor": header.get("actor"),
        "finished": [
            {"address": e.op.get("address"), "action": e.op.get("action"), "event": e.event, "at": e.at}
            for e in run.replay.completed
        ],
        "in_flight": [{"address": op.get("address"), "action": op.get("action")} for op in run.replay.in_flight],
    }


def pipeline_doc(stack: Stack) -> dict[str, Any]:
    """A plan's release pipeline: stages left to right with their versions and the next gates."""
    from cloudorch.release.promotion import history, status

    opts = RunOptions(plan_file=stack.plan_file, vars=dict(stack.vars), command="cloudorch ui")
    with missing_variables_unknown():
        current = status(opts)
        events = history(opts)[-50:]
    name = stack.name[: -len(stack.stage) - 1] if stack.stage else stack.name
    return {"plan": name, "plan_file": str(stack.plan_file), "now": current["now"],
            "stages": current["stages"], "history": events}


def graph_doc(stack: Stack) -> dict[str, Any]:
    """The plan's dependency graph (every stage of a plan with stages), nodes layered by dependency
    depth, each with what its stage's state says of it: `create` (not in state yet), `delete` (in
    state, not in the plan) or `none`."""
    from cloudorch import graph as graphs
    from cloudorch.run.session import load
    from cloudorch.run.state_ops import read_state

    with missing_variables_unknown():
        loaded = load(RunOptions(plan_file=stack.plan_file, vars=dict(stack.vars), command="cloudorch ui"))
        g = loaded.graph
        named = sorted({str(d["stage"]) for d in g.nodes.values() if d.get("stage")})
        stages: list[str | None] = [*named] if named else [None]
        held: dict[str | None, set[str]] = {}
        for one in stages:
            try:
                _, state, _ = read_state(RunOptions(plan_file=stack.plan_file, stage=one, vars=dict(stack.vars)))
                held[one] = set(state.resources) if state is not None else set()
            except CloudorchError:
                held[one] = set()
    depth: dict[str, int] = {}
    for n in graphs.order(g):
        depth[n] = 1 + max((depth[p] for p in g.predecessors(n)), default=-1)
    nodes = []
    planned: dict[str | None, set[str]] = {s: set() for s in stages}
    for n, data in g.nodes.items():
        kind = str(data.get("kind", "resource"))
        stage = data.get("stage")
        action = "none"
        if kind == "resource":
            address = n[len(stage) + 1 :] if stage else n
            planned.setdefault(stage, set()).add(address)
            action = "none" if address in held.get(stage, set()) else "create"
        nodes.append({"id": n, "kind": kind, "type": data.get("type"), "stage": stage,
                      "depth": depth.get(n, 0), "action": action})
    for held_stage, addresses in held.items():
        for a in sorted(addresses - planned.get(held_stage, set())):
            nodes.append({"id": f"{held_stage}.{a}" if held_stage else a, "kind": "resource", "type": None,
                          "stage": held_stage, "depth": 0, "action": "delete"})
    return {"name": stack.name, "nodes": nodes, "edges": [{"from": u, "to": v} for u, v in g.edges]}


#: runs read per stack for the runs page
RUNS_PER_STACK = 200


def runs_doc(catalog: Catalog, *, stack: str | None = None, stage: str | None = None, command: str | None = None,
             result: str | None = None) -> dict[str, Any]:
    """Runs of every stack (or one), newest first, filtered by stack, stage, command and result."""
    from cloudorch.run.run_history import runs_list

    found: list[dict[str, Any]] = []
    for s in catalog.fleet.stacks:
        if stack and s.name != stack:
            continue
        if stage and s.stage != stage:
            continue
        try:
            with missing_variables_unknown():
                runs = runs_list(_opts(s), limit=RUNS_PER_STACK).runs
        except CloudorchError:
            continue
        for run in runs:
            if command and run.get("command") != command:
                continue
            if result and run.get("result") != result:
                continue
            found.append({**run, "stack": s.name})
    found.sort(key=lambda r: str(r.get("started", "")), reverse=True)
    return {"runs": found[:500], "filters": {"stack": stack, "stage": stage, "command": command, "result": result}}


def run_doc(stack: Stack, run_id: str) -> dict[str, Any]:
    """One run's whole record: its changes, failures with their errors, policy results, duration."""
    from cloudorch.run.run_history import runs_show

    with missing_variables_unknown():
        doc = runs_show(_opts(stack), run_id)
    return {**doc, "stack": stack.name}
