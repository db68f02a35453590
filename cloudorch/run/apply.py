"""Apply, destroy and recover: change the world from a changeset, journaled, and say what happened.

`apply_in` applies a `Planned` changeset inside an open session, so a caller that planned in that
session (a promotion) applies without loading or locking again. The undo of a failed apply
(`--on-failure=rollback`, or one a crash cut short) goes through `_undo`, the one use of the
engine's undo here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudorch.actor import actor_name
from cloudorch.engine.applier import ApplyResult as EngineApplyResult
from cloudorch.engine.applier import check_on_failure as check_on_failure
from cloudorch.errors import CloudorchError, ConfigError, Interrupted, StalePlanError, StateError
from cloudorch.run.options import Interrupt, RunOptions
from cloudorch.run.plan import Planned, PolicyVerdict, judge, plan_in
from cloudorch.run.recording import records
from cloudorch.run.session import Session, gated_stage, plan_key, session

if TYPE_CHECKING:
    from cloudorch.changes import Change, ChangeSet
    from cloudorch.engine.applier import ApplyObserver
    from cloudorch.engine.recovery import RecoveryReport
    from cloudorch.engine.undo import UndoReport
    from cloudorch.planfile import PlanSpec
    from cloudorch.state.journal import Journal, JournalReplay
    from cloudorch.state.lock import LockInfo
    from cloudorch.state.model import State

Confirm = Callable[["ChangeSet"], bool]
OnPlan = Callable[["ChangeSet"], None]


@dataclass
class ApplyResult(EngineApplyResult):
    """What an apply did: the engine's result plus `denied`, a policy that blocked on a value known
    only during the apply (state was saved first; the caller shows the result, then exits 3)."""

    denied: CloudorchError | None = None

    @property
    def ok(self) -> bool:
        return self.denied is None and super().ok


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
    inputs = cs.inputs or {}
    stage = base.stage
    if stage is None and cs.state_key.startswith(f"{cs.plan_name}."):
        stage = cs.state_key[len(cs.plan_name) + 1 :]  # a plan saved for one release stage applies to it
    vars = dict(inputs.get("vars", {}))
    withheld = [str(n) for n in inputs.get("withheld", [])]
    # a saved plan holds no sensitive `--var`: it must be given again, to the same value (the
    # plan hash checks that), by `--var` or a `--var-file`
    vars.update({k: v for k, v in base.vars.items() if k in withheld})
    var_files = [Path(p) for p in inputs.get("var_files", [])] + [
        Path(p) for p in base.var_files if str(p) not in inputs.get("var_files", [])
    ]
    missing = [n for n in withheld if n not in vars and not base.var_files]
    if missing:
        names = ", ".join(f"`{n}`" for n in missing)
        raise ConfigError(
            f"the saved plan needs sensitive variable{'s' if len(missing) > 1 else ''} {names} again: "
            "saved plans never hold sensitive values",
            hint="pass them to apply as when planning: " + " ".join(f"--var {n}=..." for n in missing)
            + " (or a --var-file)",
        )
    return replace(
        base,
        stage=stage,
        plan_file=Path(cs.plan_file),
        vars=vars,
        var_files=var_files,
        destroy=cs.destroy,
    )


def plan_saved(sess: Session, opts: RunOptions, saved: ChangeSet) -> Planned:
    """A saved changeset checked against the session's state, judged again with today's policies."""
    from cloudorch.engine.planner import adopt_seen_in_diffs
    from cloudorch.run.blocks import replay

    check_saved(saved, sess)
    replay(sess, saved)  # its moves, imports and data values, as planned
    saved = _unmasked(sess, opts, saved)
    adopt_seen_in_diffs(sess.state, saved)
    return judge(sess, opts, saved)


def _unmasked(sess: Session, opts: RunOptions, saved: ChangeSet) -> ChangeSet:
    """A saved changeset with the sensitive values it does not hold taken from the plan file.

    `check_saved` has made sure state and the plan file with its variables are as when it was
    saved, so planning again (without refresh) gives the same values."""
    from cloudorch.changes import SENSITIVE

    masked = [
        c for c in saved.changes if c.after and any(c.after.get(k) == SENSITIVE for k in c.sensitive)
    ]
    if not masked:
        return saved
    from cloudorch.engine.planner import Planner, PlanRequest

    loaded = sess.loaded
    wanted = {c.address for c in masked}
    from cloudorch import graph as graphs

    order = [a for a in graphs.order(loaded.graph) if a in loaded.graph]
    request = PlanRequest(refresh=False, parallelism=opts.parallelism)
    planner = Planner(loaded.plan, loaded.instances, order, sess.state, sess.providers, request)
    fresh = {c.address: c for c in planner.run({}) if c.address in wanted}
    changes = []
    for c in saved.changes:
        now = fresh.get(c.address) if c.address in wanted and c.deposed is None else None
        if now is None or now.after is None or c.after is None:
            changes.append(c)
            continue
        after = dict(c.after)
        for key in c.sensitive:
            if after.get(key) == SENSITIVE and key in now.after:
                after[key] = now.after[key]
        changes.append(c.model_copy(update={"after": after}))
    return saved.model_copy(update={"changes": changes})


@records("apply")  # `destroy` too (it calls this with opts.destroy)
def apply(
    opts: RunOptions,
    *,
    saved: ChangeSet | None = None,
    confirm: Confirm | None = None,
    observer: ApplyObserver | None = None,
    interrupt: Interrupt | None = None,
    on_plan: OnPlan | None = None,
    warn_gates: bool = False,
) -> ApplyResult | None:
    """Plan (or take a saved plan), confirm, and apply. None means the user declined.

    `warn_gates`: say when the stage has release gates this apply does not evaluate (`cloudorch apply`).
    """
    check_on_failure(opts.on_failure)
    if saved is not None:
        opts = options_for_saved(saved, opts)
    with session(opts, fold=True) as sess:
        if warn_gates and opts.release_version is None and gated_stage(sess.loaded.plan, opts):
            opts.say(
                f"stage {opts.stage} has release gates; `cloudorch apply` does not evaluate them "
                "(`cloudorch release promote` does) and leaves no release history"
            )
        planned = plan_saved(sess, opts, saved) if saved is not None else plan_in(sess, opts)
        return apply_in(sess, opts, planned, confirm=confirm, observer=observer, interrupt=interrupt, on_plan=on_plan)


def apply_in(
    sess: Session,
    opts: RunOptions,
    planned: Planned,
    *,
    confirm: Confirm | None = None,
    observer: ApplyObserver | None = None,
    interrupt: Interrupt | None = None,
    on_plan: OnPlan | None = None,
) -> ApplyResult | None:
    """Show, check policies, confirm and apply a changeset inside an open session. None: declined."""
    from cloudorch.engine.applier import Applier

    cs, verdict = planned.changeset, planned.verdict
    intr = interrupt or Interrupt()
    if on_plan is not None:
        on_plan(cs)
    override_events: list[Any] = []
    if verdict is not None:
        verdict.report.raise_if_blocked(dict(opts.overrides))
        override_events = verdict.report.apply_overrides(dict(opts.overrides), actor_name())
    if not cs.has_changes:
        return _finish_without_changes(sess, cs)
    repair = _repair_of(sess, cs)
    if confirm is not None and not confirm(cs):
        return None
    if repair is not None:
        opts.say(repair["message"])
    from cloudorch.run.blocks import persist_adoptions

    persist_adoptions(sess, cs)
    journal = _start_journal(sess, opts)
    denied: list[CloudorchError] = []
    applier = Applier(
        cs,
        sess.state,
        sess.providers,
        sess.backend,
        journal,
        parallelism=opts.parallelism,
        observer=observer,
        interrupt=intr,
        on_resolved=_resolved_policy_hook(verdict, opts, intr, denied),
        on_failure=opts.on_failure,
    )
    sess.state.events.extend(override_events)
    with intr.armed():
        ran = applier.run()
        undo = None
        if opts.on_failure == "rollback" and ran.failed and not ran.abandoned and intr.count == 0 and not denied:
            if observer is not None:
                observer.message(
                    f"{', '.join(sorted(ran.failed))} failed: rolling back the {len(ran.succeeded)} "
                    "operation(s) this apply finished"
                )
            undo = _undo(sess, opts, journal, observer, intr, "failed: " + ", ".join(sorted(ran.failed)))
    result = ApplyResult(
        **{f.name: getattr(ran, f.name) for f in fields(EngineApplyResult)},
        denied=denied[0] if denied else None,
    )
    result.undo, result.repair = undo, repair
    _record_apply(sess, result)
    try:
        applier.write_state()
    except StateError as exc:
        journal.abandon()  # the journal keeps what succeeded; the next command folds it into state
        raise StateError(
            f"{exc.message}; {len(result.succeeded)} operation(s) succeeded and are recorded in the journal",
            hint=exc.hint,
        ) from exc
    stats = journal.stats()
    result.journal_lines, result.journal_fsyncs = stats.lines, stats.fsyncs
    if result.abandoned or (result.undo is not None and result.undo.abandoned):
        # operations still running (a second Ctrl-C): the journal stays open without an end line,
        # so one that finishes before the process exits is still recorded; one cut off by the exit
        # stays in flight, and the next command that folds the journal recovers it
        journal.flush()
    else:
        journal.close({"succeeded": len(result.succeeded), "failed": len(result.failed)})
        journal.discard()
    if result.checkpoint_error is not None:
        raise StateError(
            f"{result.checkpoint_error.message}: {len(result.succeeded)} operation(s) succeeded and were "
            f"saved in the end, {len(result.not_started)} were not started",
            hint="fix the state store and run `cloudorch apply` again to finish",
        )
    if result.interrupted and result.denied is None:
        raise Interrupted(
            f"apply interrupted: {len(result.succeeded)} operation(s) finished and were saved, "
            f"{len(result.not_started)} not started"
            + (f", {len(result.abandoned)} abandoned while running" if result.abandoned else ""),
            hint="run `cloudorch apply` again to finish; the journal lets it recover anything in flight",
        )
    return result


def destroy(
    opts: RunOptions,
    *,
    confirm: Confirm | None = None,
    observer: ApplyObserver | None = None,
    interrupt: Interrupt | None = None,
    on_plan: OnPlan | None = None,
) -> ApplyResult | None:
    return apply(replace(opts, destroy=True), confirm=confirm, observer=observer, interrupt=interrupt, on_plan=on_plan)


def _undo(
    sess: Session,
    opts: RunOptions,
    journal: Journal,
    observer: ApplyObserver | None,
    intr: Interrupt,
    reason: str,
    replay: JournalReplay | None = None,
) -> UndoReport:
    """Undo what an apply finished, from the journal's inverse records (an `UndoReport`).

    `replay` is a crashed apply's journal (recover); else this apply's own journal is read.
    """
    from cloudorch.engine.undo import undo_apply as undo_journal

    return undo_journal(
        replay if replay is not None else journal.replay(),
        sess.state,
        sess.providers,
        sess.backend,
        journal,
        parallelism=opts.parallelism,
        observer=observer,
        interrupt=intr,
        reason=reason,
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
    took_over: LockInfo | None = None
    undo: UndoReport | None = None  # when an undo a crash cut short was completed
    state_serial: int = 0


@records("recover")
def recover(
    opts: RunOptions, *, observer: ApplyObserver | None = None, interrupt: Interrupt | None = None
) -> RecoverOutcome:
    """Take the lock (a dead holder's is taken over), fold a leftover journal into state, adopt what
    in-flight creates made, and finish an undo a crash cut short. No journal: nothing to do."""
    from cloudorch.state.model import StateEvent

    with session(opts, fold=True, quiet=True, resume_undo=True) as sess:
        outcome = RecoverOutcome(sess.recovered, sess.took_over, state_serial=sess.state.serial)
        report = sess.recovered
        if report is None or not report.undo_unfinished or report.replay is None or report.pending is None:
            return outcome
        # the undo goes on in the killed run's own journal: it holds the inverse records and what
        # was undone already, and a kill of this undo leaves it for the next `recover` again
        journal = report.pending.resume(sess.backend, lease=sess.lock)
        intr = interrupt or Interrupt()
        with intr.armed():
            undo = _undo(
                sess, opts, journal, observer, intr, "finishing the rollback of an apply that was killed", report.replay
            )
        outcome.undo = undo
        sess.state.events.append(StateEvent(kind="undo", actor=actor_name(), detail=undo.to_json()))
        sess.backend.write_next(sess.state)
        if undo.abandoned:
            journal.flush()  # undo operations still running: the next `recover` goes on from here
        else:
            journal.close({"undone": len(undo.undone)})
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
            "actor": actor_name(),
        },
        lease=sess.lock,
    )


def _resolved_policy_hook(
    verdict: PolicyVerdict | None, opts: RunOptions, intr: Interrupt, denied: list[CloudorchError]
) -> Callable[[Change, dict[str, Any]], None] | None:
    """Check policies again on values that were unknown at plan time, before the operation."""
    if verdict is None:
        return None

    def hook(change: Change, after: dict[str, Any]) -> None:
        from cloudorch.changes import mask_change

        known = mask_change(change.model_copy(update={"after": after, "after_unknown": []}))
        report = verdict.policies.check_resource(known, input_doc=verdict.input)
        try:
            report.raise_if_blocked(dict(opts.overrides))
        except CloudorchError as exc:
            denied.append(exc)
            # a policy broke mid-apply: start nothing new; running work finishes (however many
            # denials come at once, this is never a second Ctrl-C)
            intr.halt(f"denied by policy: {exc.message}")
            raise

    return hook


def _finish_without_changes(sess: Session, cs: ChangeSet) -> ApplyResult:
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
    reverted = result.changeset.inputs.get("rollback")  # set by `revert`: from/to serials
    state.events.append(
        StateEvent(
            kind="destroy" if result.changeset.destroy else ("rollback" if reverted else "apply"),
            actor=actor_name(),
            detail={
                "counts": counts,
                "failed": sorted(result.failed),
                "interrupted": result.interrupted,
                **({"rolled_back": result.undo.to_json()} if result.undo is not None else {}),
                "seconds": round(result.seconds, 3),
                **(reverted or {}),
            },
        )
    )
    del state.events[:-200]  # keep the audit trail bounded; history keeps older documents


def compute_outputs(plan: PlanSpec, state: State, *, reveal: str | None = None) -> dict[str, Any]:
    """name -> {value, sensitive}; a sensitive value as a hash, except output `reveal`'s."""
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

    from cloudorch.state.model import is_sensitive_marker, sensitive_marker

    out: dict[str, Any] = {}
    for name, spec in (plan.outputs or {}).items():
        value = resolve(spec.value, lookup)
        value = None if isinstance(value, Unknown) else value
        if spec.sensitive and value is not None and not is_sensitive_marker(value) and name != reveal:
            # state and its history keep a sensitive output as a hash only, like a sensitive property
            value = sensitive_marker(value)
        out[name] = {"value": value, "sensitive": spec.sensitive}
    return out
