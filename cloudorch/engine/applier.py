"""The applier: carry out a changeset through the scheduler, journaling every operation.

Before each provider call a "started" line is made durable; after it a "finished" (or
"failed") line carries the resulting state record. State is updated in memory as operations
finish and written at the end and at checkpoints (every K operations or T seconds, growing
with the state so the total bytes written stay linear). A SIGKILL at any point loses no
finished operation: the journal is replayed by the next command (see `engine.recovery`).

Before the first operation, the applier journals the inverse of every planned change (see
`state.journal`), which `engine.rollback` turns into the undo of a failed apply. `on_failure`
decides what a failure does to the rest: `stop` starts nothing new (running work finishes),
`continue` keeps starting independent work; dependents of a failure are skipped either way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from cloudorch.changes import Action, Change, ChangeSet
from cloudorch.engine.providerset import ProviderSet
from cloudorch.engine.retry import RetryCounter, call_with_retries
from cloudorch.engine.scheduler import Interrupt, Scheduler, ScheduleResult, Task
from cloudorch.errors import CloudorchError, ConfigError, ProviderError
from cloudorch.planfile import Reference, Unknown, contains_unknown, resolve
from cloudorch.planfile.expand import instance_address
from cloudorch.providers import Observed, ResourceType, sensitive_fields
from cloudorch.state.backends.base import StateBackend
from cloudorch.state.journal import Journal
from cloudorch.state.model import ResourceRecord, State, is_sensitive_marker, now_iso, sensitive_marker


class ApplyObserver:
    """Progress callbacks; the CLI renders them. Called from worker threads."""

    def op_started(self, change: Change) -> None: ...
    def op_finished(self, change: Change, seconds: float) -> None: ...
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
    #: what `--on-failure=rollback` undid (an `engine.rollback.UndoReport`), None when no rollback ran
    undo: Any = None
    #: set when this apply repairs a failed or interrupted one: what that run left undone
    repair: dict[str, Any] | None = None
    retries: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    journal_lines: int = 0
    journal_fsyncs: int = 0
    checkpoints: int = 0

    @property
    def ok(self) -> bool:
        return not (self.failed or self.skipped or self.not_started or self.abandoned or self.interrupted)


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

    # -- building the operation graph ---------------------------------------------------

    def tasks(self) -> list[Task[Change]]:
        ops = {c.address: c for c in self.cs.changes if c.action is not Action.NOOP}
        tasks: dict[str, Task[Change]] = {}
        for c in ops.values():
            rt = self.providers.resource_type(c.provider, c.type)
            tasks[c.address] = Task(
                key=c.address,
                payload=c,
                group=c.provider,
                weight=self._estimate(rt, c),
            )
        for c in ops.values():
            if c.action is Action.DELETE:
                continue
            for dep in c.depends_on:
                if dep in ops and ops[dep].action is not Action.DELETE:
                    tasks[c.address].after.add(dep)
        # a delete waits for every operation on resources that depended on it in state
        for address, rec in self.state.resources.items():
            if address not in ops:
                continue
            for dep in rec.dependencies:
                if dep in ops and ops[dep].action is Action.DELETE:
                    tasks[dep].after.add(address)
        return list(tasks.values())

    @staticmethod
    def _estimate(rt: ResourceType[Any], c: Change) -> float:
        try:
            props = rt.Properties.model_construct(**(c.after or c.before or {}))
            est = rt.estimate_seconds(props)
        except Exception:
            est = 1.0
        return est * (2 if c.action is Action.REPLACE else 1) + 1e-3

    # -- running ------------------------------------------------------------------------

    def inverse_records(self, tasks: list[Task[Change]]) -> list[dict[str, Any]]:
        """How to undo each planned change, from state as it is before the first operation."""
        out: list[dict[str, Any]] = []
        for t in tasks:
            c = t.payload
            previous = self.state.resources.get(c.address)
            undo = {"create": "delete", "update": "update", "replace": "replace", "delete": "create"}[c.action.value]
            line: dict[str, Any] = {
                "op": f"inverse:{c.address}",
                "address": c.address,
                "action": c.action.value,
                "undo": undo,
                "type": c.type,
                "provider": c.provider,
                "after": sorted(t.after),  # forward order; the undo runs it backwards
            }
            if c.action is not Action.CREATE and previous is not None:
                line["previous"] = previous.model_dump(mode="json")
            out.append(line)
        return out

    def run(self, *, record_inverses: bool = True) -> ApplyResult:
        started = time.monotonic()
        tasks = self.tasks()
        if record_inverses:
            self.journal.inverses(self.inverse_records(tasks))
        scheduler: Scheduler[Change] = Scheduler(
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
        sched = scheduler.run(self._work)
        return self._finish(sched, started)

    def _providers_for(self, tasks: list[Task[Change]]) -> dict[str, Any]:
        return {t.group: self.providers.get(t.group) for t in tasks}

    def _work(self, task: Task[Change]) -> None:
        self.journal.check_lease()  # a holder whose lock is no longer certainly its own starts nothing
        c = task.payload
        rt = self.providers.resource_type(c.provider, c.type)
        t0 = time.monotonic()
        self.observer.op_started(c)
        try:
            record = self._perform(c, rt)
        except BaseException as exc:
            self.journal.failed(
                {"op": self.op_prefix + c.address, "address": c.address, "action": c.action.value, "error": str(exc)}
            )
            self.observer.op_failed(c, exc)
            raise
        self.journal.finished(
            {
                "op": self.op_prefix + c.address,
                "address": c.address,
                "action": c.action.value,
                "record": record.model_dump(mode="json") if record is not None else None,
            }
        )
        with self._state_lock:
            if record is None:
                self.state.resources.pop(c.address, None)
            else:
                self.state.resources[c.address] = record
            self._since_ckpt += 1
        self.observer.op_finished(c, time.monotonic() - t0)
        self._maybe_checkpoint()

    def _perform(self, c: Change, rt: ResourceType[Any]) -> ResourceRecord | None:
        provider = rt.provider

        def on_retry(err: ProviderError, n: int, delay: float) -> None:
            self.retries.add()
            self.observer.op_retry(c, err, n, delay)

        def retry(fn: Callable[[], Any]) -> Any:
            return call_with_retries(provider, c.address, fn, on_retry=on_retry)

        model = rt.Properties
        with self._state_lock:
            current = self.state.resources.get(c.address)
        if c.action is Action.DELETE:
            self._journal_started(c, rt, None)
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
            raise ConfigError(
                f"{c.address}: property `{'.'.join(str(p) for p in err['loc'])}`: {err['msg']} "
                "(a value known only after apply)"
            ) from exc
        self._journal_started(c, rt, new)
        observed: Observed
        if c.action is Action.CREATE or (c.action is Action.REPLACE and current is None):
            observed = retry(lambda: rt.create(c.address, new))
        elif c.action is Action.UPDATE:
            assert current is not None
            old = model.model_construct(**current.properties)
            observed = retry(lambda: rt.update(c.address, current.id, old, new))
        else:  # replace
            assert current is not None
            old = model.model_construct(**current.properties)
            if c.create_before_destroy:
                observed = retry(lambda: rt.create(c.address, new))
                retry(lambda: rt.delete(c.address, current.id, old))
            else:
                retry(lambda: rt.delete(c.address, current.id, old))
                observed = retry(lambda: rt.create(c.address, new))
        return self._record(c, rt, new, observed, current)

    def _journal_started(self, c: Change, rt: ResourceType[Any], new: BaseModel | None) -> None:
        line: dict[str, Any] = {
            "op": self.op_prefix + c.address,
            "address": c.address,
            "action": c.action.value,
            "type": c.type,
            "provider": c.provider,
        }
        # properties let recovery `find` what a crashed create made; skip them for types that
        # cannot find anything, to keep the journal small
        if new is not None and type(rt).find is not ResourceType.find:
            line["properties"] = _stored_properties(new.model_dump(mode="json"), sensitive_fields(rt.Properties))
            line["depends_on"] = c.depends_on
        self.journal.started(line)

    def _record(
        self,
        c: Change,
        rt: ResourceType[Any],
        new: BaseModel,
        observed: Observed,
        current: ResourceRecord | None,
    ) -> ResourceRecord:
        sens = sensitive_fields(rt.Properties)
        now = now_iso()
        return ResourceRecord(
            address=c.address,
            type=c.type,
            provider=c.provider,
            id=observed.id,
            properties=_stored_properties(new.model_dump(mode="json"), sens),
            attributes=observed.attributes,
            dependencies=list(c.depends_on),
            sensitive=sorted(sens),
            created_at=current.created_at if current is not None and c.action is Action.UPDATE else now,
            updated_at=now,
        )

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
        if not due or not self._ckpt_lock.acquire(blocking=False):
            return
        try:
            self.write_state()
            self.checkpoints += 1
        finally:
            self._ckpt_lock.release()

    def write_state(self) -> None:
        with self._state_lock:
            snapshot = self.state.model_copy(update={"resources": dict(self.state.resources)})
            self._since_ckpt = 0
        self.backend.write_next(snapshot)
        with self._state_lock:
            self.state.serial = snapshot.serial
        self._last_ckpt = time.monotonic()

    def _finish(self, sched: ScheduleResult, started: float) -> ApplyResult:
        result = ApplyResult(
            changeset=self.cs,
            state=self.state,
            succeeded=sched.succeeded,
            failed={k: _describe(e) for k, e in sched.failed.items()},
            skipped={k: f"depends on {v}, which failed" for k, v in sched.skipped.items()},
            not_started=sched.not_started,
            abandoned=sched.abandoned,
            stopped_by=sched.stopped_by,
            retries=self.retries.count,
            interrupted=sched.interrupted,
            seconds=time.monotonic() - started,
            checkpoints=self.checkpoints,
        )
        return result


def _stored_properties(props: Mapping[str, Any], sensitive: frozenset[str]) -> dict[str, Any]:
    if not sensitive:
        return dict(props)
    return {k: (sensitive_marker(v) if k in sensitive and v is not None else v) for k, v in props.items()}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CloudorchError):
        return exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
    return f"{type(exc).__name__}: {exc}"
