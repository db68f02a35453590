"""The library facade: what the CLI, the tests and other programs call.

Each function takes plain options, does one command's work, and returns data (a changeset, an
apply result, state records). It never prints and never asks; confirmation and rendering are
the CLI's. Heavy modules (providers, SDKs) are imported inside the functions that need them.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudorch.errors import CloudorchError, ConfigError, Interrupted, StalePlanError, StateError

if TYPE_CHECKING:
    from cloudorch.changes import Change, ChangeSet
    from cloudorch.engine.applier import ApplyObserver, ApplyResult
    from cloudorch.engine.drift import DriftReport
    from cloudorch.engine.providerset import ProviderSet
    from cloudorch.engine.recovery import RecoveryReport
    from cloudorch.engine.scheduler import Interrupt
    from cloudorch.graph import Graph
    from cloudorch.planfile import Instance, PlanSpec
    from cloudorch.policy import PolicyReport, PolicySet
    from cloudorch.policy.model import RegoTestResult
    from cloudorch.providers import Registry
    from cloudorch.state.backends.base import StateBackend
    from cloudorch.state.journal import Journal
    from cloudorch.state.lock import LockHandle
    from cloudorch.state.model import ResourceRecord, State

#: operations at once across all providers; providers have their own limits below this
DEFAULT_PARALLELISM = 256


@dataclass
class RunOptions:
    """What every command that reads a plan file needs."""

    plan_file: Path
    vars: Mapping[str, str] = field(default_factory=dict)
    var_files: Sequence[Path] = ()
    state_dir: Path | None = None  # default: .cloudorch/ next to the plan file
    parallelism: int = DEFAULT_PARALLELISM
    refresh: bool = True
    targets: Sequence[str] = ()
    excludes: Sequence[str] = ()
    replace: Sequence[str] = ()
    destroy: bool = False
    lock_timeout: float = 0.0
    command: str = "cloudorch"
    env: Mapping[str, str] | None = None
    #: told about things worth knowing that are not errors (recovery, lock takeover)
    notify: Callable[[str], None] | None = None
    policy_paths: Sequence[Path] = ()
    #: policy id -> reason, from --override ID --reason TEXT
    overrides: Mapping[str, str] = field(default_factory=dict)
    #: (format, file) pairs from --policy-report FORMAT=FILE
    policy_reports: Sequence[tuple[str, str]] = ()
    #: --backend URL (s3://, gs://, azblob://, file://); None: the plan's backend block, else local
    backend_url: str | None = None
    #: --stage: the release stage whose resources and state document this run works on
    stage: str | None = None
    #: --version on release commands: `${release.version}` (else the plan's `release.version`)
    release_version: str | None = None
    #: --sandbox: local emulators and a state namespace apart from real state
    sandbox: bool = False
    #: --on-failure: stop | continue | rollback
    on_failure: str = "stop"


# --------------------------------------------------------------------------- loading


@dataclass
class Loaded:
    plan: PlanSpec
    instances: list[Instance]
    registry: Registry
    graph: Graph


def read_plan(opts: RunOptions) -> PlanSpec:
    """The plan file alone, its variables resolved from the run's --var, --var-file and environment."""
    from cloudorch.planfile import load_plan

    return load_plan(Path(opts.plan_file), vars=dict(opts.vars), var_files=list(opts.var_files), env=opts.env)


def load(opts: RunOptions) -> Loaded:
    """Load, validate and type-check a plan file and build its graph (the `validate` command)."""
    from cloudorch import graph as graphs
    from cloudorch.planfile import check_types, expand
    from cloudorch.providers import Registry

    plan = read_plan(opts)
    if plan.stages and opts.stage is None:
        from cloudorch.release import load_all_stages

        return load_all_stages(plan, opts)  # validate and graph: every stage at once
    plan = bind_release(plan, opts)
    instances = expand(plan)
    registry = Registry()
    check_types(plan, registry, instances)
    by_name: dict[str, list[str]] = {}
    for inst in instances:
        by_name.setdefault(inst.name, []).append(inst.address)
    edges = [
        (dep, inst.address) for inst in instances for name in inst.depends_on for dep in by_name.get(name, ())
    ]
    nodes = [(i.address, {"type": i.type, "provider": i.provider, "kind": "resource"}) for i in instances]
    locations = {i.address: i.location for i in instances}
    g = graphs.build(nodes, edges, locate=locations.get)
    return Loaded(plan, instances, registry, g)


def validate(opts: RunOptions) -> Loaded:
    from cloudorch.state.backends.url import check_backend_block

    loaded = load(opts)
    plan = loaded.plan
    block = dict(plan.backend or {}) if isinstance(plan.backend, dict) else {}
    check_backend_block(opts.backend_url, block, lambda *field: plan.location("backend", *field))
    return loaded


def bind_release(plan: PlanSpec, opts: RunOptions) -> PlanSpec:
    """The plan as one run sees it: `${stage.*}` and `${release.*}` resolved for `opts.stage`."""
    from cloudorch.planfile.expand import STAGE_ROOTS, bind_stage, stage_context, uses_roots

    check_stage(plan, opts)
    if plan.stages:
        from cloudorch.release.model import stages_of

        stages = stages_of(plan)  # located errors for a malformed `stages:` before anything runs
        gated = stages is not None and opts.stage is not None and stages.by_name[opts.stage].gates
        if gated and opts.release_version is None and opts.notify and opts.command.endswith(" apply"):
            opts.notify(
                f"stage {opts.stage} has release gates; `cloudorch apply` does not evaluate them "
                "(`cloudorch release promote` does) and leaves no release history"
            )
    elif not uses_roots(plan, STAGE_ROOTS):
        return plan
    return bind_stage(plan, stage_context(plan, opts.stage, opts.release_version))


def check_stage(plan: PlanSpec, opts: RunOptions) -> None:
    """A plan with stages keeps one state document per stage: every run on it names its stage."""
    if plan.stages and opts.stage is None:
        names = ", ".join(plan.stages)
        raise ConfigError(
            f"{plan.path} has release stages ({names}); say which one this command works on",
            hint=f"add --stage {next(iter(plan.stages))} (stages: {names}), or use `cloudorch release ...`",
        )
    if opts.stage is not None and plan.stages and opts.stage not in plan.stages:
        from cloudorch.errors import did_you_mean

        raise ConfigError(
            f"--stage {opts.stage}: no such stage in {plan.path}",
            hint=did_you_mean(opts.stage, list(plan.stages)) or "stages: " + ", ".join(plan.stages),
        )


# --------------------------------------------------------------------------- sessions


def plan_key(plan: PlanSpec) -> str:
    """The state document's key: the plan's `name`, or the file's stem when it has none."""
    return plan.name or plan.path.stem


def state_key(plan: PlanSpec, opts: RunOptions) -> str:
    """The key of this run's state document: the plan's key, per stage when the run has one."""
    key = plan_key(plan)
    return f"{key}.{opts.stage}" if opts.stage else key


def backend_for(plan: PlanSpec, opts: RunOptions, key: str | None = None) -> StateBackend:
    """The backend from --backend, else the plan's `backend:` block, else local `.cloudorch/`.

    `key` names another document than this run's state (the release ledger).
    """
    from cloudorch.state.backends import open_backend

    if key is None:
        check_stage(plan, opts)
    root = Path(opts.state_dir or (plan.path.parent / ".cloudorch"))
    if opts.sandbox:
        # a sandbox run never reads or writes real state, wherever the plan keeps it
        return open_backend(None, {}, key=key or state_key(plan, opts), local_root=root / "sandbox")
    block = dict(plan.backend or {}) if isinstance(plan.backend, dict) else {}
    return open_backend(
        opts.backend_url,
        block,
        key=key or state_key(plan, opts),
        local_root=root,
        locate=lambda *field: plan.location("backend", *field),
        env=opts.env,
    )


def _providers(loaded: Loaded, opts: RunOptions | None = None) -> ProviderSet:
    from cloudorch.engine.providerset import ProviderSet
    from cloudorch.providers import ProviderContext

    plan = loaded.plan
    blocks: Mapping[str, Any] = plan.providers or {}
    sandbox = opts is not None and opts.sandbox
    if sandbox:
        blocks = _sandbox_blocks(blocks, opts)
    return ProviderSet(
        loaded.registry,
        blocks,
        ProviderContext(plan_dir=plan.path.parent.resolve(), sandbox=sandbox),
        locate=lambda key: plan.location("providers", key),
        scope=opts.stage if opts is not None else None,
    )


def _sandbox_blocks(blocks: Mapping[str, Any], opts: RunOptions | None) -> dict[str, dict[str, Any]]:
    """Provider blocks pointed at the local emulators, which are started first if they are not running."""
    from cloudorch import sandbox
    from cloudorch.sandbox.endpoints import provider_blocks

    notify = (opts.notify if opts else None) or (lambda _text: None)
    box, started = sandbox.up(notify=notify)
    if started:
        notify(f"started the sandbox's emulators ({', '.join(e.name for e in box.emulators)}); "
               "`cloudorch sandbox down` stops them")
    return provider_blocks(box, blocks)


@dataclass
class Session:
    """One command's hold on a plan: loaded plan, providers, backend, lock, state."""

    loaded: Loaded
    providers: ProviderSet
    backend: StateBackend
    lock: LockHandle | None
    state: State
    recovered: RecoveryReport | None = None
    lock_took_over: Any = None
    policies: PolicySet | None = None
    policy_input: dict[str, Any] | None = None
    policy_report: PolicyReport | None = None
    policy_denied: CloudorchError | None = None


@contextmanager
def session(opts: RunOptions, *, lock: bool = True) -> Iterator[Session]:
    """Load the plan, take the state lock, recover from a crashed run, read state."""
    from cloudorch.engine.recovery import recover
    from cloudorch.state.lock import LockInfo
    from cloudorch.state.model import State

    loaded = load(opts)
    providers = _providers(loaded, opts)
    backend = backend_for(loaded.plan, opts)
    handle = backend.lock(LockInfo.new(opts.command), opts.lock_timeout) if lock else None
    try:
        took_over = getattr(handle, "took_over", None)
        if took_over is not None and opts.notify:
            opts.notify(f"took over a stale state lock held by {took_over.describe()}")
        report = recover(backend, providers) if lock else None
        if report is not None and opts.notify:
            opts.notify(report.summary())
        state = backend.read() or State(plan_name=plan_key(loaded.plan), state_key=state_key(loaded.plan, opts))
        yield Session(loaded, providers, backend, handle, state, report, getattr(handle, "took_over", None))
    finally:
        providers.close()
        if handle is not None:
            handle.release()


# --------------------------------------------------------------------------- plan


def _scope(loaded: Loaded, state: State, opts: RunOptions) -> set[str] | None:
    from cloudorch import graph as graphs

    if not opts.targets and not opts.excludes:
        return None
    g = loaded.graph
    known = set(g.nodes) | set(state.resources)

    def expand_names(names: Sequence[str], flag: str) -> set[str]:
        out: set[str] = set()
        for n in names:
            hits = {a for a in known if a == n or a.startswith(n + "[")}
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


def plan_in(sess: Session, opts: RunOptions) -> ChangeSet:
    """Compute a changeset inside an open session (state locked)."""
    from cloudorch import graph as graphs
    from cloudorch.engine.planner import Planner, PlanRequest, adopt_refreshed, make_changeset, refresh

    loaded, state = sess.loaded, sess.state
    for r in opts.replace:
        if r not in loaded.graph:
            raise ConfigError(f"--replace {r}: no such resource in the plan")
    scope = _scope(loaded, state, opts)
    request = PlanRequest(
        refresh=opts.refresh,
        targets=opts.targets,
        excludes=opts.excludes,
        replace=opts.replace,
        destroy=opts.destroy,
        parallelism=opts.parallelism,
    )
    records = [r for a, r in state.resources.items() if scope is None or a in scope]
    observed = refresh(records, sess.providers, parallelism=opts.parallelism).observed if opts.refresh else {}
    order = [a for a in graphs.order(loaded.graph) if scope is None or a in scope]
    planner = Planner(loaded.plan, loaded.instances, order, state, sess.providers, request)
    changes = planner.run(observed)
    adopt_refreshed(state, observed, sess.providers)
    if scope is not None:
        changes = [c for c in changes if c.address in scope]
    cs = make_changeset(loaded.plan, changes, state, request, state_key=state.state_key)
    cs.inputs = {"vars": dict(opts.vars), "var_files": [str(p) for p in opts.var_files]}
    check_policies(sess, opts, cs)
    return cs


def check_policies(sess: Session, opts: RunOptions, cs: ChangeSet) -> PolicyReport | None:
    """Evaluate the plan's policies on a changeset; results go into the changeset and reports."""
    plan = sess.loaded.plan
    if not plan.policies and not opts.policy_paths:
        return None
    from cloudorch.policy import build_input, load_policies

    if sess.policies is None:
        sess.policies = load_policies(
            list(plan.policies or []),
            base_dir=plan.path.parent,
            extra_paths=list(opts.policy_paths),
            context=dict(plan.providers or {}),
            plan_file=str(plan.path),
        )
    from cloudorch.release.clock import now

    sess.policy_input = build_input(
        cs,
        provider_configs=dict(plan.providers or {}),
        stage=opts.stage,
        release=release_document(plan, opts),
        now=now(),
    )
    report = sess.policies.evaluate(sess.policy_input)
    cs.policy_results = report.results
    sess.policy_report = report
    for fmt, target in opts.policy_reports:
        Path(target).write_text(report.render(fmt, locate=_locator(plan)), encoding="utf-8")
    return report


def release_document(plan: PlanSpec, opts: RunOptions) -> dict[str, Any] | None:
    """`input.release` for policies: the plan's `release:` block with this run's version."""
    if plan.release is None and opts.release_version is None:
        return None
    doc = {k: v for k, v in (plan.release or {}).items() if k != "groups"}
    if opts.release_version is not None:
        doc["version"] = opts.release_version
    return doc


def _locator(plan: PlanSpec) -> Callable[[str | None], tuple[str, int] | None]:
    def locate(address: str | None) -> tuple[str, int] | None:
        if address is None:
            return (str(plan.path), 1)
        name = address.split("[", 1)[0]
        loc = plan.location("resources", name)
        return (loc.file, loc.line or 1)

    return locate


def plan(opts: RunOptions) -> ChangeSet:
    with session(opts) as sess:
        return plan_in(sess, opts)


# --------------------------------------------------------------------------- apply


def check_saved(cs: ChangeSet, sess: Session) -> None:
    """Terraform's stale-plan rule: refuse a saved plan when state or the plan file moved."""
    state = sess.state
    lineage = state.lineage if state.serial > 0 else None
    if cs.state_lineage is not None and lineage is not None and cs.state_lineage != lineage:
        raise StalePlanError(
            "the saved plan was made for a different state (lineage differs)",
            hint="run `cloudorch plan -o FILE` again against this state",
        )
    if cs.state_serial != state.serial:
        raise StalePlanError(
            f"the saved plan is stale: state moved from serial {cs.state_serial} to {state.serial} since it was made",
            hint="run `cloudorch plan -o FILE` again and review the new plan",
        )
    if cs.plan_hash != sess.loaded.plan.plan_hash():
        raise StalePlanError(
            f"the plan file {cs.plan_file} or its variables changed since the plan was saved",
            hint="run `cloudorch plan -o FILE` again and review the new plan",
        )


def options_for_saved(cs: ChangeSet, base: RunOptions) -> RunOptions:
    """The options a saved plan was made with (same plan file, same variable inputs)."""
    from dataclasses import replace

    inputs = cs.inputs or {}
    stage = base.stage
    if stage is None and cs.state_key.startswith(f"{cs.plan_name}."):
        stage = cs.state_key[len(cs.plan_name) + 1 :]  # a plan saved for one release stage applies to it
    return replace(
        base,
        stage=stage,
        plan_file=Path(cs.plan_file),
        vars=dict(inputs.get("vars", {})),
        var_files=[Path(p) for p in inputs.get("var_files", [])],
        destroy=cs.destroy,
    )


class SigintGuard:
    """While applying, Ctrl-C (and SIGTERM) become scheduler interrupts instead of exceptions."""

    def __init__(self, interrupt: Interrupt) -> None:
        self.interrupt = interrupt
        self._old: dict[int, Any] = {}

    def __enter__(self) -> SigintGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, lambda _s, _f: self.interrupt.fire())
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def apply(
    opts: RunOptions,
    *,
    saved: ChangeSet | None = None,
    confirm: Callable[[ChangeSet], bool] | None = None,
    observer: ApplyObserver | None = None,
    interrupt: Interrupt | None = None,
    on_plan: Callable[[ChangeSet], None] | None = None,
) -> ApplyResult | None:
    """Plan (or take a saved plan), confirm, and apply. None means the user declined."""
    from cloudorch.engine.applier import Applier, check_on_failure
    from cloudorch.engine.planner import adopt_seen_in_diffs
    from cloudorch.engine.scheduler import Interrupt as _Interrupt

    check_on_failure(opts.on_failure)
    if saved is not None:
        opts = options_for_saved(saved, opts)
    intr = interrupt or _Interrupt()
    with session(opts) as sess:
        if saved is not None:
            check_saved(saved, sess)
            cs = saved
            adopt_seen_in_diffs(sess.state, cs)
            check_policies(sess, opts, cs)  # apply judges again, with today's policies
        else:
            cs = plan_in(sess, opts)
        if on_plan is not None:
            on_plan(cs)
        override_events: list[Any] = []
        if sess.policy_report is not None:
            sess.policy_report.raise_if_blocked(dict(opts.overrides))
            override_events = sess.policy_report.apply_overrides(dict(opts.overrides), actor())
        if not cs.has_changes:
            return _finish_without_changes(sess, cs)
        repair = _repair_of(sess, cs)
        if confirm is not None and not confirm(cs):
            return None
        if repair is not None and opts.notify:
            opts.notify(repair["message"])
        journal = _start_journal(sess, opts)
        applier = Applier(
            cs,
            sess.state,
            sess.providers,
            sess.backend,
            journal,
            parallelism=opts.parallelism,
            observer=observer,
            interrupt=intr,
            on_resolved=_resolved_policy_hook(sess, opts, intr),
            on_failure=opts.on_failure,
        )
        sess.state.events.extend(override_events)
        with SigintGuard(intr):
            result = applier.run()
            result.repair = repair
            if opts.on_failure == "rollback" and result.failed and not result.abandoned and intr.count == 0:
                result.undo = _roll_back(sess, opts, journal, result, observer, intr)
        _record_apply(sess, result)
        applier.write_state()
        stats = journal.stats()
        result.journal_lines, result.journal_fsyncs = stats.lines, stats.fsyncs
        if result.abandoned or (result.undo is not None and result.undo.abandoned):
            journal.abandon()  # operations still running: the next command recovers them
        else:
            journal.close({"succeeded": len(result.succeeded), "failed": len(result.failed)})
            journal.discard()
        if sess.policy_denied is not None:
            raise sess.policy_denied
        if result.interrupted:
            raise Interrupted(
                f"apply interrupted: {len(result.succeeded)} operation(s) finished and were saved, "
                f"{len(result.not_started)} not started"
                + (f", {len(result.abandoned)} abandoned while running" if result.abandoned else ""),
                hint="run `cloudorch apply` again to finish; the journal lets it recover anything in flight",
            )
        return result


def _roll_back(
    sess: Session, opts: RunOptions, journal: Any, result: ApplyResult, observer: ApplyObserver | None, intr: Interrupt
) -> Any:
    """Undo what this apply finished, from the journal's inverse records (--on-failure=rollback)."""
    from cloudorch.engine.rollback import rollback

    if observer is not None:
        observer.message(
            f"{', '.join(sorted(result.failed))} failed: rolling back the {len(result.succeeded)} "
            "operation(s) this apply finished"
        )
    return rollback(
        journal.replay(),
        sess.state,
        sess.providers,
        sess.backend,
        journal,
        parallelism=opts.parallelism,
        observer=observer,
        interrupt=intr,
        reason="failed: " + ", ".join(sorted(result.failed)),
    )


def _repair_of(sess: Session, cs: ChangeSet) -> dict[str, Any] | None:
    """When the last apply failed or was interrupted, say that this one is a repair run."""
    last = next(
        (e for e in reversed(sess.state.events) if e.kind in ("apply", "destroy", "recovery")), None
    )
    if last is None:
        return None
    if last.kind == "recovery":
        why = "was killed and its journal was recovered"
    elif last.detail.get("rolled_back"):
        return None  # the failed apply was undone: this one starts afresh
    elif last.detail.get("failed"):
        why = "failed (" + ", ".join(last.detail["failed"]) + ")"
    elif last.detail.get("interrupted"):
        why = "was interrupted"
    else:
        return None
    todo = sorted(c.address for c in cs.changes if c.is_change)
    return {
        "previous": last.kind,
        "previous_at": last.at,
        "why": why,
        "operations": todo,
        "message": f"Repair run: the previous {last.kind if last.kind != 'recovery' else 'apply'} {why}; "
        f"this apply re-runs only the {len(todo)} operation(s) that did not finish and what depends on them.",
    }


@dataclass
class RecoverOutcome:
    """What `cloudorch recover` found and did."""

    report: RecoveryReport | None
    took_over: Any = None
    undo: Any = None  # an engine.rollback.UndoReport when an unfinished rollback was completed
    state_serial: int = 0


def recover(opts: RunOptions, *, observer: ApplyObserver | None = None) -> RecoverOutcome:
    """Take the lock (a dead holder's is taken over), fold a leftover journal into state, adopt what
    in-flight creates made, and finish a rollback a crash cut short. No journal: nothing to do."""
    from dataclasses import replace

    from cloudorch.engine.rollback import rollback
    from cloudorch.engine.scheduler import Interrupt as _Interrupt

    with session(replace(opts, notify=None)) as sess:
        outcome = RecoverOutcome(sess.recovered, sess.lock_took_over, state_serial=sess.state.serial)
        report = sess.recovered
        if report is None or not report.rollback_unfinished or report.replay is None:
            return outcome
        journal = _start_journal(sess, opts)
        intr = _Interrupt()
        with SigintGuard(intr):
            outcome.undo = rollback(
                report.replay,
                sess.state,
                sess.providers,
                sess.backend,
                journal,
                parallelism=opts.parallelism,
                observer=observer,
                interrupt=intr,
                reason="finishing the rollback of an apply that was killed",
            )
        from cloudorch.state.model import StateEvent

        sess.state.events.append(StateEvent(kind="undo", actor=actor(), detail=outcome.undo.to_json()))
        sess.backend.write_next(sess.state)
        journal.close({"undone": len(outcome.undo.undone)})
        journal.discard()
        outcome.state_serial = sess.state.serial
        return outcome


def _start_journal(sess: Session, opts: RunOptions) -> Journal:
    """A new apply journal for this session, bound to the state it applies to, fenced by its lock."""
    from cloudorch.state.journal import start_journal

    return start_journal(
        sess.backend,
        {
            "plan_name": plan_key(sess.loaded.plan),
            "state_key": sess.state.state_key,
            "lineage": sess.state.lineage,
            "serial": sess.state.serial,
            "command": opts.command,
            "actor": actor(),
        },
        lease=sess.lock,
    )


def _resolved_policy_hook(
    sess: Session, opts: RunOptions, intr: Interrupt
) -> Callable[[Change, dict[str, Any]], None] | None:
    """Check policies again on values that were unknown at plan time, before the operation."""
    pset = sess.policies
    if pset is None:
        return None

    def hook(change: Change, after: dict[str, Any]) -> None:
        known = change.model_copy(update={"after": after, "after_unknown": []})
        report = pset.check_resource(known, input_doc=sess.policy_input)
        try:
            report.raise_if_blocked(dict(opts.overrides))
        except CloudorchError as exc:
            sess.policy_denied = exc
            intr.fire()  # a policy broke mid-apply: start nothing new
            raise

    return hook


def _finish_without_changes(sess: Session, cs: ChangeSet) -> ApplyResult:
    from cloudorch.engine.applier import ApplyResult

    outputs = compute_outputs(sess.loaded.plan, sess.state)
    if outputs != sess.state.outputs or sess.recovered is not None:
        sess.state.outputs = outputs
        sess.backend.write_next(sess.state)
    return ApplyResult(changeset=cs, state=sess.state)


def _record_apply(sess: Session, result: ApplyResult) -> None:
    from cloudorch.state.model import StateEvent

    state = sess.state
    state.plan_name = plan_key(sess.loaded.plan)
    state.outputs = compute_outputs(sess.loaded.plan, state) if state.resources else {}
    counts = {k: v for k, v in result.changeset.counts().items() if v and k != "no-op"}
    rollback = result.changeset.inputs.get("rollback")  # set by `rollback_plan`: from/to serials
    state.events.append(
        StateEvent(
            kind="destroy" if result.changeset.destroy else ("rollback" if rollback else "apply"),
            actor=actor(),
            detail={
                "counts": counts,
                "failed": sorted(result.failed),
                "interrupted": result.interrupted,
                **({"rolled_back": result.undo.to_json()} if result.undo is not None else {}),
                "seconds": round(result.seconds, 3),
                **(rollback or {}),
            },
        )
    )
    del state.events[:-200]  # keep the audit trail bounded; history keeps older documents


def compute_outputs(plan: PlanSpec, state: State) -> dict[str, Any]:
    from cloudorch.planfile import Reference, Unknown, resolve
    from cloudorch.planfile.expand import instance_address

    def lookup(ref: Reference) -> Any:
        if ref.root != "resources":
            return Unknown(ref.text)
        name, key, rest = ref.resource_target()
        rec = state.resources.get(instance_address(name, key))
        if rec is None:
            return None
        try:
            return rec.value(rest)
        except (LookupError, TypeError):
            return None

    out: dict[str, Any] = {}
    for name, spec in (plan.outputs or {}).items():
        value = resolve(spec.value, lookup)
        out[name] = {"value": None if isinstance(value, Unknown) else value, "sensitive": spec.sensitive}
    return out


def destroy(opts: RunOptions, **kwargs: Any) -> ApplyResult | None:
    from dataclasses import replace

    return apply(replace(opts, destroy=True), **kwargs)


def actor() -> str:
    for var in (
        "CLOUDORCH_ACTOR",
        "GITHUB_ACTOR",
        "GITLAB_USER_LOGIN",
        "BUILD_REQUESTEDFOR",
        "CIRCLE_USERNAME",
    ):
        if os.environ.get(var):
            return os.environ[var]
    from cloudorch.state.lock import current_user

    return current_user()


# --------------------------------------------------------------------------- read-only commands


def read_state(opts: RunOptions) -> tuple[PlanSpec, State | None, StateBackend]:
    """State without taking the lock (list, show, output, history)."""

    plan = read_plan(opts)
    backend = backend_for(plan, opts)
    return plan, backend.read(), backend


def outputs(opts: RunOptions) -> dict[str, Any]:
    _, state, _ = read_state(opts)
    return dict(state.outputs) if state else {}


def state_list(opts: RunOptions) -> list[ResourceRecord]:
    _, state, _ = read_state(opts)
    return sorted(state.resources.values(), key=lambda r: r.address) if state else []


def state_show(opts: RunOptions, address: str) -> ResourceRecord:
    _, state, backend = read_state(opts)
    if state is None or address not in state.resources:
        known = sorted(state.resources) if state else []
        raise StateError(
            f"{address} is not in state ({backend.describe()})",
            hint="addresses in state: " + (", ".join(known[:20]) or "none"),
        )
    return state.resources[address]


def _mutate_state(opts: RunOptions, fn: Callable[[State], str], kind: str) -> str:
    """Run a state surgery under the lock and record it as an event."""
    from cloudorch.state.lock import LockInfo
    from cloudorch.state.model import State, StateEvent

    plan, _, backend = read_state(opts)
    with backend.lock(LockInfo.new(opts.command), opts.lock_timeout):
        state = backend.read() or State(plan_name=plan_key(plan), state_key=plan_key(plan))
        what = fn(state)
        state.events.append(StateEvent(kind=kind, actor=actor(), detail={"what": what}))
        backend.write_next(state)
    return what


def state_rm(opts: RunOptions, address: str) -> str:
    def fn(state: State) -> str:
        if address not in state.resources:
            raise StateError(f"{address} is not in state", hint="see `cloudorch state list PLAN_FILE`")
        del state.resources[address]
        return f"removed {address} from state (the cloud object was left alone)"

    return _mutate_state(opts, fn, "state_rm")


def state_mv(opts: RunOptions, old: str, new: str) -> str:
    def fn(state: State) -> str:
        if old not in state.resources:
            raise StateError(f"{old} is not in state", hint="see `cloudorch state list PLAN_FILE`")
        if new in state.resources:
            raise StateError(
                f"{new} is already in state", hint=f"remove it first: cloudorch state rm PLAN {new}"
            )
        rec = state.resources.pop(old)
        state.resources[new] = rec.model_copy(update={"address": new})
        return f"moved {old} to {new}"

    return _mutate_state(opts, fn, "state_mv")


def state_import(opts: RunOptions, address: str, cloud_id: str) -> ResourceRecord:
    """Adopt an existing cloud object into state under an address the plan declares."""
    from cloudorch.state.lock import LockInfo
    from cloudorch.state.model import ResourceRecord, State, StateEvent

    loaded = load(opts)
    inst = next((i for i in loaded.instances if i.address == address), None)
    if inst is None:
        raise ConfigError(
            f"{address} is not declared in {loaded.plan.path}",
            hint="add the resource to the plan file first, then import it",
        )
    providers = _providers(loaded, opts)
    backend = backend_for(loaded.plan, opts)
    try:
        with backend.lock(LockInfo.new(opts.command), opts.lock_timeout):
            state = backend.read() or State(plan_name=plan_key(loaded.plan), state_key=plan_key(loaded.plan))
            if address in state.resources:
                raise StateError(f"{address} is already in state", hint="`cloudorch state rm` it first")
            rt = providers.resource_type(inst.provider, inst.type)
            seen = rt.import_(address, cloud_id)
            rec = ResourceRecord(
                address=address,
                type=inst.type,
                provider=inst.provider,
                id=seen.id,
                properties=seen.properties,
                attributes=seen.attributes,
                dependencies=[],
            )
            state.resources[address] = rec
            state.events.append(
                StateEvent(kind="import", actor=actor(), detail={"address": address, "id": cloud_id})
            )
            backend.write_next(state)
            return rec
    finally:
        providers.close()


def state_history(opts: RunOptions) -> list[Any]:
    _, _, backend = read_state(opts)
    return backend.history()


def _plan_documents(plan: PlanSpec, opts: RunOptions) -> list[str]:
    """Every state document a plan can have: its own (or the --stage one's), each stage's, the release ledger."""
    key = plan_key(plan)
    if opts.stage is not None:
        return [state_key(plan, opts)]
    return [key, *(f"{key}.{s}" for s in plan.stages or {}), f"{key}..release"]


@dataclass
class MigrateResult:
    """What `state migrate` did: the documents copied and whether the plan file now points at the target."""

    target: str
    documents: list[Any]
    switched: bool
    switch_note: str


def state_migrate(opts: RunOptions, to_url: str) -> MigrateResult:
    """Copy every state document of the plan (current + history) to `to_url`, verify, switch the plan."""
    from cloudorch.errors import Location
    from cloudorch.state.backends import open_backend
    from cloudorch.state.backends.url import OPTIONS_BY_SCHEME, CommonOptions, parse_backend_url
    from cloudorch.state.migrate import copy_document, switch_plan_backend

    plan = read_plan(opts)
    root = Path(opts.state_dir or (plan.path.parent / ".cloudorch"))
    block = dict(plan.backend or {}) if isinstance(plan.backend, dict) else {}
    target_scheme = parse_backend_url(to_url, Location("--to")).scheme
    # the target shares the options every backend has (encryption, lease); cloud options come from its SDK env
    common = {k: v for k, v in block.items() if k in CommonOptions.model_fields and k != "url"}
    copied = []
    for key in _plan_documents(plan, opts):
        source = backend_for(plan, opts, key=key)
        target = open_backend(to_url, common, key=key, local_root=root, env=opts.env)
        if source.describe() == target.describe():
            raise ConfigError(f"--to {to_url}: the state already lives there", hint="pick another location")
        done = copy_document(source, target, key=key, command=opts.command, lock_timeout=opts.lock_timeout)
        if done is not None:
            copied.append(done)
    if not copied:
        raise StateError(
            f"nothing to migrate: {plan.path} has no state yet",
            hint="apply the plan first, or point --backend at where its state is",
        )
    if opts.backend_url:
        note = f"--backend/CLOUDORCH_BACKEND named the source: use --backend {to_url} from now on"
        return MigrateResult(to_url, copied, False, note)
    if opts.stage is not None:
        note = f"copied stage {opts.stage} only; the plan still points at its old backend for the other documents"
        return MigrateResult(to_url, copied, False, note)
    left = sorted(set(block) - set(OPTIONS_BY_SCHEME[target_scheme].model_fields))
    if left:
        note = f"backend options {', '.join(left)} do not apply to {target_scheme}:// — edit {plan.path} yourself"
        return MigrateResult(to_url, copied, False, note)
    url_line = plan.location("backend", "url").line if "url" in block else None
    switched = switch_plan_backend(plan.path, block.get("url"), to_url, url_line)
    note = f"{plan.path} now has backend url {to_url}" if switched else f"set backend.url: {to_url} in {plan.path}"
    return MigrateResult(to_url, copied, switched, note)


def state_rekey(opts: RunOptions, old_key_envs: Sequence[str] = (), old_key_files: Sequence[Path] = ()) -> list[Any]:
    """Re-encrypt each state document of the plan with the backend's configured key."""
    from cloudorch.state.crypto import StateKey
    from cloudorch.state.migrate import rekey_document

    plan = read_plan(opts)
    env = dict(os.environ if opts.env is None else opts.env)
    old = [StateKey.from_env(n, env) for n in old_key_envs] + [StateKey.from_file(p) for p in old_key_files]
    done = []
    for key in _plan_documents(plan, opts):
        backend = backend_for(plan, opts, key=key)
        got = rekey_document(
            backend, key=key, command=opts.command, lock_timeout=opts.lock_timeout, actor=actor(), old_keys=old
        )
        if got is not None:
            done.append(got)
    if not done:
        raise StateError(f"nothing to rekey: {plan.path} has no state yet", hint="apply the plan first")
    return done


def force_unlock(opts: RunOptions, lock_id: str) -> None:
    _, _, backend = read_state(opts)
    backend.force_unlock(lock_id)


def policy_check(opts: RunOptions) -> PolicyReport:
    """Plan and evaluate the plan's policies (and --policy ones) without applying anything."""
    with session(opts) as sess:
        plan_in(sess, opts)
        if sess.policy_report is None:
            raise ConfigError(
                f"{sess.loaded.plan.path} declares no policies",
                hint="add a `policies:` list to the plan file, or pass --policy PATH",
            )
        return sess.policy_report


def policy_test(path: Path) -> list[RegoTestResult]:
    """Run the Rego unit tests (`test_*` rules) under a file or folder."""
    from cloudorch.policy import run_rego_tests

    return run_rego_tests(path)


def force_unlock_any(state_root: Path, lock_id: str) -> None:
    """Force-unlock by id alone: look through the local locks under `state_root`."""
    from cloudorch.state.backends.local import LocalBackend

    locks = sorted((state_root / "locks").glob("*.lock")) if (state_root / "locks").is_dir() else []
    for path in locks:
        backend = LocalBackend(state_root, path.stem)
        held = backend.current_lock()
        if held is not None and held.id == lock_id:
            backend.force_unlock(lock_id)
            return
    raise StateError(
        f"no lock with id {lock_id} under {state_root}",
        hint="pass the plan file too: cloudorch force-unlock ID PLAN_FILE",
    )


def schema() -> dict[str, Any]:
    from cloudorch.planfile import plan_json_schema
    from cloudorch.providers import Registry

    return plan_json_schema(Registry())


def providers_info() -> list[dict[str, Any]]:
    from cloudorch.providers import Registry, force_new_fields, sensitive_fields

    reg = Registry()
    out: list[dict[str, Any]] = []
    for name in reg.names():
        try:
            cls = reg.provider_class(name)
        except ConfigError as exc:
            out.append({"name": name, "error": exc.message, "types": []})
            continue
        out.append(
            {
                "name": name,
                "package": cls.package,
                "types": [
                    {
                        "type": rt.type_name,
                        "description": rt.description,
                        "properties": sorted(rt.Properties.model_fields),
                        "force_new": sorted(force_new_fields(rt.Properties)),
                        "sensitive": sorted(sensitive_fields(rt.Properties)),
                        "attributes": sorted(rt.attributes),
                    }
                    for rt in cls.resource_types
                ],
            }
        )
    return out


# --------------------------------------------------------------------------- drift and rollback (issue #6)


def drift(opts: RunOptions) -> DriftReport:
    """Refresh what is in scope and report drift three ways, with policies judged on the live state.

    Reads the cloud and state only; `--reconcile` is a normal `apply` afterwards.
    """
    from cloudorch import graph as graphs
    from cloudorch.engine.drift import detect

    with session(opts) as sess:
        loaded = sess.loaded
        report, live = detect(
            loaded.plan,
            loaded.instances,
            graphs.order(loaded.graph),
            sess.state,
            sess.providers,
            scope=_scope(loaded, sess.state, opts),
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
                policy_report.apply_overrides(dict(opts.overrides), actor())  # judged only: drift writes no state
            report.policy_results = policy_report.results
            for fmt, target in opts.policy_reports:
                Path(target).write_text(policy_report.render(fmt, locate=_locator(plan)), encoding="utf-8")
        return report


def _plan_sensitive_values(sess: Session) -> dict[str, dict[str, Any]]:
    """address -> sensitive property -> the plan's value today (references resolved from state)."""
    from cloudorch.planfile import Reference, Unknown, contains_unknown, resolve
    from cloudorch.planfile.expand import instance_address
    from cloudorch.providers import sensitive_fields

    def lookup(ref: Reference) -> Any:
        if ref.root != "resources":
            return Unknown(ref.text)
        name, key, rest = ref.resource_target()
        rec = sess.state.resources.get(instance_address(name, key))
        try:
            return rec.value(rest) if rec is not None else Unknown(ref.text)
        except (LookupError, TypeError):
            return Unknown(ref.text)

    out: dict[str, dict[str, Any]] = {}
    for inst in sess.loaded.instances:
        sens = sensitive_fields(sess.providers.resource_type(inst.provider, inst.type).Properties)
        wanted = {k: v for k, v in inst.properties.items() if k in sens}
        if wanted:
            values = resolve(wanted, lookup)
            out[inst.address] = {k: v for k, v in values.items() if not contains_unknown(v)}
    return out


def rollback_plan(opts: RunOptions, *, to: int | None = None, steps: int | None = None) -> ChangeSet:
    """The changeset that brings the cloud back to the resources of an earlier state version.

    Desired properties come from that version (the last applied ones then), compared with the
    cloud as it is now; what was created since is deleted. Lifecycle rules and policies apply.
    """
    from cloudorch import graph as graphs
    from cloudorch.engine.drift import pick_serial, version_instances
    from cloudorch.engine.planner import Planner, PlanRequest, make_changeset, refresh

    with session(opts) as sess:
        loaded, state = sess.loaded, sess.state
        serial = pick_serial(sess.backend.history(), state.serial, to, steps)
        version = sess.backend.read_version(serial)
        instances, edges, missing = version_instances(
            version, loaded.instances, _plan_sensitive_values(sess), sess.providers, loaded.plan.location()
        )
        if missing:
            names = ", ".join(f"{m.address}.{m.property}" for m in missing)
            raise ConfigError(
                f"cannot restore sensitive value(s) of serial {serial}: {names} (state keeps only their hashes)",
                hint="set the plan file (or --var) to the value each had then: cloudorch matches it by hash; "
                "or roll back to another serial",
            )
        g = graphs.build([(i.address, {}) for i in instances], edges)
        request = PlanRequest(parallelism=opts.parallelism)
        observed = refresh(list(state.resources.values()), sess.providers, parallelism=opts.parallelism).observed
        planner = Planner(loaded.plan, instances, graphs.order(g), state, sess.providers, request)
        changes = planner.run(observed)
        for c in changes:
            if c.action.value == "delete":
                c.reasons = [f"not in serial {serial}"]
            elif c.is_change:
                c.reasons.append(f"rollback to serial {serial}")
        cs = make_changeset(loaded.plan, changes, state, request, state_key=state.state_key)
        cs.inputs = {
            "vars": dict(opts.vars),
            "var_files": [str(p) for p in opts.var_files],
            "rollback": {"from_serial": state.serial, "to_serial": serial},
        }
        check_policies(sess, opts, cs)
        return cs


def rollback_to(
    opts: RunOptions,
    *,
    to: int | None = None,
    steps: int | None = None,
    confirm: Callable[[ChangeSet], bool] | None = None,
    observer: ApplyObserver | None = None,
    on_plan: Callable[[ChangeSet], None] | None = None,
) -> ApplyResult | None:
    """Plan a rollback to an earlier serial, confirm, and apply it through the normal apply path.

    The apply refuses if state moved since the rollback was planned (the saved-plan rule); the
    new state gets a new serial and a `rollback` event with both serials. None: declined.
    """
    cs = rollback_plan(opts, to=to, steps=steps)
    return apply(opts, saved=cs, confirm=confirm, observer=observer, on_plan=on_plan)


# --------------------------------------------------------------------------- releases
# Release stages and promotion live in `cloudorch.release`; these are the facade's names for them.


def release_deploy(opts: RunOptions, version: str, **kwargs: Any) -> Any:
    """Apply `version` to `opts.stage` (any version into a first stage); see `release.promotion.deploy`."""
    from cloudorch.release.promotion import deploy

    return deploy(opts, version, **kwargs)


def release_promote(opts: RunOptions, to: str, **kwargs: Any) -> Any:
    """Evaluate stage `to`'s gates for a version and apply it there only if all pass."""
    from cloudorch.release.promotion import promote

    return promote(opts, to, **kwargs)


def release_approve(opts: RunOptions, version: str, comment: str | None = None) -> dict[str, Any]:
    from cloudorch.release.promotion import approve

    return approve(opts, version, comment)


def release_reject(opts: RunOptions, version: str, reason: str) -> dict[str, Any]:
    from cloudorch.release.promotion import reject

    return reject(opts, version, reason)


def release_rollback(opts: RunOptions, **kwargs: Any) -> Any:
    from cloudorch.release.promotion import rollback

    return rollback(opts, **kwargs)


def release_status(opts: RunOptions) -> dict[str, Any]:
    from cloudorch.release.promotion import status

    return status(opts)


def release_history(opts: RunOptions, stage: str | None = None) -> list[dict[str, Any]]:
    from cloudorch.release.promotion import history

    return history(opts, stage)
