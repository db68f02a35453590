"""Plan: the changeset of one run (refresh, diff, target scoping) and the policies' verdict on it.

`plan_in` returns a `Planned` value: the changeset (built once, policy results included) and
the `PolicyVerdict`. Apply and promotion read the verdict from that value; nothing is left in
the session for a later step to find.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudorch.errors import CloudorchError, ConfigError
from cloudorch.run.options import RunOptions
from cloudorch.run.recording import records
from cloudorch.run.session import Loaded, Session, WaitingRun, session

if TYPE_CHECKING:
    from cloudorch.changes import ChangeSet
    from cloudorch.planfile import PlanSpec
    from cloudorch.policy import PolicyReport, PolicySet
    from cloudorch.state.model import State

log = logging.getLogger("cloudorch.run")


@dataclass(frozen=True)
class PolicyVerdict:
    """What the plan's policies said about a changeset, and what they need to judge values known later."""

    policies: PolicySet
    input: dict[str, Any]
    report: PolicyReport

    def denial(self, overrides: dict[str, str]) -> CloudorchError | None:
        """The error a blocking result raises (exit 3), None when nothing blocks."""
        try:
            self.report.raise_if_blocked(overrides)
        except CloudorchError as exc:
            return exc
        return None


@dataclass(frozen=True)
class Planned:
    """A changeset and its policy verdict (None when the plan has no policies)."""

    changeset: ChangeSet
    verdict: PolicyVerdict | None
    #: a killed run's journal that waits, unfolded (a plan reads state as stored)
    waiting: WaitingRun | None = None
    #: YAML resource blocks for import targets without one (`plan --generate-config-out`)
    generated_config: str | None = None


def scope_of(loaded: Loaded, state: State, opts: RunOptions) -> set[str] | None:
    from cloudorch import graph as graphs

    if not opts.targets and not opts.excludes:
        return None
    g = loaded.graph
    known = set(g.nodes) | set(state.resources)

    def expand_names(names: Sequence[str], flag: str) -> set[str]:
        out: set[str] = set()
        for n in names:
            if flag == "--exclude" and "*" in n:
                from cloudorch.planfile.addresses import glob_pattern

                pattern = glob_pattern(n)
                hits = {a for a in known if pattern.match(a) or pattern.match(a.split("[", 1)[0])}
            else:
                # `web` names its instances `web[k]`; `module.net` and `module.net[eu]` name what is inside them
                hits = {a for a in known if a == n or a.startswith((n + "[", n + "."))}
            if not hits:
                raise ConfigError(f"{flag} {n}: no such resource in the plan or its state")
            out |= hits
        return out

    scope = set(known)
    if opts.targets:
        targets = expand_names(opts.targets, "--target")
        in_graph = {t for t in targets if t in g}
        scope = targets | graphs.ancestors(g, in_graph)
    if opts.excludes:
        excluded = expand_names(opts.excludes, "--exclude")
        in_graph = {t for t in excluded if t in g}
        scope -= excluded | graphs.descendants(g, in_graph)
    return scope


def plan_in(sess: Session, opts: RunOptions) -> Planned:
    """Compute a changeset inside an open session (state locked) and judge it."""
    from cloudorch import graph as graphs
    from cloudorch.engine.planner import (
        Planner,
        PlanRequest,
        adopt_refreshed,
        deposed_changes,
        make_changeset,
        refresh,
    )
    from cloudorch.run import blocks

    loaded, state = sess.loaded, sess.state
    for r in opts.replace:
        if r not in loaded.graph:
            raise ConfigError(f"--replace {r}: no such resource in the plan")
    adopted = blocks.start(sess, opts)  # moves in state; data reads run beside refresh
    with adopted.reading():
        scope = scope_of(loaded, state, opts)
        blocks.adopt_imports(adopted, sess, opts, scope)
        records = [
            r for a, r in state.resources.items() if (scope is None or a in scope) and a not in adopted.imports.observed
        ]
        observed = refresh(records, sess.providers, parallelism=opts.parallelism).observed if opts.refresh else {}
    observed.update(adopted.imports.observed)
    adopted.finish_data(sess)
    loaded = sess.loaded
    request = PlanRequest(
        refresh=opts.refresh,
        targets=opts.targets,
        excludes=opts.excludes,
        replace=opts.replace,
        destroy=opts.destroy,
        parallelism=opts.parallelism,
    )
    order = [a for a in graphs.order(loaded.graph) if scope is None or a in scope]
    planner = Planner(loaded.plan, loaded.instances, order, state, sess.providers, request)
    changes = adopted.annotate(planner.run(observed))
    adopt_refreshed(state, observed, sess.providers)
    if scope is not None:
        changes = [c for c in changes if c.address in scope]
    changes += deposed_changes(state, sess.providers, scope)
    built = make_changeset(loaded.plan, changes, state, request, state_key=state.state_key)
    cs = built.model_copy(
        update={"inputs": withhold_sensitive(run_inputs(opts), loaded.plan), **adopted.changeset_fields()}
    )
    planned = judge(sess, opts, cs)
    if opts.generate_config_out is not None:
        from dataclasses import replace

        planned = replace(planned, generated_config=blocks.generated_config(adopted, opts.generate_config_out))
    return planned


def withhold_sensitive(inputs: dict[str, Any], plan: PlanSpec) -> dict[str, Any]:
    """`inputs` without the `--var` text of sensitive variables: a saved plan never holds them.

    `withheld` names them, so `apply FILE` can ask for them again."""
    secret = plan.sensitive_variables()
    given = inputs.get("vars", {})
    withheld = sorted(k for k in given if k in secret)
    if not withheld:
        return inputs
    return {**inputs, "vars": {k: v for k, v in given.items() if k not in secret}, "withheld": withheld}


def run_inputs(opts: RunOptions, **more: Any) -> dict[str, Any]:
    """A changeset's `inputs`: what `apply FILE` needs to load the same plan again."""
    return {"vars": dict(opts.vars), "var_files": [str(p) for p in opts.var_files], **more}


def judge(sess: Session, opts: RunOptions, cs: ChangeSet) -> Planned:
    """Evaluate the plan's policies on a changeset: a new changeset carrying the results, and the verdict."""
    plan = sess.loaded.plan
    if not plan.policies and not opts.policy_paths:
        return Planned(cs, None)
    from cloudorch.clock import now
    from cloudorch.policy import build_input, load_policies

    policies = load_policies(
        list(plan.policies or []),
        base_dir=plan.path.parent,
        extra_paths=list(opts.policy_paths),
        context=dict(plan.providers or {}),
        plan_file=str(plan.path),
    )
    from cloudorch.changes import mask_values, redact_text

    policy_input = build_input(
        cs.masked(),  # policies see sensitive values masked, so no report can repeat them
        provider_configs=mask_values(dict(plan.providers or {}), plan.sensitive_texts()),
        stage=opts.stage,
        release=release_document(plan, opts),
        now=now(),
    )
    report = policies.evaluate(policy_input)
    log.debug("evaluated policies of %s", plan.path)
    for fmt, target in opts.policy_reports:
        text = redact_text(report.render(fmt, locate=locator(plan)), plan.sensitive_texts())
        Path(target).write_text(text, encoding="utf-8")
    judged = cs.model_copy(update={"policy_results": report.results})
    return Planned(judged, PolicyVerdict(policies, policy_input, report))


def release_document(plan: PlanSpec, opts: RunOptions) -> dict[str, Any] | None:
    """`input.release` for policies: the plan's `release:` block with this run's version."""
    if plan.release is None and opts.release_version is None:
        return None
    doc = {k: v for k, v in (plan.release or {}).items() if k != "groups"}
    if opts.release_version is not None:
        doc["version"] = opts.release_version
    return doc


def locator(plan: PlanSpec) -> Callable[[str | None], tuple[str, int] | None]:
    def locate(address: str | None) -> tuple[str, int] | None:
        if address is None:
            return (str(plan.path), 1)
        name = address.split("[", 1)[0]
        loc = plan.location("resources", name)
        return (loc.file, loc.line or 1)

    return locate


@records("plan")
def plan(opts: RunOptions) -> Planned:
    """Plan against state as stored: a killed run's journal is not folded in (`Planned.waiting` says it waits)."""
    from dataclasses import replace

    with session(opts, fold=False) as sess:
        return replace(plan_in(sess, opts), waiting=sess.waiting)
