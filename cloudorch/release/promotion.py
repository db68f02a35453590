"""Promotion: deploy a version into a stage, promote it through gates, approve, reject, roll back.

Every action applies through the operations layer (`cloudorch.run`, the same apply as
`cloudorch apply`, on the stage's own state document with `${release.version}` bound) and is
recorded in the release ledger and in the stage's state document. A promotion plans, judges its
gates and applies in one session (one load, one lock, one recovery, one policy run). This
module returns outcomes and raises `CloudorchError`s; it never prints or asks (the CLI passes a
`confirm` callback). It must not import `cloudorch.api` or `cloudorch.cli`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from cloudorch.actor import actor_name
from cloudorch.clock import iso
from cloudorch.clock import now as clock_now
from cloudorch.errors import CloudorchError, ConfigError, PolicyDeniedError
from cloudorch.planfile.stages import ApprovalSpec, Stage, Stages, stages_of
from cloudorch.release import ledger as L
from cloudorch.release import signing
from cloudorch.release.gates import OVERRIDABLE, GateInputs, Verdict, evaluate
from cloudorch.run import apply as runs
from cloudorch.run.options import Interrupt, RunOptions
from cloudorch.run.plan import plan_in
from cloudorch.run.recording import records
from cloudorch.run.session import Session, Workspace, backend_for, locked, plan_key, read_plan, workspace

if TYPE_CHECKING:
    from cloudorch.changes import ChangeSet
    from cloudorch.engine.applier import ApplyObserver
    from cloudorch.planfile import PlanSpec
    from cloudorch.run.apply import ApplyResult
    from cloudorch.state.model import StateEvent


class GateDeniedError(PolicyDeniedError):
    """A release gate (or a rejection) refused a promotion; exit 3. `gates` names the failing ones."""

    def __init__(self, message: str, *, gates: list[str] | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.gates = list(gates or [])

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), "gates": self.gates}


@dataclass
class Release:
    """One release command's view: the plan (unbound), its stages, the ledger and who acts when."""

    opts: RunOptions
    plan: PlanSpec
    stages: Stages
    store: L.LedgerStore
    ledger: L.Ledger
    now: datetime
    actor: str

    def refresh(self) -> None:
        self.ledger = self.store.read()

    def clock(self) -> datetime:
        """Now, for events recorded after an apply (which may have taken a while since `now`)."""
        return clock_now(self.opts.env)


@dataclass
class Outcome:
    """What a deploy, promotion or rollback did (or would do, for a dry run)."""

    action: str
    stage: str
    version: str
    previous: str | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    dry_run: bool = False
    applied: bool = False
    declined: bool = False
    result: ApplyResult | None = None
    verification: list[Verdict] = field(default_factory=list)
    rolled_back_to: str | None = None
    #: raised by the CLI after it has shown the verdicts
    denied: CloudorchError | None = None

    @property
    def ok(self) -> bool:
        return self.denied is None and not self.declined and (self.result is None or self.result.ok)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "stage": self.stage,
            "version": self.version,
            "previous": self.previous,
            "dry_run": self.dry_run,
            "gates": [v.to_json() for v in self.verdicts],
            "passed": all(v.passed for v in self.verdicts),
            "applied": self.applied,
            "ok": self.ok,
            "verification": [v.to_json() for v in self.verification],
            "rolled_back_to": self.rolled_back_to,
            "failed": sorted(self.result.failed) if self.result is not None else [],
        }


class Approval(TypedDict):
    """What `release approve` recorded (or found already recorded)."""

    stage: str
    version: str
    actor: str
    already_approved: bool
    approvals: list[str]
    needed: int
    satisfied: bool


class Rejection(TypedDict):
    version: str
    already_rejected: bool
    running_in: list[str]
    reason: str


class PendingApprovals(TypedDict):
    needed: int
    approved_by: list[str]
    waiting_for: list[str]


class GateStatus(TypedDict, total=False):
    """A gate as `release status` shows it; `passed` None: checked only at promotion."""

    gate: str
    passed: bool | None
    detail: str
    overridden: str | None
    data: dict[str, object]


class NextPromotion(TypedDict):
    stage: str
    version: str | None
    gates: list[GateStatus]
    pending_approvals: PendingApprovals | None


class StageStatus(TypedDict):
    stage: str
    needs: list[str]
    version: str | None
    since: str | None
    rejected: bool
    history: list[str]
    next: list[NextPromotion]


class ReleaseStatus(TypedDict):
    plan: str
    now: str
    stages: list[StageStatus]


class ReleaseEvent(TypedDict):
    """One history entry as `release history --json` shows it."""

    kind: str
    at: str
    actor: str
    stage: str | None
    version: str | None
    reason: str | None
    detail: dict[str, object]


# --------------------------------------------------------------------------- context


def open_release(opts: RunOptions) -> Release:
    plan = read_plan(opts)
    stages = stages_of(plan)
    if stages is None:
        raise ConfigError(
            f"{plan.path} declares no release stages",
            location=plan.location(),
            hint="add `stages:` (e.g. dev, staging, prod with `needs:`) to release through them",
        )
    key = L.ledger_key(plan_key(plan))
    store = L.LedgerStore(backend_for(plan, opts, key=key), plan_key(plan), key)
    return Release(opts, plan, stages, store, store.read(), clock_now(opts.env), actor_name())


def version_vars(plan: PlanSpec, version: str) -> dict[str, str]:
    """When `release.version` is written `${var.NAME}`, `--version` sets NAME too, so they agree."""
    from cloudorch.planfile.expressions import Reference, parse_template
    from cloudorch.planfile.source import parse_yaml

    # the loaded plan holds the value with variables resolved; the document as written holds the reference
    document, _ = parse_yaml(plan.text, str(plan.path))
    release = document.get("release") if isinstance(document, dict) else None
    written = release.get("version") if isinstance(release, dict) else None
    if not isinstance(written, str):
        return {}
    parts = parse_template(written.strip())
    ref = parts[0] if len(parts) == 1 else None
    if not isinstance(ref, Reference) or ref.root != "var" or len(ref.path) != 1:
        return {}
    name = str(ref.path[0])
    return {name: version} if name in plan.variables else {}


def stage_options(rel: Release, stage: str, version: str, **kw: Any) -> RunOptions:
    return replace(
        rel.opts,
        stage=stage,
        release_version=version,
        vars={**rel.opts.vars, **version_vars(rel.plan, version)},
        command=f"{rel.opts.command} ({stage} {version})",
        **kw,
    )


def _refuse_rejected(rel: Release, version: str, what: str) -> None:
    rejected = rel.ledger.rejected(version)
    if rejected is not None:
        raise GateDeniedError(
            f"{version} was rejected by {rejected.actor} at {rejected.at}: {rejected.detail.get('reason')}; "
            f"it cannot {what}",
            gates=["rejected"],
            hint="release a new version",
        )


def _record(rel: Release, events: list[StateEvent]) -> None:
    rel.store.append(events, command=rel.opts.command, lock_timeout=rel.opts.lock_timeout)
    rel.refresh()


def _mark_stage_state(rel: Release, sess: Session, kind: str, version: str, **detail: Any) -> None:
    """Leave the release in the stage's own state document too, beside its apply event (lock held)."""
    from cloudorch.state.model import StateEvent

    state = sess.backend.read()
    if state is None:
        return
    state.events.append(
        StateEvent(
            kind="release",
            actor=rel.actor,
            at=iso(rel.now),
            detail={"action": kind, "version": version, **detail},
        )
    )
    del state.events[:-200]
    sess.backend.write_next(state)


Confirm = Callable[["ChangeSet"], bool]
OnPlan = Callable[["ChangeSet"], None]


@dataclass(frozen=True)
class Steer:
    """How the caller takes part in an apply: confirm, watch progress, see the plan, stop it."""

    confirm: Confirm | None = None
    observer: ApplyObserver | None = None
    on_plan: OnPlan | None = None
    interrupt: Interrupt | None = None


def _apply_in(sess: Session, sopts: RunOptions, steer: Steer) -> ApplyResult | None:
    """Plan and apply inside the stage's open session (one load, one lock, one recovery, one policy run)."""
    return _apply_planned(sess, sopts, plan_in(sess, sopts), steer)


def _apply_planned(sess: Session, sopts: RunOptions, planned: Any, steer: Steer) -> ApplyResult | None:
    return runs.apply_in(
        sess,
        sopts,
        planned,
        confirm=steer.confirm,
        observer=steer.observer,
        interrupt=steer.interrupt,
        on_plan=steer.on_plan,
    )


# --------------------------------------------------------------------------- verification


def verify(rel: Release, stage: Stage, ws: Workspace, version: str) -> list[Verdict]:
    """Run the stage's `verify` checks for `verify.for` (once when 0); the first failing round wins.

    Runs on the workspace of the apply it verifies (its providers), without the state lock.
    """
    if not stage.verify:
        return []
    deadline = time.monotonic() + stage.verify_for
    now = clock_now(rel.opts.env)
    inp = GateInputs(stage, version, rel.ledger, now, rel.plan.path.parent, ws.providers.get, plan=rel.plan)
    while True:
        verdicts = evaluate(stage.verify, inp)
        if not all(v.passed for v in verdicts) or time.monotonic() + stage.verify_every > deadline:
            return verdicts
        time.sleep(stage.verify_every)


def _after_apply(rel: Release, stage: Stage, ws: Workspace, out: Outcome, steer: Steer) -> None:
    """Verify a fresh deploy or promotion; on failure record it and, if the stage says so, roll back."""
    out.verification = verify(rel, stage, ws, out.version)
    failing = [v for v in out.verification if not v.passed]
    if not failing:
        return
    why = "; ".join(f"{v.gate}: {v.detail}" for v in failing)
    _record(
        rel,
        [L.event(L.VERIFY_FAILED, actor=rel.actor, at=rel.clock(), stage=stage.name, version=out.version, reason=why)],
    )
    target = rel.ledger.previous_good(stage.name) if stage.on_failed_verification == "rollback" else None
    if target is None:
        hint = (
            "no earlier good version to roll back to; fix forward or `cloudorch release reject`"
            if stage.on_failed_verification == "rollback"
            else f"roll back with: cloudorch release rollback {rel.plan.path} --stage {stage.name}"
        )
        out.denied = GateDeniedError(
            f"{out.version} failed verification in {stage.name}: {why}", gates=[v.gate for v in failing], hint=hint
        )
        return
    automatic = Steer(observer=steer.observer, interrupt=steer.interrupt)  # nobody is asked: the stage said so
    back = _rollback_to(rel, stage, target, out.version, f"verification of {out.version} failed: {why}", automatic)
    out.rolled_back_to = target
    ok = back is not None and back.ok
    out.denied = GateDeniedError(
        f"{out.version} failed verification in {stage.name} ({why}); "
        + (f"rolled {stage.name} back to {target}" if ok else f"the rollback to {target} failed too"),
        gates=[v.gate for v in failing],
        hint="see `cloudorch release history` for what happened",
    )


def _rollback_to(
    rel: Release, stage: Stage, target: str, current: str | None, reason: str, steer: Steer
) -> ApplyResult | None:
    """Release rollback: apply `target` to the stage again, record it in the ledger and the stage's state."""
    sopts = stage_options(rel, stage.name, target)
    runs.check_on_failure(sopts.on_failure)
    with workspace(sopts) as ws, locked(ws, fold=True) as sess:
        result = _apply_in(sess, sopts, steer)
        if result is None or result.denied is not None:
            return result
        _record(
            rel,
            [
                L.event(
                    L.ROLLBACK,
                    actor=rel.actor,
                    at=rel.clock(),
                    stage=stage.name,
                    version=target,
                    ok=result.ok,
                    reason=reason,
                    rolled_back_from=current,
                )
            ],
        )
        if result.ok:
            _mark_stage_state(rel, sess, L.ROLLBACK, target, reason=reason)
    return result


# --------------------------------------------------------------------------- commands


@records("release deploy", version_arg="version")
def deploy(
    opts: RunOptions,
    version: str,
    *,
    confirm: Confirm | None = None,
    observer: ApplyObserver | None = None,
    on_plan: OnPlan | None = None,
    interrupt: Interrupt | None = None,
) -> Outcome:
    """Apply `version` to `opts.stage`: any version into a first stage; elsewhere, only re-apply the current one."""
    rel = open_release(opts)
    stage = rel.stages.get(rel.plan, _need_stage(opts.stage))
    _refuse_rejected(rel, version, "be deployed")
    cur = rel.ledger.current(stage.name)
    if stage.needs and (cur is None or cur.version != version):
        raise ConfigError(
            f"stage {stage.name} needs {', '.join(stage.needs)}: "
            "a new version enters it by promotion, through its gates",
            hint=f"cloudorch release promote {rel.plan.path} --to {stage.name} --version {version}",
        )
    sopts = stage_options(rel, stage.name, version)
    out = Outcome("deploy", stage.name, version, previous=cur.version if cur else None)
    steer = Steer(confirm, observer, on_plan, interrupt)
    runs.check_on_failure(sopts.on_failure)
    with workspace(sopts) as ws:
        with locked(ws, fold=True) as sess:
            result = _apply_in(sess, sopts, steer)
            if result is None:
                out.declined = True
                return out
            out.result, out.applied, out.denied = result, True, result.denied
            if result.denied is not None:
                return out
            _record(
                rel,
                [
                    L.event(
                        L.DEPLOY,
                        actor=rel.actor,
                        at=rel.clock(),
                        stage=stage.name,
                        version=version,
                        ok=result.ok,
                        previous=out.previous,
                    )
                ],
            )
            if result.ok:
                _mark_stage_state(rel, sess, L.DEPLOY, version)
        if result.ok:
            _after_apply(rel, stage, ws, out, steer)
    return out


def _need_stage(stage: str | None) -> str:
    if not stage:
        raise ConfigError("which stage? pass --stage NAME", hint="`cloudorch release status PLAN` lists the stages")
    return stage


def pick_version(rel: Release, stage: Stage) -> str | None:
    """What auto-promotion takes: the newest good version running (or that ran) in the first needed stage."""
    prev = stage.needs[0]
    cur = rel.ledger.current(prev)
    if cur is not None and rel.ledger.good(prev, cur.version):
        return cur.version
    for v in reversed(rel.ledger.versions(prev)):  # a rejected current version is skipped, never picked
        if rel.ledger.good(prev, v):
            return v
    return None


@records("release promote", stage_arg="to", version_arg="version")
def promote(
    opts: RunOptions,
    to: str,
    *,
    version: str | None = None,
    dry_run: bool = False,
    overrides: Mapping[str, str] | None = None,
    confirm: Confirm | None = None,
    observer: ApplyObserver | None = None,
    on_plan: OnPlan | None = None,
    on_verdicts: Callable[[str, list[Verdict]], None] | None = None,
    interrupt: Interrupt | None = None,
) -> Outcome:
    """Evaluate every gate of stage `to` for a version, and apply it there only if all pass.

    `overrides` maps a gate name (`soak`, `window`, `health`, `health.http`) or a mandatory
    policy id to the reason it is waived; each use is recorded. Approvals cannot be overridden.
    """
    rel = open_release(opts)
    stage = rel.stages.get(rel.plan, to, "--to")
    if not stage.needs:
        raise ConfigError(
            f"stage {to} needs no earlier stage: versions enter it with `release deploy`",
            hint=f"cloudorch release deploy {rel.plan.path} --stage {to} --version VERSION",
        )
    overrides = dict(overrides or {})
    if any(k == "approval" or k.startswith("approval.") for k in overrides):
        raise ConfigError("approvals cannot be overridden", hint="ask the approvers: cloudorch release approve ...")
    gate_names = {g.name for g in stage.gates} | {g.kind for g in stage.gates}
    gate_overrides = {k: v for k, v in overrides.items() if k in gate_names or k.split(".", 1)[0] in OVERRIDABLE}
    policy_overrides = {k: v for k, v in overrides.items() if k not in gate_overrides}
    if version is None:
        version = pick_version(rel, stage)
        if version is None:
            raise ConfigError(
                f"nothing to promote into {to}: no good version has run in {stage.needs[0]}",
                hint=f"deploy one first: cloudorch release deploy {rel.plan.path} --stage {stage.needs[0]} --version V",
            )
    _refuse_rejected(rel, version, "be promoted")
    for need in stage.needs:
        if not rel.ledger.good(need, version):
            raise GateDeniedError(
                f"{version} has not passed stage {need}, which {to} needs",
                gates=["needs"],
                hint=f"promote it into {need} first, or pick a version that ran there "
                f"(cloudorch release status {rel.plan.path})",
            )
    cur = rel.ledger.current(to)
    out = Outcome("promote", to, version, previous=cur.version if cur else None, dry_run=dry_run)
    sopts = stage_options(rel, to, version, overrides=policy_overrides)
    steer = Steer(confirm, observer, on_plan, interrupt)
    runs.check_on_failure(sopts.on_failure)
    with workspace(sopts) as ws:
        with locked(ws, fold=not dry_run) as sess:
            planned = plan_in(sess, sopts)
            inp = GateInputs(
                stage,
                version,
                rel.ledger,
                rel.now,
                rel.plan.path.parent,
                ws.providers.get,
                policy_report=planned.verdict.report if planned.verdict is not None else None,
                policy_overrides=policy_overrides,
                plan=rel.plan,
                dry_run=dry_run,
            )
            out.verdicts = evaluate(stage.gates, inp, gate_overrides)
            if on_verdicts is not None:
                on_verdicts(version, out.verdicts)
            failing = [v.gate for v in out.verdicts if not v.passed]
            if failing:
                out.denied = GateDeniedError(
                    f"promotion of {version} into {to} refused by gate(s): {', '.join(failing)}",
                    gates=failing,
                    hint=_hint_for(rel, to, version, failing),
                )
                if not dry_run:
                    _record(
                        rel,
                        [
                            L.event(
                                L.REFUSED,
                                actor=rel.actor,
                                at=rel.now,
                                stage=to,
                                version=version,
                                reason="failed gate(s): " + ", ".join(failing),
                                gates=[v.to_json() for v in out.verdicts],
                            )
                        ],
                    )
                return out
            if dry_run:
                return out
            result = _apply_planned(sess, sopts, planned, steer)
            if result is None:
                out.declined = True
                return out
            out.result, out.applied, out.denied = result, True, result.denied
            if result.denied is not None:
                return out
            events = [
                L.event(
                    L.OVERRIDE,
                    actor=rel.actor,
                    at=rel.clock(),
                    stage=to,
                    version=version,
                    reason=v.overridden,
                    gate=v.gate,
                    detail_seen=v.detail,
                )
                for v in out.verdicts
                if v.overridden
            ]
            events += [
                L.event(
                    L.OVERRIDE, actor=rel.actor, at=rel.clock(), stage=to, version=version, reason=reason, policy=pid
                )
                for pid, reason in policy_overrides.items()
            ]
            events.append(
                L.event(
                    L.PROMOTE,
                    actor=rel.actor,
                    at=rel.clock(),
                    stage=to,
                    version=version,
                    ok=result.ok,
                    previous=out.previous,
                    source=list(stage.needs),
                    gates=[v.to_json() for v in out.verdicts],
                )
            )
            _record(rel, events)
            if result.ok:
                _mark_stage_state(rel, sess, L.PROMOTE, version, previous=out.previous)
        if result.ok:
            _after_apply(rel, stage, ws, out, steer)
    return out


def _hint_for(rel: Release, to: str, version: str, failing: list[str]) -> str:
    if "approval" in failing:
        signed = any(g.kind == "approval" and g.spec.allowed_signers is not None for g in rel.stages.by_name[to].gates)
        return f"approvers run: cloudorch release approve {rel.plan.path} --stage {to} --version {version}" + (
            " --sign-key KEY" if signed else ""
        )
    if any(g.split(".", 1)[0] in OVERRIDABLE for g in failing):
        return "wait and promote again, or waive a soak/window/health gate with --override GATE --reason TEXT"
    return "fix what the failing gates report, then promote again"


@records("release approve", version_arg="version")
def approve(opts: RunOptions, version: str, comment: str | None = None, sign_key: Path | None = None) -> Approval:
    """Record the current actor's approval of `version` into `opts.stage` (once per actor).

    With `sign_key` the approval is signed (`ssh-keygen -Y sign`) and recorded under the principal
    the stage's `allowed_signers` names for the key, whatever `CLOUDORCH_ACTOR` says; a stage
    whose approval gate is `signed: true` takes only signed approvals.
    """
    rel = open_release(opts)
    stage = rel.stages.get(rel.plan, _need_stage(opts.stage))
    gates = [g for g in stage.gates if g.kind == "approval"]
    if not gates:
        raise ConfigError(
            f"stage {stage.name} has no approval gate; nothing to approve",
            location=rel.plan.location("stages", stage.name),
        )
    specs: list[ApprovalSpec] = [g.spec for g in gates]
    need = max(s.min for s in specs)
    allowed: list[str] = list(dict.fromkeys(a for s in specs for a in s.allowed))
    signers = [s.allowed_signers for s in specs if s.allowed_signers is not None]
    if signers and sign_key is None:
        raise GateDeniedError(
            f"the approval gate of {stage.name} counts only signed approvals",
            gates=["approval"],
            hint="sign it: cloudorch release approve ... --sign-key ~/.ssh/id_ed25519 (a key listed in "
            + ", ".join(sorted({str(p) for p in signers}))
            + ")",
        )
    actor = rel.actor
    signed: dict[str, Any] | None = None
    signature: str | None = None
    if sign_key is not None:
        if not signers:
            raise ConfigError(
                f"--sign-key: the approval gate of {stage.name} is not `signed: true`; no signature would be checked",
                location=rel.plan.location("stages", stage.name, "gates"),
                hint="add `signed: true` and `allowed_signers: FILE` to the gate, or approve without --sign-key",
            )
        actor, signed, signature = _signed_approval(rel, stage.name, version, sign_key, signers, allowed)
    if actor not in allowed:
        raise GateDeniedError(
            f"{actor} may not approve releases into {stage.name} (allowed: {', '.join(allowed)})",
            gates=["approval"],
            hint="the actor comes from CLOUDORCH_ACTOR, the CI's actor variable, or the OS user",
        )
    _refuse_rejected(rel, version, "be approved")
    approvals = _counted(rel, stage, version)
    already = actor in approvals
    if not already:
        claimed = rel.actor if signed is not None and rel.actor != actor else None
        _record(
            rel,
            [
                L.event(
                    L.APPROVE,
                    actor=actor,
                    at=rel.now,
                    stage=stage.name,
                    version=version,
                    reason=comment,
                    signed=signed,
                    signature=signature,
                    claimed_by=claimed,
                )
            ],
        )
        approvals = _counted(rel, stage, version)
    counted = [a for a in approvals if a in allowed]
    return {
        "stage": stage.name,
        "version": version,
        "actor": actor,
        "already_approved": already,
        "approvals": counted,
        "needed": need,
        "satisfied": len(counted) >= need,
    }


def _counted(rel: Release, stage: Stage, version: str) -> list[str]:
    """The approvers the stage's approval gates count now (for a signed gate: verified principals)."""
    inp = _gate_inputs(rel, stage, version)
    names: list[str] = []
    for gate in stage.gates:
        if gate.kind == "approval":
            names += [a for a in evaluate([gate], inp)[0].data.get("approved_by", []) if a not in names]
    return names


def _gate_inputs(rel: Release, stage: Stage, version: str) -> GateInputs:
    """Inputs of the gates that read only the ledger and the clock (approval, soak, window)."""
    return GateInputs(
        stage,
        version,
        rel.ledger,
        rel.now,
        rel.plan.path.parent,
        _no_provider,
        plan=rel.plan,
    )


def _signed_approval(
    rel: Release, stage: str, version: str, key: Path, signers: list[Path], allowed: list[str]
) -> tuple[str, dict[str, Any], str]:
    """(principal, signed fields, signature): sign the approval with `key` as the principal the
    allowed_signers files name for it."""
    at = iso(rel.now)
    digest = signing.plan_sha256(rel.plan.text)

    def claim(approver: str) -> signing.Signed:
        return signing.Signed(plan_key(rel.plan), stage, version, digest, at, approver)

    # find-principals reads the key from a signature: sign once to learn who the key is
    probe = signing.sign(key, claim("").text())
    names: list[str] = []
    for path in signers:
        names += [n for n in signing.principals(probe, path) if n not in names]
    if not names:
        raise GateDeniedError(
            f"the key {key} is not listed in {', '.join(str(p) for p in signers)}",
            gates=["approval"],
            hint="a key counts only once a reviewed change adds it to the allowed_signers file",
        )
    mine = [n for n in names if n in allowed]
    principal = rel.actor if rel.actor in mine else (mine or names)[0]
    signed = claim(principal)
    signature = signing.sign(key, signed.text())
    return principal, {"plan": signed.plan, "plan_sha256": signed.plan_sha256, "approver": principal}, signature


@records("release reject", version_arg="version")
def reject(opts: RunOptions, version: str, reason: str) -> Rejection:
    """Mark `version` bad everywhere: it can no longer be deployed, promoted or approved."""
    if not reason or not reason.strip():
        raise ConfigError("rejecting a version needs --reason", hint='e.g. --reason "INC-42: corrupts carts"')
    rel = open_release(opts)
    earlier = rel.ledger.rejected(version)
    if earlier is None:
        _record(rel, [L.event(L.REJECT, actor=rel.actor, at=rel.now, stage=None, version=version, reason=reason)])
    running = [s for s in rel.stages.order if (c := rel.ledger.current(s)) is not None and c.version == version]
    return {"version": version, "already_rejected": earlier is not None, "running_in": running, "reason": reason}


@records("release rollback", version_arg="to_version")
def rollback(
    opts: RunOptions,
    *,
    to_version: str | None = None,
    reason: str | None = None,
    confirm: Confirm | None = None,
    observer: ApplyObserver | None = None,
    on_plan: OnPlan | None = None,
    interrupt: Interrupt | None = None,
) -> Outcome:
    """Release rollback: re-deploy the previous good version of `opts.stage` (or `to_version`, which ran there)."""
    rel = open_release(opts)
    stage = rel.stages.get(rel.plan, _need_stage(opts.stage))
    cur = rel.ledger.current(stage.name)
    if cur is None:
        raise ConfigError(f"nothing has been deployed to {stage.name} yet; there is nothing to roll back")
    if to_version is None:
        target = rel.ledger.previous_good(stage.name)
        if target is None:
            raise ConfigError(
                f"{stage.name} has no earlier good version than {cur.version} to roll back to",
                hint="`cloudorch release history PLAN --stage " + stage.name + "` shows what ran there",
            )
    else:
        target = to_version
        if target not in rel.ledger.versions(stage.name):
            raise ConfigError(
                f"{target} never ran in {stage.name}; a rollback goes to a version that did",
                hint="versions that ran there: " + (", ".join(rel.ledger.versions(stage.name)) or "none"),
            )
        _refuse_rejected(rel, target, "be rolled back to")
    if target == cur.version:
        raise ConfigError(f"{stage.name} already runs {target}")
    out = Outcome("rollback", stage.name, target, previous=cur.version)
    why = reason or f"rollback from {cur.version}"
    result = _rollback_to(rel, stage, target, cur.version, why, Steer(confirm, observer, on_plan, interrupt))
    if result is None:
        out.declined = True
        return out
    out.result, out.applied, out.denied = result, True, result.denied
    return out


def status(opts: RunOptions) -> ReleaseStatus:
    """Per stage: the version running, since when, and the gates of the next promotion out of it.

    Gates that read only the ledger and the clock (approval, soak, window) are evaluated; policy
    and health gates need a plan or a cloud call and are shown as checked at promotion.
    """
    rel = open_release(opts)
    out: list[StageStatus] = []
    for name in rel.stages.order:
        stage = rel.stages.by_name[name]
        cur = rel.ledger.current(name)
        entry: StageStatus = {
            "stage": name,
            "needs": list(stage.needs),
            "version": cur.version if cur else None,
            "since": iso(cur.since) if cur else None,
            "rejected": bool(cur and rel.ledger.rejected(cur.version)),
            "history": rel.ledger.versions(name)[-5:],
            "next": [],
        }
        for nxt_name in rel.stages.next_of(name):
            nxt = rel.stages.by_name[nxt_name]
            candidate = pick_version(rel, nxt) if nxt.needs and nxt.needs[0] == name else (cur.version if cur else None)
            promo: NextPromotion = {"stage": nxt_name, "version": candidate, "gates": [], "pending_approvals": None}
            if candidate is not None:
                inp = _gate_inputs(rel, nxt, candidate)
                for gate in nxt.gates:
                    if gate.kind in ("approval", "soak", "window"):
                        verdict = evaluate([gate], inp)[0]
                        promo["gates"].append(GateStatus(**verdict.to_json()))  # type: ignore[typeddict-item]
                    else:
                        promo["gates"].append({"gate": gate.name, "passed": None, "detail": "checked at promotion"})
                    if gate.kind == "approval":
                        spec: ApprovalSpec = gate.spec
                        got = list(verdict.data.get("approved_by", []))
                        promo["pending_approvals"] = {
                            "needed": spec.min,
                            "approved_by": got,
                            "waiting_for": [a for a in spec.allowed if a not in got] if len(got) < spec.min else [],
                        }
            entry["next"].append(promo)
        out.append(entry)
    return {"plan": str(rel.plan.path), "now": iso(rel.now), "stages": out}


def _no_provider(key: str) -> Any:  # pragma: no cover - status never runs provider checks
    raise ConfigError(f"status does not call provider {key}")


def history(opts: RunOptions, stage: str | None = None) -> list[ReleaseEvent]:
    """Every release event, oldest first; only one stage's (and version-wide rejections) with `stage`."""
    rel = open_release(opts)
    if stage is not None:
        rel.stages.get(rel.plan, stage)
    return [
        ReleaseEvent(**L.describe(e))  # type: ignore[typeddict-item]  # the ledger's own shape, checked in tests
        for e in rel.ledger.events
        if stage is None or e.detail.get("stage") in (stage, None)
    ]
