"""Every plan, apply, destroy, drift, rollback, recover and release command leaves a run record
and raises its events (`records`): the operation runs untouched, then what it returned or raised
is turned into a `RunRecord` and events, stored beside the plan's state with the deliveries they
make, and the outbox is flushed.

Recording comes after the operation released the state lock and never changes its outcome: any
failure to record or deliver is a warning (`RunOptions.say`), never an error.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import inspect
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from cloudorch import __version__
from cloudorch.actor import actor_name
from cloudorch.errors import CloudorchError, ExitCode, Interrupted, PolicyDeniedError, StateError
from cloudorch.runs.record import (
    BLOCKED,
    DECLINED,
    FAILED,
    INTERRUPTED,
    SUCCEEDED,
    FailedAddress,
    RunRecord,
    host_name,
    new_run_id,
)

if TYPE_CHECKING:
    from cloudorch.notify.outbox import Event
    from cloudorch.notify.targets import Target
    from cloudorch.planfile import PlanSpec
    from cloudorch.run.options import RunOptions
    from cloudorch.runs.history import RunHistory

log = logging.getLogger("cloudorch.run")

P = ParamSpec("P")
R = TypeVar("R")

#: the plans read (`session.read_plan`) during the run being recorded in this context
_PLANS_READ: contextvars.ContextVar[list[PlanSpec] | None] = contextvars.ContextVar(
    "cloudorch_plans_read", default=None
)


def saw_plan(plan: PlanSpec) -> None:
    seen = _PLANS_READ.get()
    if seen is not None:
        seen.append(plan)


#: seconds an interrupted run spends on delivery; what is left waits for the next command
INTERRUPTED_BUDGET = 2.0

#: commands that change resources: their errors are `apply.failed`
APPLYING = frozenset({"apply", "destroy", "rollback", "release deploy", "release promote", "release rollback"})


#: two dots: stage documents are `<plan>.<stage>` and a stage name cannot be empty
RUNS_KEY_SUFFIX = "..runs"


def runs_key(plan: PlanSpec) -> str:
    from cloudorch.run.session import plan_key

    return plan_key(plan) + RUNS_KEY_SUFFIX


def history_of(plan: PlanSpec, opts: RunOptions) -> RunHistory:
    """The run history of `plan`, beside its state (local, S3, GCS or Azure Blob)."""
    from cloudorch.run.session import backend_for
    from cloudorch.runs.history import Retention, RunHistory
    from cloudorch.runs.storage import storage_beside

    env = os.environ if opts.env is None else opts.env
    retention = Retention.from_env(env)
    block = plan.backend if isinstance(plan.backend, dict) else {}
    if not opts.backend_url and not block.get("url") and not opts.sandbox:
        from cloudorch.runs.storage import LocalRunStorage

        # local state, the common case: the folder `storage_beside` would give, without loading
        # the state backend (`runs list` answers faster)
        root = Path(opts.state_dir or (plan.path.parent / ".cloudorch"))
        return RunHistory(LocalRunStorage(root / "runs" / runs_key(plan)), retention)
    backend = backend_for(plan, opts, key=runs_key(plan))
    return RunHistory(storage_beside(backend), retention)


def targets_of(plan: PlanSpec, opts: RunOptions, *, check: bool = True) -> list[Target]:
    """The plan's `notifications:` and the run's `--notify` / `CLOUDORCH_NOTIFY` targets."""
    from cloudorch.notify.targets import ad_hoc, parse_entries

    env = os.environ if opts.env is None else opts.env
    stages = list(plan.stages or {})  # none: `stages:` in a notification names a stage that is not there
    found = parse_entries(plan.notifications, locate=plan.location, stages=stages, check=check)
    return found + ad_hoc(list(opts.notify_urls), env, check=check)


def records(
    command: str, *, stage_arg: str | None = None, version_arg: str | None = None
) -> Callable[[Callable[Concatenate[RunOptions, P], R]], Callable[Concatenate[RunOptions, P], R]]:
    """Record a run of `command` around an operation taking `RunOptions` first.

    `stage_arg` / `version_arg` name the operation's parameters that hold the stage and the
    release version when they are not in the options (`release promote --to`)."""

    def wrap(fn: Callable[Concatenate[RunOptions, P], R]) -> Callable[Concatenate[RunOptions, P], R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(opts: RunOptions, /, *args: P.args, **kwargs: P.kwargs) -> R:
            named: dict[str, Any] = {}
            with contextlib.suppress(TypeError):  # the call itself then says what is wrong
                named = dict(signature.bind_partial(opts, *args, **kwargs).arguments)
            name = "destroy" if command == "apply" and opts.destroy else command
            rec = Recorder(opts, name, named.get(stage_arg) if stage_arg else None, named)
            rec.version = named.get(version_arg) if version_arg else None
            token = _PLANS_READ.set(rec.plans_read)
            try:
                try:
                    result = fn(opts, *args, **kwargs)
                finally:
                    _PLANS_READ.reset(token)
            except BaseException as exc:
                rec.finish(None, exc)
                raise
            rec.finish(result, None)
            return result

        return run

    return wrap


class Recorder:
    """One run being recorded: started when the operation starts, finished with its outcome."""

    def __init__(self, opts: RunOptions, command: str, stage: str | None, arguments: Mapping[str, Any]) -> None:
        self.opts = opts
        self.command = command
        self.stage = stage or opts.stage
        self.arguments = arguments
        self.version: str | None = None
        self.started = datetime.now(UTC)
        self.clock = time.monotonic()
        self.plans_read: list[PlanSpec] = []

    def finish(self, result: Any, error: BaseException | None) -> None:
        try:
            self._finish(result, error)
        except Exception as exc:  # (recording never changes what the run came to)
            log.debug("run not recorded", exc_info=True)
            message = exc.message if isinstance(exc, CloudorchError) else f"{type(exc).__name__}: {exc}"
            self.opts.say(f"warning: this run was not recorded in the run history: {message}")

    # -- the record ----------------------------------------------------------------------

    def _plan(self, result: Any) -> PlanSpec | None:
        from cloudorch.run.session import read_plan

        plan_file = self.opts.plan_file
        saved = self.arguments.get("saved")
        changeset = getattr(result, "changeset", None) or saved
        if changeset is not None and getattr(changeset, "plan_file", None):
            plan_file = Path(changeset.plan_file)
        if saved is not None and self.stage is None and saved.state_key.startswith(f"{saved.plan_name}."):
            self.stage = saved.state_key[len(saved.plan_name) + 1 :]
        for plan in self.plans_read:
            if plan.path == plan_file or plan.path.resolve() == plan_file.resolve():
                return plan  # read by the operation already: not parsed twice
        try:
            return read_plan(replace(self.opts, plan_file=plan_file))
        except CloudorchError:
            return None  # the plan itself is wrong: nothing ran, and there is no state to record beside

    def _finish(self, result: Any, error: BaseException | None) -> None:
        plan = self._plan(result)
        if plan is None:
            return
        from cloudorch.notify.outbox import enqueue, flush, wait_at_test_barrier
        from cloudorch.run.session import plan_key

        env = os.environ if self.opts.env is None else self.opts.env
        ended = datetime.now(UTC)
        run = RunRecord(
            id=new_run_id(self.started),
            command=self.command,
            plan=plan_key(plan),
            plan_file=str(plan.path),
            stage=self.stage,
            actor=actor_name(env),
            host=host_name(),
            started=_iso(self.started),
            ended=_iso(ended),
            duration=round(time.monotonic() - self.clock, 3),
            version=self.version,
            cloudorch_version=__version__,
        )
        events = Outcome(run, self, plan).read(result, error)
        targets: list[Target] = []
        try:
            targets = targets_of(plan, self.opts, check=False)
        except CloudorchError as exc:
            self.opts.say(f"warning: notifications not sent: {exc.message}")
        secrets = [*plan.sensitive_texts(), *(t.url for t in targets)]
        from cloudorch.notify.outbox import Event

        clean = _masker(secrets, targets)
        _mask_record(run, clean)
        events.events = [Event(e.name, clean(e.summary), e.detail) for e in events.events]
        history = history_of(plan, self.opts)
        drift_update = events.pop_drift()
        entries = enqueue(run, events.events, targets)
        history.record(
            run,
            outbox=entries,
            drift=drift_update,
            dropped=lambda n: self.opts.say(f"warning: the notification outbox is full; dropped its {n} oldest"),
        )
        if entries:
            wait_at_test_barrier(env)
        pending = (history.written or history.header())["outbox"]
        if not pending:
            return
        from cloudorch.notify.outbox import budget_from

        budget = budget_from(env)[0]
        if isinstance(error, KeyboardInterrupt | Interrupted):
            budget = min(budget, INTERRUPTED_BUDGET)  # whoever stopped the run wants it to end now
        report = flush(history, targets, env, budget=budget)
        for entry in report.failed:
            self.opts.say(
                f"warning: notification {entry['event']} to {entry['target_display']} not delivered "
                f"({entry.get('last_error')}); it waits in the outbox: "
                f"cloudorch notifications retry {plan.path}"
            )


class Outcome:
    """Reads what an operation returned (or raised) into the record, and the events it raises."""

    def __init__(self, run: RunRecord, rec: Recorder, plan: PlanSpec) -> None:
        self.run = run
        self.rec = rec
        self.plan = plan
        self.events: list[Event] = []
        self._drift: tuple[str, dict[str, Any] | None] | None = None

    def pop_drift(self) -> tuple[str, dict[str, Any] | None] | None:
        return self._drift

    def add(self, name: str, summary: str, **detail: Any) -> None:
        from cloudorch.notify.outbox import Event

        self.events.append(Event(name, summary, {k: v for k, v in detail.items() if v is not None}))

    def where(self) -> str:
        return self.run.plan + (f" ({self.run.stage})" if self.run.stage else "")

    def read(self, result: Any, error: BaseException | None) -> Outcome:
        if error is not None:
            self._error(error)
            return self
        from cloudorch.run.plan import Planned

        if isinstance(result, Planned):
            self._planned(result)
            return self
        # imported only now: a plan never loads the applier or drift detection just to be recorded
        from cloudorch.engine.drift import DriftReport
        from cloudorch.run.apply import ApplyResult, RecoverOutcome

        if result is None:
            self.run.result, self.run.exit_code = DECLINED, int(ExitCode.ERROR)
        elif isinstance(result, ApplyResult):
            self._applied(result)
        elif isinstance(result, DriftReport):
            self._drifted(result)
        elif isinstance(result, RecoverOutcome):
            self.run.counts = {"recovered": int(result.report is not None)}
        elif hasattr(result, "verdicts") and hasattr(result, "action"):  # a release `Outcome` (a layer above)
            self._release(result)
        elif isinstance(result, dict) and self.rec.command == "release reject":
            self.run.version = str(result.get("version"))
            if not result.get("already_rejected"):
                self.add(
                    "release.rejected",
                    f"{self.run.actor} rejected {self.run.plan} {self.run.version}: {result.get('reason')}",
                    reason=result.get("reason"),
                    running_in=result.get("running_in"),
                )
        elif isinstance(result, dict) and self.rec.command == "release approve":
            self.run.version, self.run.stage = str(result.get("version")), str(result.get("stage"))
        return self

    # -- results -------------------------------------------------------------------------

    def _policy(self, results: list[dict[str, Any]]) -> None:
        overrides = dict(self.rec.opts.overrides)
        if overrides:
            # a plan's results are judged before its --override is applied: apply it here too
            results = [
                {**r, "blocking": False, "overridden": {"reason": overrides[r["policy_id"]], "actor": self.run.actor}}
                if not r.get("overridden") and r.get("level") == "mandatory" and r.get("policy_id") in overrides
                else r
                for r in results
            ]
        self.run.policy = [
            {
                "policy_id": r.get("policy_id"),
                "level": r.get("level"),
                "address": r.get("address"),
                "message": _first_line(str(r.get("message", ""))),
                "blocking": bool(r.get("blocking")),
                "overridden": r.get("overridden"),
            }
            for r in results
        ]

    def _applied(self, result: Any, *, release: bool = False) -> None:
        cs = result.changeset
        self.run.counts = {k: v for k, v in cs.counts().items() if v and k != "no-op"}
        self.run.changed = sorted(result.succeeded)
        self.run.failed = [FailedAddress(a, _first_line(str(e))) for a, e in sorted(result.failed.items())]
        self._policy(list(cs.policy_results))
        overridden = [p for p in self.run.policy if p.get("overridden")]
        if overridden:
            self.add(
                "policy.overridden",
                f"{len(overridden)} policy result(s) waived in {self.where()}",
                policies=[{"policy_id": p["policy_id"], "override": p["overridden"]} for p in overridden],
            )
        reverted = (cs.inputs or {}).get("rollback")
        if result.denied is not None:
            self._blocked(result.denied)
            return
        if result.ok:
            self.run.result, self.run.exit_code = SUCCEEDED, 0
            if reverted:
                self.add(
                    "apply.rolled_back",
                    f"{self.where()} reverted to state serial {reverted.get('to')}",
                    reverted=reverted,
                )
            elif not release:
                self.add("apply.succeeded", f"{self.rec.command} of {self.where()} succeeded", counts=self.run.counts)
            return
        self.run.result = INTERRUPTED if result.interrupted else FAILED
        self.run.exit_code = int(ExitCode.ERROR)
        n = len(result.failed)
        self.add(
            "apply.failed",
            f"{self.rec.command} of {self.where()} failed: {n} operation(s) failed"
            + (f", {len(result.not_started)} not started" if result.not_started else ""),
            not_started=sorted(result.not_started) or None,
        )
        if result.undo is not None:
            self.add(
                "apply.rolled_back",
                f"the failed {self.rec.command} of {self.where()} was rolled back",
                undo=result.undo.to_json(),
            )
        if result.abandoned:
            self._recover_needed(f"{len(result.abandoned)} operation(s) were abandoned while running")

    def _planned(self, planned: Any) -> None:
        cs = planned.changeset
        self.run.counts = {k: v for k, v in cs.counts().items() if v and k != "no-op"}
        self._policy(list(cs.policy_results))
        denial = planned.verdict.denial(dict(self.rec.opts.overrides)) if planned.verdict is not None else None
        if denial is not None:
            self._blocked(denial)

    def _drifted(self, report: Any) -> None:
        drifted = {r.address: sorted(p.path for p in r.properties) or [r.status] for r in report.resources}
        self.run.drift = drifted
        self.run.counts = {k: v for k, v in report.counts().items() if v}
        if drifted:
            self.run.exit_code = int(ExitCode.CHANGES)  # as `cloudorch drift` exits
        self._policy(list(report.policy_results))
        stage_key = self.run.stage or ""
        try:
            seen = self.rec_history_drift(stage_key)
        except Exception:  # (no earlier drift known: this one is new)
            seen = None
        if drifted:
            fingerprint = hashlib.sha256(json.dumps(drifted, sort_keys=True).encode()).hexdigest()
            now = {"fingerprint": fingerprint, "addresses": sorted(drifted), "since": self.run.started}
            if seen is None or seen.get("fingerprint") != fingerprint:
                self.add(
                    "drift.detected",
                    f"{len(drifted)} resource(s) in {self.where()} drifted from state"
                    + (" (changed since the last drift run)" if seen else ""),
                    drift=drifted,
                    previous_fingerprint=seen.get("fingerprint") if seen else None,
                    fingerprint=fingerprint,
                )
            else:
                now["since"] = seen.get("since", self.run.started)
            self._drift = (stage_key, now)
        elif seen is not None:
            self.add(
                "drift.resolved",
                f"the drift in {self.where()} seen since {seen.get('since')} is gone",
                resolved=seen.get("addresses"),
                fingerprint=seen.get("fingerprint"),
            )
            self._drift = (stage_key, None)
        if report.policy_blocking:
            self.run.result, self.run.exit_code = BLOCKED, int(ExitCode.DENIED)
            self.add(
                "policy.blocked",
                f"policies block the live state of {self.where()}",
                policies=[p["policy_id"] for p in self.run.policy if p["blocking"]],
            )

    def rec_history_drift(self, stage_key: str) -> dict[str, Any] | None:
        seen = history_of(self.plan, self.rec.opts).header()["drift"].get(stage_key)
        return seen if isinstance(seen, dict) else None

    def _release(self, out: Any) -> None:
        self.run.stage, self.run.version = out.stage, out.version
        if out.result is not None:
            self._applied(out.result, release=out.action != "deploy")
        if out.dry_run:
            return
        if out.declined:
            self.run.result, self.run.exit_code = DECLINED, int(ExitCode.ERROR)
            return
        if out.rolled_back_to is not None:
            self.add(
                "release.rolled_back",
                f"{self.where()} rolled back from {out.version} to {out.rolled_back_to} after its verification failed",
                previous=out.version,
                rolled_back_to=out.rolled_back_to,
            )
        denied = out.denied
        if denied is not None:
            if out.result is not None and out.result.denied is not None:
                return  # a policy blocked the apply itself: `_applied` said so
            gates = list(getattr(denied, "gates", None) or [])
            if not out.applied and "approval" in gates:
                self.run.result, self.run.exit_code = BLOCKED, int(denied.exit_code)
                self.run.error = _first_line(denied.message)
                self.add(
                    "release.awaiting_approval",
                    f"{self.run.plan} {out.version} waits for approval to enter {out.stage}",
                    gates=[v.to_json() for v in out.verdicts],
                    approve=f"cloudorch release approve {self.plan.path} --stage {out.stage} --version {out.version}",
                )
            elif not out.applied:
                self._blocked(denied, gates=[v.to_json() for v in out.verdicts if not v.passed] or None)
            else:  # applied, then its verification failed
                self.run.result, self.run.exit_code = FAILED, int(denied.exit_code)
                self.run.error = _first_line(denied.message)
            return
        if out.result is None or not out.result.ok:
            return
        if out.action == "promote":
            self.add(
                "release.promoted",
                f"{self.run.plan} {out.version} promoted into {out.stage}"
                + (f" (was {out.previous})" if out.previous else ""),
                previous=out.previous,
            )
        elif out.action == "rollback":
            self.add(
                "release.rolled_back",
                f"{self.where()} rolled back from {out.previous} to {out.version}",
                previous=out.previous,
                rolled_back_to=out.version,
            )

    def _blocked(self, denied: Any, gates: Any = None) -> None:
        self.run.result, self.run.exit_code = BLOCKED, int(getattr(denied, "exit_code", ExitCode.DENIED))
        self.run.error = _first_line(getattr(denied, "message", str(denied)))
        if not self.run.policy and getattr(denied, "violations", None):
            # refused before anything ran: the error carries the violations
            self._policy([{**v.to_dict(), "blocking": True} for v in denied.violations])
        self.add(
            "policy.blocked",
            f"{self.rec.command} of {self.where()} blocked: {self.run.error}",
            policies=[p["policy_id"] for p in self.run.policy if p.get("blocking")] or None,
            gates=gates,
        )

    def _recover_needed(self, why: str) -> None:
        stage = f" --stage {self.run.stage}" if self.run.stage else ""
        self.add(
            "recover.needed",
            f"{self.where()}: {why}; run `cloudorch recover {self.plan.path}{stage}`",
            recover=f"cloudorch recover {self.plan.path}{stage}",
        )

    def _error(self, error: BaseException) -> None:
        if isinstance(error, KeyboardInterrupt | Interrupted):
            self.run.result, self.run.exit_code = INTERRUPTED, int(ExitCode.INTERRUPTED)
        elif isinstance(error, PolicyDeniedError):
            gates = list(getattr(error, "gates", None) or [])
            if "approval" in gates:
                self.run.result, self.run.exit_code = BLOCKED, int(error.exit_code)
                self.run.error = _first_line(error.message)
                self.add("release.awaiting_approval", f"{self.where()}: {self.run.error}", gates=gates)
            else:
                self._blocked(error, gates=gates or None)
            return
        else:
            self.run.result = FAILED
            self.run.exit_code = int(error.exit_code) if isinstance(error, CloudorchError) else 1
        message = error.message if isinstance(error, CloudorchError) else f"{type(error).__name__}: {error}"
        self.run.error = _first_line(message)
        if self.rec.command in APPLYING:
            self.add("apply.failed", f"{self.rec.command} of {self.where()} failed: {self.run.error}")
            if isinstance(error, StateError | Interrupted) and "journal" in message:
                self._recover_needed(self.run.error)


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:500]


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _masker(secrets: list[str], targets: list[Target]) -> Callable[[str], str]:
    """Sensitive variable values and notification URLs never reach the history or a payload."""
    from cloudorch.notify.targets import mask_text

    ordered = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)

    def clean(text: str) -> str:
        text = mask_text(text, targets)
        for s in ordered:
            text = text.replace(s, "***")
        return text

    return clean


def _mask_record(run: RunRecord, clean: Callable[[str], str]) -> None:
    run.failed = [FailedAddress(f.address, clean(f.error)) for f in run.failed]
    if run.error:
        run.error = clean(run.error)
    for p in run.policy:
        p["message"] = clean(str(p.get("message", "")))
