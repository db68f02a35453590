"""The applier: carry out a changeset through the scheduler, journaling every operation.

Before each provider call a "started" line is made durable; after it a "finished" (or
"failed") line carries the resulting state record. State is updated in memory as operations
finish and written at the end and at checkpoints (every K operations or T seconds, growing
with the state so the total bytes written stay linear). A SIGKILL at any point loses no
finished operation: the journal is replayed by the next command (see `engine.recovery`).

A replace is two operations (see `Applier.tasks`): the old object of a create-before-destroy
replace is deposed in state from the moment the new one exists until its delete succeeds. A state
write that keeps failing stops new work and never fails an operation that succeeded.

Before the first operation, the applier journals the inverse of every planned change (see
`state.journal`), which `engine.undo` turns into the undo of a failed apply. `on_failure`
decides what a failure does to the rest: `stop` starts nothing new (running work finishes),
`continue` keeps starting independent work; dependents of a failure are skipped either way.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from cloudorch.changes import SENSITIVE, Action, Change, ChangeSet
from cloudorch.engine.providerset import ProviderSet
from cloudorch.engine.retry import RetryCounter, call_with_retries, create_once
from cloudorch.engine.scheduler import Interrupt, Scheduler, ScheduleResult, Task
from cloudorch.errors import CloudorchError, ConfigError, ProviderError, StateError
from cloudorch.planfile import Reference, Unknown, contains_unknown, resolve
from cloudorch.planfile.expand import instance_address
from cloudorch.planfile.source import paused_gc
from cloudorch.provider.contract import Observed, PartialCreate, ResourceType, force_new_fields, sensitive_fields
from cloudorch.state.backends.base import StateBackend
from cloudorch.state.journal import Journal
from cloudorch.state.model import (
    DeposedObject,
    ResourceRecord,
    State,
    is_sensitive_marker,
    now_iso,
    sensitive_marker,
)


class ApplyObserver:
    """Progress callbacks; the CLI renders them. Called from worker threads."""

    def op_started(self, change: Change) -> None: ...
    def op_finished(self, change: Change, seconds: float) -> None: ...
    def op_unchanged(self, change: Change, seconds: float) -> None:
        """A planned update whose values, once resolved, equal the object's: nothing was called."""
        self.op_finished(change, seconds)

    def op_failed(self, change: Change, error: BaseException) -> None: ...
    def op_retry(self, change: Change, error: ProviderError, attempt: int, delay: float) -> None: ...
    def message(self, text: str) -> None: ...
    def undo_started(self, total: int) -> None:
        """A rollback begins: `total` undo operations follow through the same callbacks."""


@dataclass
class ApplyResult:
    changeset: ChangeSet
    state: State
    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    not_started: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    #: with on_failure=stop/rollback: the failure after which nothing new was started
    stopped_by: str | None = None
    #: what `--on-failure=rollback` undid (an `engine.undo.UndoReport`), None when no undo ran
    undo: Any = None
    #: set when this apply repairs a failed or interrupted one: what that run left undone
    repair: dict[str, Any] | None = None
    retries: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    journal_lines: int = 0
    journal_fsyncs: int = 0
    checkpoints: int = 0
    #: a state write that kept failing during the run: nothing new was started after it
    checkpoint_error: StateError | None = None
    #: planned updates that were no-ops once values unknown at plan were known (also in `succeeded`)
    unchanged: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.failed
            or self.skipped
            or self.not_started
            or self.abandoned
            or self.interrupted
            or self.checkpoint_error is not None
        )


@dataclass(frozen=True)
class Op:
    """One scheduled operation: a change, or one half of a replace.

    `part`: `apply` (create, update, or the create half of a replace), `delete` (the current
    object), `destroy` (the old object of a replace) or `deposed` (a deposed object left by an
    earlier run). `deposed_key` names the deposed old object of a create-before-destroy replace
    (`create_first`) or the deposed object a `deposed` op deletes.
    """

    change: Change
    part: str
    deposed_key: str | None = None
    create_first: bool = False

    @property
    def key(self) -> str:
        if self.part == "destroy":
            return f"{self.change.address} (destroy old)"
        return self.change.op_key

    @property
    def journal_id(self) -> str:
        if self.part == "destroy":
            return f"{self.change.address}#destroy"
        if self.part == "deposed":
            return f"{self.change.address}#deposed:{self.deposed_key}"
        return self.change.address

    @property
    def action(self) -> str:
        return "delete" if self.part in ("destroy", "deposed") else self.change.action.value


ON_FAILURE_MODES = ("stop", "continue", "rollback")


def check_on_failure(value: str) -> str:
    """Validate `--on-failure`; a clear ConfigError for anything else."""
    if value not in ON_FAILURE_MODES:
        raise ConfigError(
            f"--on-failure={value}: expected one of {', '.join(ON_FAILURE_MODES)}",
            hint="stop (default) starts nothing new after a failure, continue keeps starting independent work, "
            "rollback undoes everything this apply did",
        )
    return value


#: hook run on resolved properties before an operation (policy checks on values known only now)
ResolvedHook = Callable[[Change, dict[str, Any]], None]


@dataclass
class CheckpointPolicy:
    every_ops: int = 1000
    every_seconds: float = 30.0
    #: a state write is tried this often, with exponential backoff, before the run stops
    write_attempts: int = 5
    write_first_delay: float = 0.2


class Applier:
    def __init__(
        self,
        changeset: ChangeSet,
        state: State,
        providers: ProviderSet,
        backend: StateBackend,
        journal: Journal,
        *,
        parallelism: int,
        observer: ApplyObserver | None = None,
        interrupt: Interrupt | None = None,
        checkpoint: CheckpointPolicy | None = None,
        on_resolved: ResolvedHook | None = None,
        on_failure: str = "stop",
        op_prefix: str = "",
    ) -> None:
        self.cs = changeset
        self.state = state
        self.providers = providers
        self.backend = backend
        self.journal = journal
        self.parallelism = parallelism
        self.observer = observer or ApplyObserver()
        self.interrupt = interrupt or Interrupt()
        self.checkpoint_policy = checkpoint or CheckpointPolicy()
        self.on_resolved = on_resolved
        self.on_failure = check_on_failure(on_failure)
        #: journal op ids are prefixed so an undo's lines never pair with the forward run's
        self.op_prefix = op_prefix
        self.retries = RetryCounter()
        self._state_lock = threading.Lock()
        self._ckpt_lock = threading.Lock()
        self._since_ckpt = 0
        self._last_ckpt = time.monotonic()
        self.checkpoints = 0
        self.checkpoint_error: StateError | None = None
        #: address -> its old object, deposed once the create half of its replace made the new one
        self._old_objects: dict[str, DeposedObject] = {}
        self._scheduler: Scheduler[Op] | None = None
        self._address_of: dict[str, str] = {}
        #: updates whose values, resolved at apply, equal the object's: no provider call was made
        self.unchanged: set[str] = set()
        #: (provider key, type name) -> resource type, looked up once per run, not once per operation
        self._types: dict[tuple[str, str], ResourceType[Any]] = {}

    # -- building the operation graph ---------------------------------------------------

    def tasks(self) -> list[Task[Op]]:
        """The operation graph, ordered as Terraform orders a replacement.

        A replace is two operations: the create of the new object (keyed by the address) and the
        delete of the old one (`Op.part == "destroy"`). By default the old object goes first: the
        old objects of dependents that are replaced too are deleted before it, the new object
        is created after it, dependents after that. With create_before_destroy (forced on the
        replaced dependencies of such a resource, or the graph would have a cycle) the new
        object comes first, then dependents are updated or replaced, then the old object, deposed
        meanwhile, is deleted.
        """
        changes = [c for c in self.cs.changes if c.is_change]
        current = {c.address: c for c in changes if c.deposed is None}
        cbd = self._create_before_destroy(current)
        tasks: dict[str, Task[Op]] = {}
        maker: dict[str, str] = {}  # address -> key of the op that creates or updates its object
        destroyers: dict[str, list[str]] = {}  # address -> keys of ops deleting an object of it
        old_deps: dict[str, list[str]] = {}  # destroy op key -> what the object it deletes depended on
        plain_delete: set[str] = set()  # keys of deletes whose dependents' updates must come first

        def add(op: Op, rt: ResourceType[Any], weight: float | None = None) -> str:
            est = self._estimate(rt, op.change) if weight is None else weight
            tasks[op.key] = Task(key=op.key, payload=op, group=op.change.provider, weight=est)
            return op.key

        for c in changes:
            rt = self.providers.resource_type(c.provider, c.type)
            rec = self.state.resources.get(c.address)
            if c.deposed is not None:
                key = add(Op(c, "deposed", c.deposed), rt)
                destroyers.setdefault(c.address, []).append(key)
                old_deps[key] = list(c.depends_on)
                plain_delete.add(key)
            elif c.action is Action.DELETE:
                key = add(Op(c, "delete"), rt)
                destroyers.setdefault(c.address, []).append(key)
                old_deps[key] = list(rec.dependencies if rec is not None else c.depends_on)
                plain_delete.add(key)
            elif c.action is Action.REPLACE and rec is not None:
                half = self._estimate(rt, c) / 2
                first = c.address in cbd
                create = add(Op(c, "apply", uuid.uuid4().hex[:8] if first else None, first), rt, half)
                destroy = add(Op(c, "destroy", tasks[create].payload.deposed_key, first), rt, half)
                maker[c.address] = create
                destroyers.setdefault(c.address, []).append(destroy)
                old_deps[destroy] = list(rec.dependencies)
                if first:
                    tasks[destroy].after.add(create)
                else:
                    tasks[create].after.add(destroy)
            else:
                maker[c.address] = add(Op(c, "apply"), rt)
        # what depends on each address: in the plan (new objects) and in state (old objects)
        users: dict[str, set[str]] = {}
        for c in current.values():
            if c.action is not Action.DELETE:
                for dep in c.depends_on:
                    users.setdefault(dep, set()).add(c.address)
        for address, rec in self.state.resources.items():
            for dep in rec.dependencies:
                users.setdefault(dep, set()).add(address)
        for address, key in maker.items():
            for dep in current[address].depends_on:
                if dep in maker:
                    tasks[key].after.add(maker[dep])
        for key, deps in old_deps.items():
            # an object is deleted after the old objects that depended on it
            for dep in deps:
                for other in destroyers.get(dep, ()):
                    if other != key:
                        tasks[other].after.add(key)
        for address, keys in destroyers.items():
            for key in keys:
                op = tasks[key].payload
                if key in plain_delete or op.create_first:
                    # an object that stays until its users moved on: updates and creates of
                    # the resources that use it run first
                    for user in users.get(address, ()):
                        if user in maker and user != address:
                            tasks[key].after.add(maker[user])
        return list(tasks.values())

    def _create_before_destroy(self, current: Mapping[str, Change]) -> set[str]:
        """Replaced addresses done create-before-destroy: those asking for it and, as in
        Terraform, every replaced resource such a one depends on."""
        replaced = {a for a, c in current.items() if c.action is Action.REPLACE and a in self.state.resources}
        out = {a for a in replaced if current[a].create_before_destroy}
        stack = list(out)
        while stack:
            address = stack.pop()
            deps = set(current[address].depends_on)
            rec = self.state.resources.get(address)
            if rec is not None:
                deps.update(rec.dependencies)
            for dep in deps:
                if dep in replaced and dep not in out:
                    out.add(dep)
                    stack.append(dep)
        return out

    @staticmethod
    def _estimate(rt: ResourceType[Any], c: Change) -> float:
        try:
            props = rt.Properties.model_construct(**(c.after or c.before or {}))
            est = rt.estimate_seconds(props)
        except Exception:
            est = 1.0
        return est * (2 if c.action is Action.REPLACE else 1) + 1e-3

    # -- running ------------------------------------------------------------------------

    def inverse_records(self, tasks: list[Task[Op]]) -> list[dict[str, Any]]:
        """How to undo each planned change, from state as it is before the first operation."""
        out: list[dict[str, Any]] = []
        address_of = {t.key: t.payload.change.address for t in tasks}
        after: dict[str, set[str]] = {}
        for t in tasks:
            address = t.payload.change.address
            after.setdefault(address, set()).update(address_of[k] for k in t.after if k in address_of)
        for t in tasks:
            c = t.payload.change
            if t.payload.part not in ("apply", "delete"):
                continue  # the destroy half of a replace and deposed objects: the replace's record covers them
            previous = self.state.resources.get(c.address)
            undo = {"create": "delete", "update": "update", "replace": "replace", "delete": "create"}[c.action.value]
            line: dict[str, Any] = {
                "op": f"inverse:{c.address}",
                "address": c.address,
                "action": c.action.value,
                "undo": undo,
                "type": c.type,
                "provider": c.provider,
                "after": sorted(after.get(c.address, set()) - {c.address}),  # forward order
            }
            if c.action is not Action.CREATE and previous is not None:
                line["previous"] = previous.model_dump(mode="json")
            out.append(line)
        return out

    def run(self, *, record_inverses: bool = True) -> ApplyResult:
        started = time.monotonic()
        # the operation graph and the inverse lines are a few kept objects per change: the cycle
        # collector would walk them again and again while they are built (see `Planner.run`)
        with paused_gc():
            tasks = self.tasks()
            inverses = self.inverse_records(tasks) if record_inverses else []
        if record_inverses:
            self.journal.inverses(inverses)
        scheduler: Scheduler[Op] = Scheduler(
            tasks,
            parallelism=self.parallelism,
            group_limits={key: p.max_concurrency for key, p in self._providers_for(tasks).items()},
            interrupt=self.interrupt,
            on_stop_starting=lambda n: self.observer.message(
                f"Interrupt received: starting nothing new, waiting for {n} running operation(s). "
                "Press Ctrl-C again to stop waiting (the next command recovers from the journal)."
            ),
            stop_on_failure=self.on_failure != "continue",
        )
        self._scheduler = scheduler
        self._address_of = {t.key: t.payload.change.address for t in tasks}
        sched = scheduler.run(self._work)
        return self._finish(sched, started)

    def _providers_for(self, tasks: list[Task[Op]]) -> dict[str, Any]:
        return {t.group: self.providers.get(t.group) for t in tasks}

    def _work(self, task: Task[Op]) -> None:
        self.journal.check_lease()  # a holder whose lock is no longer certainly its own starts nothing
        op = task.payload
        c = op.change
        rt = self._types.get((c.provider, c.type))
        if rt is None:
            rt = self._types[(c.provider, c.type)] = self.providers.resource_type(c.provider, c.type)
        t0 = time.monotonic()
        # a replace is one change to the observer (its progress counts changes): the delete of
        # the old object reports only a failure
        quiet = op.part == "destroy"
        if not quiet:
            self.observer.op_started(c)
        line: dict[str, Any] = {"op": self.op_prefix + op.journal_id, "address": c.address, "action": op.action}
        if op.part in ("destroy", "deposed") and op.deposed_key is not None:
            line["deposed_key"] = op.deposed_key
        try:
            done = self._perform(op, rt)
        except PartialCreate as exc:
            # the object exists: record it tainted (and the old one deposed) so it is never lost
            tainted = self._tainted_record(c, rt, exc, op)
            with self._state_lock:
                self._settle(op, tainted)
            self.journal.failed({**line, "error": str(exc), **self._finished_fields(op, tainted)})
            self.observer.op_failed(c, exc)
            raise
        except BaseException as exc:
            self.journal.failed({**line, "error": str(exc)})
            self.observer.op_failed(c, exc)
            raise
        self.journal.finished({**line, **self._finished_fields(op, done)})
        with self._state_lock:
            self._settle(op, done)
            self._since_ckpt += 1
        if c.address in self.unchanged:
            self.observer.op_unchanged(c, time.monotonic() - t0)
        elif not quiet:
            self.observer.op_finished(c, time.monotonic() - t0)
        self._maybe_checkpoint()

    def _finished_fields(self, op: Op, record: ResourceRecord | None) -> dict[str, Any]:
        out: dict[str, Any] = {"record": record.model_dump(mode="json") if record is not None else None}
        if op.part == "apply" and op.create_first and op.deposed_key is not None:
            old = self._old_objects.get(op.change.address)
            if old is not None:
                out["deposed"] = old.model_dump(mode="json")
        return out

    def _settle(self, op: Op, record: ResourceRecord | None) -> None:
        """Take one finished operation into state; called with the state lock held."""
        address = op.change.address
        if op.part in ("destroy", "deposed") and op.deposed_key is not None:
            self.state.drop_deposed(address, op.deposed_key)
            return
        if op.part == "apply" and op.create_first:
            old = self._old_objects.get(address)
            if old is not None and old.key not in {d.key for d in self.state.deposed.get(address, [])}:
                self.state.add_deposed(old)
        if record is None:
            self.state.resources.pop(address, None)
        else:
            self.state.resources[address] = record

    def _perform(self, op: Op, rt: ResourceType[Any]) -> ResourceRecord | None:
        c = op.change
        provider = rt.provider

        def on_retry(err: ProviderError, n: int, delay: float) -> None:
            self.retries.add()
            self.observer.op_retry(c, err, n, delay)

        def retry(fn: Callable[[], Any]) -> Any:
            return call_with_retries(provider, c.address, fn, on_retry=on_retry)

        model = rt.Properties
        with self._state_lock:
            current = self.state.resources.get(c.address)
            deposed = {d.key: d for d in self.state.deposed.get(c.address, [])}
        if op.part == "deposed" or (op.part == "destroy" and op.create_first):
            # the old object, deposed when its replacement was made (by this run or an earlier one)
            self._journal_started(op, rt, None)
            obj = deposed.get(op.deposed_key or "")
            if obj is not None:
                gone_rt = self._type_of(obj.provider, obj.type, c, rt)
                gone_id, gone_props = obj.id, gone_rt.Properties.model_construct(**obj.properties)
                retry(lambda: gone_rt.delete(c.address, gone_id, gone_props))
            return None
        if op.part == "destroy":
            self._journal_started(op, rt, None)
            if current is not None:
                # after a type change at the address, the old object is deleted by its own type
                old_rt = self._type_of(current.provider, current.type, c, rt)
                old_props = old_rt.Properties.model_construct(**current.properties)
                retry(lambda: old_rt.delete(c.address, current.id, old_props))
            return None
        if c.action is Action.DELETE:
            self._journal_started(op, rt, None)
            if current is not None:
                old = model.model_construct(**current.properties)
                retry(lambda: rt.delete(c.address, current.id, old))
            return None

        after = self._resolve_after(c)
        if self.on_resolved is not None and c.after_unknown:
            self.on_resolved(c, after)
        try:
            new = model.model_validate(after)
        except ValidationError as exc:
            err = exc.errors()[0]
            what = f"property `{'.'.join(str(p) for p in err['loc'])}`" if err["loc"] else "properties"
            raise ConfigError(
                f"{c.address}: {what}: {err['msg'].removeprefix('Value error, ')} "
                "(checked once the values known only after apply were known)",
                hint="fix the plan file so the resolved values fit the resource type",
            ) from exc
        if (
            c.action is Action.UPDATE
            and current is not None
            and c.after_unknown
            and self._recheck(c, rt, new, current)
        ):
            self.unchanged.add(c.address)
            return current
        observed: Observed
        dumped = new.model_dump(mode="json")  # once, for the journal's started line and the record
        if c.action is Action.UPDATE:
            self._journal_started(op, rt, new, dumped=dumped)
            assert current is not None
            old = model.model_construct(**current.properties)
            observed = retry(lambda: rt.update(c.address, current.id, old, new))
            return self._record(c, rt, new, observed, current, dumped=dumped)
        # a create, or the create half of a replace (the old object is gone or is being deposed)
        if op.create_first and current is not None and op.deposed_key is not None:
            with self._state_lock:
                self._old_objects[c.address] = DeposedObject.of(current, op.deposed_key)
        known = {d.id for d in deposed.values()} | ({current.id} if current is not None else set())
        self._journal_started(op, rt, new, known_ids=known, dumped=dumped)
        observed = create_once(rt, c.address, new, known, on_retry=on_retry)
        return self._record(c, rt, new, observed, None, dumped=dumped)

    def _type_of(self, provider: str, type_: str, c: Change, rt: ResourceType[Any]) -> ResourceType[Any]:
        """The resource type an existing object was made by: `rt`, the change's, unless the plan
        changed the address's type or provider block."""
        if type_ == c.type and provider == c.provider:
            return rt
        return self.providers.resource_type(provider, type_)

    def _tainted_record(self, c: Change, rt: ResourceType[Any], exc: PartialCreate, op: Op) -> ResourceRecord:
        model = rt.Properties
        try:
            props = model.model_validate(self._resolve_after(c))
        except Exception:  # the plan's values are all state can keep of a half-made object
            props = model.model_construct(**(c.after or {}))
        if op.create_first and c.address not in self._old_objects:
            with self._state_lock:
                current = self.state.resources.get(c.address)
                if current is not None and op.deposed_key is not None:
                    self._old_objects[c.address] = DeposedObject.of(current, op.deposed_key)
        record = self._record(c, rt, props, Observed(exc.object_id, {}, dict(exc.attributes)), None)
        return record.model_copy(update={"tainted": True})

    def _journal_started(
        self,
        op: Op,
        rt: ResourceType[Any],
        new: BaseModel | None,
        *,
        known_ids: set[str] | None = None,
        dumped: dict[str, Any] | None = None,
    ) -> None:
        c = op.change
        line: dict[str, Any] = {
            "op": self.op_prefix + op.journal_id,
            "address": c.address,
            "action": op.action,
            "type": c.type,
            "provider": c.provider,
        }
        if op.deposed_key is not None:
            line["deposed_key"] = op.deposed_key
        if known_ids:
            # recovery tells the object this create made from older ones of the address by id
            line["known_ids"] = sorted(known_ids)
        # properties let recovery `find` what a crashed create made; skip them for types that
        # cannot find anything, to keep the journal small
        if new is not None and rt.can_find:
            line["properties"] = _stored_properties(
                new.model_dump(mode="json") if dumped is None else dumped,
                sensitive_fields(rt.Properties) | frozenset(c.sensitive),
            )
            line["depends_on"] = c.depends_on
        self.journal.started(line)

    def _record(
        self,
        c: Change,
        rt: ResourceType[Any],
        new: BaseModel,
        observed: Observed,
        current: ResourceRecord | None,
        *,
        dumped: dict[str, Any] | None = None,
    ) -> ResourceRecord:
        sens = sensitive_fields(rt.Properties) | frozenset(c.sensitive)  # and values from sensitive variables
        now = now_iso()
        props = new.model_dump(mode="json") if dumped is None else dumped
        return ResourceRecord(
            address=c.address,
            type=c.type,
            provider=c.provider,
            id=observed.id,
            properties=_stored_properties(props, sens),
            attributes=stored_attributes(observed.attributes, props, sens),
            dependencies=list(c.depends_on),
            sensitive=sorted(sens),
            created_at=current.created_at if current is not None and c.action is Action.UPDATE else now,
            updated_at=now,
        )

    def _recheck(self, c: Change, rt: ResourceType[Any], new: BaseModel, current: ResourceRecord) -> bool:
        """Compare an update's resolved properties with the object's: True when nothing changed.

        The plan showed an update because some value was unknown; now it is known. Equal values
        make the update a no-op. A changed force-new property needs a replacement the plan did
        not show: that is an error for this resource (Terraform's "inconsistent final plan"),
        never a silent replace.
        """
        sens = sensitive_fields(rt.Properties) | frozenset(c.sensitive)
        resolved = _stored_properties(new.model_dump(mode="json"), sens)
        for key in sorted(force_new_fields(rt.Properties)):
            before = current.properties.get(key)
            if key in resolved and key in current.properties and resolved[key] != before:
                shown = (SENSITIVE, SENSITIVE) if key in sens else (before, resolved[key])
                raise CloudorchError(
                    f"inconsistent final plan: {c.address}: `{key}` forces replacement once its value is known "
                    f"({json.dumps(shown[0])} -> {json.dumps(shown[1])}), but the plan showed an update",
                    hint="nothing was changed for it; run `cloudorch plan` again to see the replacement",
                )
        return all(current.properties.get(k) == v for k, v in resolved.items())

    def _resolve_after(self, c: Change) -> dict[str, Any]:
        after = dict(c.after or {})
        for key in c.after_unknown:
            if key in after:
                after[key] = resolve(after[key], self._live_lookup)
                if contains_unknown(after[key]):
                    raise CloudorchError(
                        f"{c.address}: `{key}` is still unknown after its dependencies were applied",
                        hint="a dependency failed or was excluded; fix it and apply again",
                    )
        return after

    def _live_lookup(self, ref: Reference) -> Any:
        name, key, rest = ref.resource_target()
        with self._state_lock:
            rec = self.state.resources.get(instance_address(name, key))
        if rec is None:
            return Unknown(ref.text)
        try:
            value = rec.value(rest)
        except (LookupError, TypeError) as exc:
            raise CloudorchError(f"`{ref.text}`: {rec.address} has no such value after apply") from exc
        if is_sensitive_marker(value):
            raise CloudorchError(
                f"`{ref.text}` refers to a sensitive property, which state keeps only as a hash",
                hint="pass the value through a sensitive variable instead",
            )
        return value

    # -- checkpoints and the end ---------------------------------------------------------

    def _maybe_checkpoint(self) -> None:
        pol = self.checkpoint_policy
        due = self._since_ckpt >= max(pol.every_ops, len(self.state.resources)) or (
            time.monotonic() - self._last_ckpt >= pol.every_seconds
        )
        if not due or self.checkpoint_error is not None or not self._ckpt_lock.acquire(blocking=False):
            return
        try:
            self.write_state()
            self.checkpoints += 1
        except StateError as exc:
            # the operation that just finished did succeed, and its journal line says so: a
            # store that cannot be written stops new work, it never fails what is done
            self.checkpoint_error = exc
            self.observer.message(f"{exc.message}: starting nothing new")
            if self._scheduler is not None:
                self._scheduler.halt(exc.message)
        finally:
            self._ckpt_lock.release()

    def write_state(self) -> None:
        """Write state, retried with backoff; raises StateError naming the store when it keeps failing."""
        pol = self.checkpoint_policy
        attempts = max(1, pol.write_attempts)
        for attempt in range(1, attempts + 1):
            with self._state_lock:
                snapshot = self.state.model_copy(
                    update={
                        "resources": dict(self.state.resources),
                        "deposed": {k: list(v) for k, v in self.state.deposed.items()},
                    }
                )
                since = self._since_ckpt
                self._since_ckpt = 0
            try:
                self.backend.write_next(snapshot)
            except (StateError, OSError) as exc:
                with self._state_lock:
                    self._since_ckpt += since
                if attempt == attempts:
                    why = exc.message if isinstance(exc, CloudorchError) else str(exc)
                    raise StateError(
                        f"could not write state to {self.backend.describe()} ({attempts} attempts): {why}",
                        hint=f"every finished operation is recorded in the journal {self.journal.path}; "
                        "fix the store, then any command (e.g. `cloudorch recover PLAN`) folds them into state",
                    ) from exc
                time.sleep(min(5.0, pol.write_first_delay * 2 ** (attempt - 1)))
                continue
            with self._state_lock:
                self.state.serial = snapshot.serial
            self._last_ckpt = time.monotonic()
            return

    def _finish(self, sched: ScheduleResult, started: float) -> ApplyResult:
        """Report per address: a replace's two halves (and deposed deletes) count as its one operation."""
        address_of = self._address_of
        keys_of: dict[str, list[str]] = {}
        for key, a in address_of.items():
            keys_of.setdefault(a, []).append(key)
        failed: dict[str, str] = {}
        for key, exc in sched.failed.items():
            a = address_of.get(key, key)
            if a in failed:
                continue
            why = _describe(exc)
            if key != a and a in self.state.resources and any(
                d.key for d in self.state.deposed.get(a, [])
            ):
                why = (
                    f"its old object could not be deleted and is kept as deposed (the new one, "
                    f"{self.state.resources[a].id}, is in state); the next apply deletes it: {why}"
                )
            failed[a] = why
        skipped = {
            address_of.get(k, k): f"depends on {address_of.get(v, v)}, which failed"
            for k, v in sched.skipped.items()
            if address_of.get(k, k) not in failed
        }
        abandoned = sorted({address_of.get(k, k) for k in sched.abandoned})
        not_started = sorted(
            {address_of.get(k, k) for k in sched.not_started} - set(failed) - set(skipped) - set(abandoned)
        )
        unsettled = set(failed) | set(skipped) | set(abandoned) | set(not_started)
        succeeded: list[str] = []
        finished: dict[str, int] = {}
        for key in sched.succeeded:  # in the order they finished
            a = address_of.get(key, key)
            finished[a] = finished.get(a, 0) + 1
            if a not in unsettled and finished[a] == len(keys_of.get(a, (key,))):
                succeeded.append(a)
        result = ApplyResult(
            changeset=self.cs,
            state=self.state,
            succeeded=succeeded,
            failed=failed,
            skipped=skipped,
            not_started=not_started,
            abandoned=abandoned,
            stopped_by=address_of.get(sched.stopped_by, sched.stopped_by) if sched.stopped_by else None,
            retries=self.retries.count,
            interrupted=sched.interrupted,
            seconds=time.monotonic() - started,
            checkpoints=self.checkpoints,
            checkpoint_error=self.checkpoint_error,
            unchanged=sorted(self.unchanged),
        )
        return result


def stored_attributes(attributes: Mapping[str, Any], props: Mapping[str, Any], sens: frozenset[str]) -> dict[str, Any]:
    """Attributes as state keeps them: one that repeats a sensitive property's value is hashed too.

    A type may echo properties in its attributes (`core.null` returns its `values`): an attribute
    named like a sensitive property, equal to one of its values or holding one of its strings
    (of 6 characters or more) is stored as a hash, like the property."""
    if not sens:
        return dict(attributes)
    wholes: list[Any] = []
    texts: set[str] = set()
    for key in sens:
        value = props.get(key)
        if value is None:
            continue
        wholes.append(value)
        todo = [value]
        while todo:
            item = todo.pop()
            if isinstance(item, dict):
                todo.extend(item.values())
            elif isinstance(item, list):
                todo.extend(item)
            else:
                wholes.append(item)
                if isinstance(item, str) and len(item) >= 6:
                    texts.add(item)

    def secret(name: str, value: Any) -> bool:
        if value is None or is_sensitive_marker(value):
            return False
        if name in sens or any(value == w for w in wholes):
            return True
        dumped = json.dumps(value, default=str) if not isinstance(value, str) else value
        return any(t in dumped for t in texts)

    return {k: (sensitive_marker(v) if secret(k, v) else v) for k, v in attributes.items()}


def _stored_properties(props: Mapping[str, Any], sensitive: frozenset[str]) -> dict[str, Any]:
    if not sensitive:
        return dict(props)
    return {k: (sensitive_marker(v) if k in sensitive and v is not None else v) for k, v in props.items()}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CloudorchError):
        return exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
    return f"{type(exc).__name__}: {exc}"
