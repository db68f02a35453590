"""A run's hold on a plan: load and bind it (`load`), open its providers (`workspace`), and take the
state lock, recover a crashed run and read state (`session`).

Folding a killed run's journal into state is the operation's decision (`fold=`), never a side
effect of opening a session: commands that change the world fold it; commands that only read
leave it where it is, say that it waits (`Session.waiting`, the `notify` callback) and read
state as stored.

Every step is logged at DEBUG on the `cloudorch.run` logger ("loaded", "locked", "recovery
checked"), so a caller can see how often an operation loads or locks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudorch.errors import ConfigError, Location
from cloudorch.planfile.stages import stages_of
from cloudorch.run.options import RunOptions

if TYPE_CHECKING:
    from cloudorch.engine.providerset import ProviderSet
    from cloudorch.engine.recovery import RecoveryReport
    from cloudorch.graph import Graph
    from cloudorch.planfile import Instance, PlanSpec
    from cloudorch.provider.registry import Registry
    from cloudorch.state.backends.base import StateBackend
    from cloudorch.state.journal import PendingRun
    from cloudorch.state.lock import LockHandle, LockInfo
    from cloudorch.state.model import State

log = logging.getLogger("cloudorch.run")


@dataclass(frozen=True)
class Loaded:
    """A plan file loaded, bound to the run's stage, expanded, type-checked, with its graph."""

    plan: PlanSpec
    instances: list[Instance]
    registry: Registry
    graph: Graph


def read_plan(opts: RunOptions) -> PlanSpec:
    """The plan file alone, its variables resolved from the run's --var, --var-file and environment."""
    from cloudorch.planfile import load_plan
    from cloudorch.run.recording import saw_plan
    from cloudorch.run.stacks import loading, reader_for

    with loading(opts.plan_file):
        plan = load_plan(
            Path(opts.plan_file),
            vars=dict(opts.vars),
            var_files=list(opts.var_files),
            env=opts.env,
            stacks=reader_for(opts),
        )
    saw_plan(plan)  # the run being recorded reuses it instead of reading the file again
    return plan


def load(opts: RunOptions) -> Loaded:
    """Load, validate and type-check a plan file and build its graph (the `validate` command)."""
    from cloudorch import graph as graphs
    from cloudorch.planfile import check_types, expand
    from cloudorch.provider.registry import Registry

    plan = read_plan(opts)
    log.debug("loaded %s", plan.path)
    if plan.stages and opts.stage is None:
        return load_all_stages(plan, opts)  # validate and graph: every stage at once
    plan = bind_release(plan, opts)
    instances = expand(plan)
    registry = Registry()
    check_types(plan, registry, instances)
    edges: list[tuple[str, str]] = []
    if any(inst.depends_on for inst in instances):
        by_name: dict[str, list[str]] = {}
        for inst in instances:
            by_name.setdefault(inst.name, []).append(inst.address)
        edges = [
            (dep, inst.address) for inst in instances for name in inst.depends_on for dep in by_name.get(name, ())
        ]
    nodes = [(i.address, _node_attrs(i)) for i in instances]
    g = graphs.build(nodes, edges, locate=lambda address: _location_of(instances, address))
    return Loaded(plan, instances, registry, g)


def _node_attrs(inst: Instance) -> dict[str, str]:
    attrs = {"type": inst.type, "provider": inst.provider, "kind": "resource"}
    if inst.address.startswith("module."):  # see module_of: only such addresses are in a module
        attrs.update(_module(inst))
    return attrs


def _location_of(instances: list[Instance], address: str) -> Location | None:
    """Where the instance at `address` was written (looked up only to report a cycle)."""
    return next((i.location for i in reversed(instances) if i.address == address), None)


def load_all_stages(plan: PlanSpec, opts: RunOptions) -> Loaded:
    """Every stage's instances at once, addressed `stage.resource`, with the stages in the graph.

    This is what `validate` and `graph` see for a plan with stages and no `--stage`: every stage
    is bound and type-checked, so a `${stage.vars.X}` missing in one stage is found.
    """
    from dataclasses import replace as with_address

    from cloudorch import graph as graphs
    from cloudorch.planfile import check_types, expand
    from cloudorch.planfile.expand import bind_stage, stage_context
    from cloudorch.provider.registry import Registry

    stages = stages_of(plan)
    assert stages is not None
    registry = Registry()
    instances = []
    nodes: list[tuple[str, dict[str, object]]] = []
    edges: list[tuple[str, str]] = []
    for name in stages.order:
        stage = stages.by_name[name]
        nodes.append((name, {"kind": "stage", "needs": list(stage.needs), "gates": [g.name for g in stage.gates]}))
        edges += [(need, name) for need in stage.needs]
        bound = bind_stage(plan, stage_context(plan, name, opts.release_version))
        insts = expand(bound)
        check_types(bound, registry, insts)
        by_name: dict[str, list[str]] = {}
        for inst in insts:
            by_name.setdefault(inst.name, []).append(f"{name}.{inst.address}")
        for inst in insts:
            address = f"{name}.{inst.address}"
            instances.append(with_address(inst, address=address))
            attrs = {"type": inst.type, "provider": inst.provider, "kind": "resource", "stage": name}
            nodes.append((address, {**attrs, **_module(inst, f"{name}.")}))
            deps = [d for dep in inst.depends_on for d in by_name.get(dep, ())]
            edges += [(d, address) for d in deps] or [(name, address)]
    locations = {i.address: i.location for i in instances}
    g = graphs.build(nodes, edges, locate=locations.get)
    return Loaded(plan, instances, registry, g)


def _module(inst: Instance, prefix: str = "") -> dict[str, str]:
    """`{"module": "module.net[eu]"}` for a resource inside a module instance (the graph's clusters)."""
    from cloudorch.planfile.modules import module_of

    module = module_of(inst.address)
    return {"module": prefix + module} if module else {}


def validate(opts: RunOptions) -> Loaded:
    from cloudorch.state.backends.url import check_backend_block

    loaded = load(opts)
    plan = loaded.plan
    block = dict(plan.backend or {}) if isinstance(plan.backend, dict) else {}
    check_backend_block(opts.backend_url, block, lambda *field: plan.location("backend", *field))
    from cloudorch.run.recording import targets_of

    targets_of(plan, opts)  # notifications: known events and stages, apprise there for its schemes
    return loaded


def bind_release(plan: PlanSpec, opts: RunOptions) -> PlanSpec:
    """The plan as one run sees it: `${stage.*}` and `${release.*}` resolved for `opts.stage`."""
    from cloudorch.planfile.expand import STAGE_ROOTS, bind_stage, stage_context, uses_roots

    check_stage(plan, opts)
    if plan.stages:
        stages_of(plan)  # located errors for a malformed `stages:` before anything runs
    elif not uses_roots(plan, STAGE_ROOTS):
        return plan
    return bind_stage(plan, stage_context(plan, opts.stage, opts.release_version))


def gated_stage(plan: PlanSpec, opts: RunOptions) -> bool:
    """Whether the run's stage has release gates (which only `release promote` evaluates)."""
    stages = stages_of(plan) if plan.stages else None
    return bool(stages is not None and opts.stage is not None and stages.by_name[opts.stage].gates)


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


def providers_for(loaded: Loaded, opts: RunOptions | None = None) -> ProviderSet:
    from cloudorch.engine.providerset import ProviderSet
    from cloudorch.provider.contract import ProviderContext

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


@dataclass(frozen=True)
class Workspace:
    """A loaded plan and its open providers, without the state lock (verification reads the cloud here)."""

    opts: RunOptions
    loaded: Loaded
    providers: ProviderSet


@dataclass(frozen=True)
class WaitingRun:
    """The journal of a run that did not finish, left unfolded by a command that only reads."""

    where: str
    command: str
    actor: str
    done: int
    in_flight: int
    #: the run was undoing a failed apply when it stopped
    undoing: bool
    #: the command that folds it in (`cloudorch recover PLAN [--stage S]`)
    recover: str

    @classmethod
    def of(cls, run: PendingRun, recover: str) -> WaitingRun:
        header = run.replay.header or {}
        return cls(
            where=run.where,
            command=str(header.get("command", "")),
            actor=str(header.get("actor", "")),
            done=len(run.replay.completed),
            in_flight=len(run.replay.in_flight),
            undoing=run.replay.rollback is not None,
            recover=recover,
        )

    def message(self) -> str:
        who = " ".join(x for x in (self.command, self.actor and f"by {self.actor}") if x)
        what = "undo" if self.undoing else "run"
        return (
            f"an unfinished {what} waits: journal {self.where} ({who + ': ' if who else ''}{self.done} operation(s) "
            f"done, {self.in_flight} in flight) is not in state yet; this shows state as stored. "
            f"Fold it in with `{self.recover}` (or the next apply does)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "journal": self.where,
            "command": self.command,
            "actor": self.actor,
            "operations_done": self.done,
            "in_flight": self.in_flight,
            "undoing": self.undoing,
            "recover": self.recover,
        }


def recover_command(plan: PlanSpec, opts: RunOptions) -> str:
    stage = f" --stage {opts.stage}" if opts.stage else ""
    return f"cloudorch recover {plan.path}{stage}"


def waiting_in(backend: StateBackend, plan: PlanSpec, opts: RunOptions) -> WaitingRun | None:
    """The unfinished run whose journal waits beside `backend`'s state, verified; writes nothing.

    A journal that is not bound to the stored state is refused (StateError), as a fold would."""
    from cloudorch.state.journal import pending

    run = pending(backend)
    if run is None or run.ended_cleanly:
        return None
    return WaitingRun.of(run, recover_command(plan, opts))


@dataclass
class Session:
    """One operation's hold on a plan: loaded plan, providers, backend, lock, state."""

    loaded: Loaded
    providers: ProviderSet
    backend: StateBackend
    lock: LockHandle | None
    state: State
    recovered: RecoveryReport | None = None
    took_over: LockInfo | None = None
    #: a killed run's journal this session did not fold (`fold=False`): state is as stored without it
    waiting: WaitingRun | None = None


@contextmanager
def workspace(opts: RunOptions) -> Iterator[Workspace]:
    """Load the plan and open its providers; closed on exit."""
    loaded = load(opts)
    providers = providers_for(loaded, opts)
    try:
        yield Workspace(opts, loaded, providers)
    finally:
        providers.close()


@contextmanager
def locked(
    ws: Workspace, *, fold: bool, lock: bool = True, quiet: bool = False, resume_undo: bool = False
) -> Iterator[Session]:
    """Take the state lock, read state. `fold=True` (the operation changes the world, under the
    lock): first fold a killed run's journal into state. `fold=False`: leave it, and say it waits.
    `resume_undo`: the operation finishes an undo a kill cut short (`recover`); without it such a
    journal is refused rather than folded. `lock=False`: read state only."""
    from cloudorch.state.lock import LockInfo
    from cloudorch.state.model import State

    opts, loaded = ws.opts, ws.loaded
    notify = None if quiet else opts.notify
    backend = backend_for(loaded.plan, opts)
    handle = backend.lock(LockInfo.new(opts.command), opts.lock_timeout) if lock else None
    try:
        took_over: LockInfo | None = getattr(handle, "took_over", None)
        if handle is not None:
            log.debug("locked %s", backend.describe())
        if took_over is not None and notify:
            notify(f"took over a stale state lock held by {took_over.describe()}")
        folding = fold and lock
        report = None
        if folding:
            from cloudorch.engine.recovery import recover  # (a command that only reads never folds)

            report = recover(backend, ws.providers, resume_undo=resume_undo)
        waiting = None if folding else waiting_in(backend, loaded.plan, opts)
        if folding:
            log.debug("recovery checked %s", backend.describe())
        if report is not None and notify:
            notify(report.summary())
        if waiting is not None and notify:
            notify(waiting.message())
        state = backend.read() or State(plan_name=plan_key(loaded.plan), state_key=state_key(loaded.plan, opts))
        yield Session(loaded, ws.providers, backend, handle, state, report, took_over, waiting)
    finally:
        if handle is not None:
            handle.release()


@contextmanager
def session(
    opts: RunOptions, *, fold: bool, lock: bool = True, quiet: bool = False, resume_undo: bool = False
) -> Iterator[Session]:
    """Load the plan, take the state lock, fold a crashed run's journal (`fold=True`), read state."""
    from cloudorch.engine.collector import collector_paused

    with (
        collector_paused(),
        workspace(opts) as ws,
        locked(ws, fold=fold, lock=lock, quiet=quiet, resume_undo=resume_undo) as sess,
    ):
        yield sess
