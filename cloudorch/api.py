"""The library facade: what the CLI, the tests and other programs call.

Each name is one operation of `cloudorch.run` (or `cloudorch.release`, `cloudorch.sandbox`) or a
value type they return: a function takes a `RunOptions` and the command's own arguments and
returns a typed value; it never prints, asks or handles signals (to stop an apply, pass an
`Interrupt` and fire it). Names resolve on first use (PEP 562), so importing the facade loads
nothing heavy; the `TYPE_CHECKING` block below is the typed list of what it offers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloudorch.changes import KNOWN_AFTER_APPLY as KNOWN_AFTER_APPLY
    from cloudorch.changes import SENSITIVE as SENSITIVE
    from cloudorch.changes import Action as Action
    from cloudorch.changes import Change as Change
    from cloudorch.changes import ChangeSet as ChangeSet
    from cloudorch.changes import redact_text as redact_text
    from cloudorch.engine.applier import ApplyObserver as ApplyObserver
    from cloudorch.engine.drift import DriftReport as DriftReport
    from cloudorch.fleet.discover import Fleet as Fleet
    from cloudorch.fleet.discover import discover as fleet_discover
    from cloudorch.fleet.executor import open_executor as fleet_executor
    from cloudorch.fleet.graph import edges as fleet_edges
    from cloudorch.fleet.graph import select as fleet_select
    from cloudorch.fleet.orchestrate import FleetResult as FleetResult
    from cloudorch.fleet.orchestrate import run_fleet as fleet_run
    from cloudorch.fleet.report import graph_text as fleet_graph
    from cloudorch.fleet.report import to_junit as fleet_junit
    from cloudorch.fleet.report import to_markdown as fleet_markdown
    from cloudorch.fleet.status import fleet_status as fleet_status
    from cloudorch.fleet.task import StackTask as StackTask
    from cloudorch.graph import Graph as Graph
    from cloudorch.planfile.variables import known_secrets as known_secrets
    from cloudorch.policy import PolicyReport as PolicyReport
    from cloudorch.policy import parse_report_target as parse_report_target
    from cloudorch.release.promotion import Outcome as Outcome
    from cloudorch.release.promotion import approve as release_approve
    from cloudorch.release.promotion import deploy as release_deploy
    from cloudorch.release.promotion import history as release_history
    from cloudorch.release.promotion import promote as release_promote
    from cloudorch.release.promotion import reject as release_reject
    from cloudorch.release.promotion import rollback as release_rollback
    from cloudorch.release.promotion import status as release_status
    from cloudorch.run.apply import ApplyResult as ApplyResult
    from cloudorch.run.apply import RecoverOutcome as RecoverOutcome
    from cloudorch.run.apply import apply as apply
    from cloudorch.run.apply import destroy as destroy
    from cloudorch.run.apply import recover as recover
    from cloudorch.run.drift import drift as drift
    from cloudorch.run.info import CONFORMANCE_CHECKS as CONFORMANCE_CHECKS
    from cloudorch.run.info import CONFORMANCE_FILE as CONFORMANCE_FILE
    from cloudorch.run.info import ConformanceTable as ConformanceTable
    from cloudorch.run.info import ProviderInfo as ProviderInfo
    from cloudorch.run.info import conformance as conformance
    from cloudorch.run.info import providers_info as providers_info
    from cloudorch.run.info import schema as schema
    from cloudorch.run.modules import modules_update as modules_update
    from cloudorch.run.options import DEFAULT_PARALLELISM as DEFAULT_PARALLELISM
    from cloudorch.run.options import Interrupt as Interrupt
    from cloudorch.run.options import RunOptions as RunOptions
    from cloudorch.run.plan import Planned as Planned
    from cloudorch.run.plan import PolicyVerdict as PolicyVerdict
    from cloudorch.run.plan import plan as judged_plan
    from cloudorch.run.policy import policy_check as policy_check
    from cloudorch.run.policy import policy_test as policy_test
    from cloudorch.run.revert import revert as revert
    from cloudorch.run.run_history import RetryResult as RetryResult
    from cloudorch.run.run_history import RunList as RunList
    from cloudorch.run.run_history import notifications_retry as notifications_retry
    from cloudorch.run.run_history import notifications_status as notifications_status
    from cloudorch.run.run_history import parse_since as parse_since
    from cloudorch.run.run_history import runs_list as runs_list
    from cloudorch.run.run_history import runs_list_local as runs_list_local
    from cloudorch.run.run_history import runs_show as runs_show
    from cloudorch.run.session import Loaded as Loaded
    from cloudorch.run.session import validate as validate
    from cloudorch.run.state_ops import MigrateResult as MigrateResult
    from cloudorch.run.state_ops import force_unlock as force_unlock
    from cloudorch.run.state_ops import force_unlock_any as force_unlock_any
    from cloudorch.run.state_ops import outputs as outputs
    from cloudorch.run.state_ops import state_deposed as state_deposed
    from cloudorch.run.state_ops import state_history as state_history
    from cloudorch.run.state_ops import state_import as state_import
    from cloudorch.run.state_ops import state_list as state_list
    from cloudorch.run.state_ops import state_migrate as state_migrate
    from cloudorch.run.state_ops import state_mv as state_mv
    from cloudorch.run.state_ops import state_rekey as state_rekey
    from cloudorch.run.state_ops import state_rm as state_rm
    from cloudorch.run.state_ops import state_show as state_show
    from cloudorch.run.state_ops import waiting_run as waiting_run
    from cloudorch.sandbox import Sandbox as Sandbox
    from cloudorch.sandbox import down as sandbox_down
    from cloudorch.sandbox import status as sandbox_status
    from cloudorch.sandbox import up as sandbox_up
    from cloudorch.sandbox.endpoints import client_env as sandbox_env
    from cloudorch.state.backends import SDKS as STATE_SDKS
    from cloudorch.state.backends.worker import prefetch as prefetch_state_store
    from cloudorch.ui.app import create_app as ui_app
    from cloudorch.ui.app import serve as ui_serve

__all__ = [  # what the facade offers; every other module is below it
    "CONFORMANCE_CHECKS",
    "CONFORMANCE_FILE",
    "DEFAULT_PARALLELISM",
    "GRAPH_FORMATS",
    "KNOWN_AFTER_APPLY",
    "SENSITIVE",
    "STATE_SDKS",
    "Action",
    "ApplyObserver",
    "ApplyResult",
    "Change",
    "ChangeSet",
    "ConformanceTable",
    "DriftReport",
    "Fleet",
    "FleetResult",
    "Graph",
    "Interrupt",
    "Loaded",
    "MigrateResult",
    "Outcome",
    "Planned",
    "PolicyReport",
    "PolicyVerdict",
    "ProviderInfo",
    "RecoverOutcome",
    "RetryResult",
    "RunList",
    "RunOptions",
    "Sandbox",
    "StackTask",
    "apply",
    "conformance",
    "destroy",
    "drift",
    "fleet_discover",
    "fleet_edges",
    "fleet_executor",
    "fleet_graph",
    "fleet_junit",
    "fleet_markdown",
    "fleet_run",
    "fleet_select",
    "fleet_status",
    "force_unlock",
    "force_unlock_any",
    "judged_plan",
    "known_secrets",
    "modules_update",
    "notifications_retry",
    "notifications_status",
    "outputs",
    "parse_report_target",
    "parse_since",
    "plan",
    "policy_check",
    "policy_test",
    "prefetch_state_store",
    "providers_info",
    "recover",
    "redact_text",
    "release_approve",
    "release_deploy",
    "release_history",
    "release_promote",
    "release_reject",
    "release_rollback",
    "release_status",
    "render_graph",
    "revert",
    "runs_list",
    "runs_list_local",
    "runs_show",
    "sandbox_down",
    "sandbox_env",
    "sandbox_json",
    "sandbox_status",
    "sandbox_up",
    "schema",
    "state_deposed",
    "state_history",
    "state_import",
    "state_list",
    "state_migrate",
    "state_mv",
    "state_rekey",
    "state_rm",
    "state_show",
    "ui_app",
    "ui_serve",
    "validate",
    "waiting_run",
]

#: name -> (module, attribute): where each name of the facade lives
_NAMES: dict[str, tuple[str, str]] = {
    **{
        n: ("cloudorch.changes", n)
        for n in ("KNOWN_AFTER_APPLY", "SENSITIVE", "Action", "Change", "ChangeSet", "redact_text")
    },
    "ApplyObserver": ("cloudorch.engine.applier", "ApplyObserver"),
    "DriftReport": ("cloudorch.engine.drift", "DriftReport"),
    "Graph": ("cloudorch.graph", "Graph"),
    "Fleet": ("cloudorch.fleet.discover", "Fleet"),
    "fleet_discover": ("cloudorch.fleet.discover", "discover"),
    "fleet_executor": ("cloudorch.fleet.executor", "open_executor"),
    "fleet_select": ("cloudorch.fleet.graph", "select"),
    "fleet_edges": ("cloudorch.fleet.graph", "edges"),
    "FleetResult": ("cloudorch.fleet.orchestrate", "FleetResult"),
    "fleet_run": ("cloudorch.fleet.orchestrate", "run_fleet"),
    **{f"fleet_{n}": ("cloudorch.fleet.report", f) for n, f in (("graph", "graph_text"), ("junit", "to_junit"))},
    "fleet_markdown": ("cloudorch.fleet.report", "to_markdown"),
    "fleet_status": ("cloudorch.fleet.status", "fleet_status"),
    "StackTask": ("cloudorch.fleet.task", "StackTask"),
    "ui_serve": ("cloudorch.ui.app", "serve"),
    "ui_app": ("cloudorch.ui.app", "create_app"),
    **{n: ("cloudorch.policy", n) for n in ("PolicyReport", "parse_report_target")},
    "Outcome": ("cloudorch.release.promotion", "Outcome"),
    **{
        f"release_{n}": ("cloudorch.release.promotion", n)
        for n in ("approve", "deploy", "history", "promote", "reject", "rollback", "status")
    },
    **{n: ("cloudorch.run.apply", n) for n in ("ApplyResult", "RecoverOutcome", "apply", "destroy", "recover")},
    "drift": ("cloudorch.run.drift", "drift"),
    **{
        n: ("cloudorch.run.info", n)
        for n in (
            "CONFORMANCE_CHECKS", "CONFORMANCE_FILE", "ConformanceTable", "ProviderInfo", "conformance",
            "providers_info", "schema",
        )
    },
    "modules_update": ("cloudorch.run.modules", "modules_update"),
    **{n: ("cloudorch.run.options", n) for n in ("DEFAULT_PARALLELISM", "Interrupt", "RunOptions")},
    **{n: ("cloudorch.run.plan", n) for n in ("Planned", "PolicyVerdict")},
    "judged_plan": ("cloudorch.run.plan", "plan"),
    "known_secrets": ("cloudorch.planfile.variables", "known_secrets"),
    **{n: ("cloudorch.run.policy", n) for n in ("policy_check", "policy_test")},
    "revert": ("cloudorch.run.revert", "revert"),
    **{
        n: ("cloudorch.run.run_history", n)
        for n in (
            "RetryResult", "RunList", "notifications_retry", "notifications_status", "parse_since", "runs_list",
            "runs_list_local", "runs_show",
        )
    },
    **{n: ("cloudorch.run.session", n) for n in ("Loaded", "validate")},
    **{
        n: ("cloudorch.run.state_ops", n)
        for n in (
            "MigrateResult", "force_unlock", "force_unlock_any", "outputs", "state_deposed", "state_history",
            "state_import",
            "state_list", "state_migrate", "state_mv", "state_rekey", "state_rm", "state_show", "waiting_run",
        )
    },
    "Sandbox": ("cloudorch.sandbox", "Sandbox"),
    **{f"sandbox_{n}": ("cloudorch.sandbox", n) for n in ("down", "status", "up")},
    "sandbox_env": ("cloudorch.sandbox.endpoints", "client_env"),
    "STATE_SDKS": ("cloudorch.state.backends", "SDKS"),
    "prefetch_state_store": ("cloudorch.state.backends.worker", "prefetch"),
}

GRAPH_FORMATS = ("dot", "mermaid", "json", "graphml", "gexf", "node-link")


def __getattr__(name: str) -> object:
    where = _NAMES.get(name)
    if where is None:
        raise AttributeError(f"module 'cloudorch.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(where[0]), where[1])
    globals()[name] = value  # once resolved, a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES])


def plan(opts: RunOptions) -> ChangeSet:
    """The changeset `apply` would carry out, policy results included (`judged_plan` adds the verdict)."""
    from cloudorch.run.plan import plan as run

    return run(opts).changeset


def render_graph(graph: Graph, fmt: str) -> str:
    """A graph as text in one of `GRAPH_FORMATS`: `dot`, `mermaid` and `json` by the compact graph,
    `graphml`, `gexf` and `node-link` through networkx (imported only for those)."""
    from cloudorch import graph as graphs

    renderers = {"dot": graphs.to_dot, "mermaid": graphs.to_mermaid, "json": graphs.to_json}
    if fmt in renderers:
        return renderers[fmt](graph)
    from cloudorch.graph_export import export

    return export(graph, fmt)


def sandbox_json(box: Sandbox) -> dict[str, object]:
    """The sandbox as `sandbox status --json` shows it: `servers` (name, cloud, pid, url, health), `skipped`."""
    from cloudorch.sandbox.emulators import as_json

    return as_json(box)
