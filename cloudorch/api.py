"""The library facade: what the CLI, the tests and other programs call.

Each function takes a `RunOptions` (and the command's own arguments), runs one operation of
`cloudorch.run`, and returns a typed value. It never prints, asks or handles signals; to stop an
apply, pass an `Interrupt` and fire it. Heavy modules are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cloudorch.run.options import DEFAULT_PARALLELISM as DEFAULT_PARALLELISM
from cloudorch.run.options import Interrupt as Interrupt
from cloudorch.run.options import RunOptions as RunOptions

if TYPE_CHECKING:
    from cloudorch.changes import ChangeSet
    from cloudorch.engine.applier import ApplyObserver
    from cloudorch.engine.drift import DriftReport
    from cloudorch.policy.model import RegoTestResult
    from cloudorch.release.gates import Verdict
    from cloudorch.release.promotion import Approval, Outcome, Rejection, ReleaseEvent, ReleaseStatus
    from cloudorch.run.apply import ApplyResult, RecoverOutcome
    from cloudorch.run.info import ProviderInfo
    from cloudorch.run.plan import Planned, PolicyVerdict
    from cloudorch.run.session import Loaded
    from cloudorch.run.state_ops import MigrateResult
    from cloudorch.state.backends.base import HistoryEntry
    from cloudorch.state.migrate import Rekeyed
    from cloudorch.state.model import ResourceRecord

Confirm = Callable[["ChangeSet"], bool]
OnPlan = Callable[["ChangeSet"], None]

# --------------------------------------------------------------------------- plan files


def validate(opts: RunOptions) -> Loaded:
    """Load, bind and type-check a plan file, build its graph and check its backend block."""
    from cloudorch.run.session import validate as run

    return run(opts)


def plan(opts: RunOptions) -> ChangeSet:
    """The changeset `apply` would carry out, policy results included."""
    return judged_plan(opts).changeset


def judged_plan(opts: RunOptions) -> Planned:
    """The changeset and the policies' verdict on it (None when the plan has no policies)."""
    from cloudorch.run.plan import plan as run

    return run(opts)


# --------------------------------------------------------------------------- changing the world


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
    """Plan (or take a saved plan), confirm, and apply. None: the user declined.

    A policy that blocks on a value known only mid-apply is `result.denied` (state is saved first).
    `warn_gates`: notify when the stage has release gates, which only `release promote` evaluates.
    """
    from cloudorch.run.apply import apply as run

    return run(
        opts, saved=saved, confirm=confirm, observer=observer, interrupt=interrupt, on_plan=on_plan,
        warn_gates=warn_gates,
    )


def destroy(
    opts: RunOptions,
    *,
    confirm: Confirm | None = None,
    observer: ApplyObserver | None = None,
    interrupt: Interrupt | None = None,
    on_plan: OnPlan | None = None,
) -> ApplyResult | None:
    """Destroy everything the plan's state holds, in reverse dependency order. None: declined."""
    from cloudorch.run.apply import destroy as run

    return run(opts, confirm=confirm, observer=observer, interrupt=interrupt, on_plan=on_plan)


def recover(
    opts: RunOptions, *, observer: ApplyObserver | None = None, interrupt: Interrupt | None = None
) -> RecoverOutcome:
    """Fold a killed apply's journal into state and finish an undo a crash cut short."""
    from cloudorch.run.apply import recover as run

    return run(opts, observer=observer, interrupt=interrupt)


def revert(
    opts: RunOptions,
    *,
    to: int | None = None,
    steps: int | None = None,
    confirm: Confirm | None = None,
    observer: ApplyObserver | None = None,
    interrupt: Interrupt | None = None,
    on_plan: OnPlan | None = None,
) -> ApplyResult | None:
    """Revert the cloud to the resources of an earlier state serial (`--to N` or `--steps K`)."""
    from cloudorch.run.revert import revert as run

    return run(opts, to=to, steps=steps, confirm=confirm, observer=observer, interrupt=interrupt, on_plan=on_plan)


def drift(opts: RunOptions) -> DriftReport:
    """How the cloud differs from state and plan (reads only), with policies judged on the live state."""
    from cloudorch.run.drift import drift as run

    return run(opts)


# --------------------------------------------------------------------------- state


def outputs(opts: RunOptions) -> dict[str, dict[str, object]]:
    """The plan's outputs as the last apply recorded them: name -> {value, sensitive}."""
    from cloudorch.run.state_ops import outputs as run

    return run(opts)


def state_list(opts: RunOptions) -> list[ResourceRecord]:
    from cloudorch.run.state_ops import state_list as run

    return run(opts)


def state_show(opts: RunOptions, address: str) -> ResourceRecord:
    from cloudorch.run.state_ops import state_show as run

    return run(opts, address)


def state_rm(opts: RunOptions, address: str) -> str:
    from cloudorch.run.state_ops import state_rm as run

    return run(opts, address)


def state_mv(opts: RunOptions, old: str, new: str) -> str:
    from cloudorch.run.state_ops import state_mv as run

    return run(opts, old, new)


def state_import(opts: RunOptions, address: str, cloud_id: str) -> ResourceRecord:
    from cloudorch.run.state_ops import state_import as run

    return run(opts, address, cloud_id)


def state_history(opts: RunOptions) -> list[HistoryEntry]:
    from cloudorch.run.state_ops import state_history as run

    return run(opts)


def state_migrate(opts: RunOptions, to_url: str) -> MigrateResult:
    from cloudorch.run.state_ops import state_migrate as run

    return run(opts, to_url)


def state_rekey(
    opts: RunOptions, old_key_envs: Sequence[str] = (), old_key_files: Sequence[Path] = ()
) -> list[Rekeyed]:
    from cloudorch.run.state_ops import state_rekey as run

    return run(opts, old_key_envs, old_key_files)


def force_unlock(opts: RunOptions, lock_id: str) -> None:
    from cloudorch.run.state_ops import force_unlock as run

    run(opts, lock_id)


def force_unlock_any(state_root: Path, lock_id: str) -> None:
    from cloudorch.run.state_ops import force_unlock_any as run

    run(state_root, lock_id)


# --------------------------------------------------------------------------- policy and what is installed


def policy_check(opts: RunOptions) -> PolicyVerdict:
    from cloudorch.run.policy import policy_check as run

    return run(opts)


def policy_test(path: Path) -> list[RegoTestResult]:
    from cloudorch.run.policy import policy_test as run

    return run(path)


def schema() -> dict[str, object]:
    from cloudorch.run.info import schema as run

    return run()


def providers_info() -> list[ProviderInfo]:
    from cloudorch.run.info import providers_info as run

    return run()


# --------------------------------------------------------------------------- releases


def release_deploy(
    opts: RunOptions,
    version: str,
    *,
    confirm: Confirm | None = None,
    observer: ApplyObserver | None = None,
    on_plan: OnPlan | None = None,
    interrupt: Interrupt | None = None,
) -> Outcome:
    """Apply `version` to `opts.stage` (any version into a first stage)."""
    from cloudorch.release.promotion import deploy

    return deploy(opts, version, confirm=confirm, observer=observer, on_plan=on_plan, interrupt=interrupt)


def release_promote(
    opts: RunOptions,
    to: str,
    *,
    version: str | None = None,
    dry_run: bool = False,
    overrides: dict[str, str] | None = None,
    confirm: Confirm | None = None,
    observer: ApplyObserver | None = None,
    on_plan: OnPlan | None = None,
    on_verdicts: Callable[[str, list[Verdict]], None] | None = None,
    interrupt: Interrupt | None = None,
) -> Outcome:
    """Evaluate stage `to`'s gates for a version and apply it there only if all pass (one session)."""
    from cloudorch.release.promotion import promote

    return promote(
        opts,
        to,
        version=version,
        dry_run=dry_run,
        overrides=overrides,
        confirm=confirm,
        observer=observer,
        on_plan=on_plan,
        on_verdicts=on_verdicts,
        interrupt=interrupt,
    )


def release_rollback(
    opts: RunOptions,
    *,
    to_version: str | None = None,
    reason: str | None = None,
    confirm: Confirm | None = None,
    observer: ApplyObserver | None = None,
    on_plan: OnPlan | None = None,
    interrupt: Interrupt | None = None,
) -> Outcome:
    """Release rollback: re-deploy the previous good version of `opts.stage` (or `to_version`)."""
    from cloudorch.release.promotion import rollback

    return rollback(
        opts, to_version=to_version, reason=reason, confirm=confirm, observer=observer, on_plan=on_plan,
        interrupt=interrupt,
    )


def release_approve(opts: RunOptions, version: str, comment: str | None = None) -> Approval:
    from cloudorch.release.promotion import approve

    return approve(opts, version, comment)


def release_reject(opts: RunOptions, version: str, reason: str) -> Rejection:
    from cloudorch.release.promotion import reject

    return reject(opts, version, reason)


def release_status(opts: RunOptions) -> ReleaseStatus:
    from cloudorch.release.promotion import status

    return status(opts)


def release_history(opts: RunOptions, stage: str | None = None) -> list[ReleaseEvent]:
    from cloudorch.release.promotion import history

    return history(opts, stage)
