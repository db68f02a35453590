"""Drift: refresh what is in scope and report how the cloud differs from state and plan, with the
policies judged on the live state. Reads only; `--reconcile` is a normal apply afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cloudorch.actor import actor_name
from cloudorch.run.options import RunOptions
from cloudorch.run.plan import locator, scope_of
from cloudorch.run.recording import records
from cloudorch.run.session import session

if TYPE_CHECKING:
    from cloudorch.engine.drift import DriftReport


@records("drift")
def drift(opts: RunOptions) -> DriftReport:
    """Refresh what is in scope and report drift three ways, with policies judged on the live state."""
    from cloudorch import graph as graphs
    from cloudorch.engine.drift import detect
    from cloudorch.run.blocks import read_only_view

    with session(opts, fold=False) as sess:
        read_only_view(sess, opts)
        loaded = sess.loaded
        report, live = detect(
            loaded.plan,
            loaded.instances,
            graphs.order(loaded.graph),
            sess.state,
            sess.providers,
            scope=scope_of(loaded, sess.state, opts),
            parallelism=opts.parallelism,
        )
        plan = loaded.plan
        if plan.policies or opts.policy_paths:
            from cloudorch.policy import build_state_input, load_policies

            pset = load_policies(
                list(plan.policies or []),
                base_dir=plan.path.parent,
                extra_paths=list(opts.policy_paths),
                context=dict(plan.providers or {}),
                plan_file=str(plan.path),
            )
            doc = build_state_input(
                live, stage=opts.stage, provider_configs=dict(plan.providers or {}), plan_file=str(plan.path)
            )
            policy_report = pset.evaluate(doc)
            if opts.overrides:
                policy_report.apply_overrides(dict(opts.overrides), actor_name())  # judged only: drift writes no state
            report.policy_results = policy_report.results
            for fmt, target in opts.policy_reports:
                Path(target).write_text(policy_report.render(fmt, locate=locator(plan)), encoding="utf-8")
        return report
