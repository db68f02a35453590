"""State operations: read state without the lock (list, show, output, history), surgery under the
lock (rm, mv, import), migrate and rekey every document of a plan, and force-unlock.

Reads never fold a killed run's journal (`waiting_run` says one waits); surgery refuses while one
waits, since the journal's operations would be folded over the edited state later."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cloudorch.actor import actor_name
from cloudorch.errors import ConfigError, StateError
from cloudorch.run.options import RunOptions
from cloudorch.run.session import (
    WaitingRun,
    backend_for,
    load,
    plan_key,
    providers_for,
    read_plan,
    recover_command,
    state_key,
    waiting_in,
)

if TYPE_CHECKING:
    from cloudorch.planfile import PlanSpec
    from cloudorch.state.backends.base import HistoryEntry, StateBackend
    from cloudorch.state.migrate import CopiedDocument, Rekeyed
    from cloudorch.state.model import DeposedObject, ResourceRecord, State


def read_state(opts: RunOptions) -> tuple[PlanSpec, State | None, StateBackend]:
    """State without taking the lock (list, show, output, history)."""

    plan = read_plan(opts)
    backend = backend_for(plan, opts)
    return plan, backend.read(), backend


def waiting_run(opts: RunOptions) -> WaitingRun | None:
    """The unfinished run whose journal waits beside state (a killed apply), unfolded; writes nothing."""
    plan, _, backend = read_state(opts)
    return waiting_in(backend, plan, opts)


def refuse_waiting(backend: StateBackend, plan: PlanSpec, opts: RunOptions) -> None:
    """State surgery under the lock: refused while a killed run's journal waits to be folded."""
    from cloudorch.state.journal import pending

    run = pending(backend)
    if run is not None and not run.ended_cleanly:
        raise StateError(
            f"state {backend.describe()} cannot be edited while an unfinished run waits: {run.describe()}",
            hint=f"run `{recover_command(plan, opts)}` first to fold it into state, then edit state; "
            "nothing was changed",
        )


def outputs(opts: RunOptions, *, reveal: str | None = None) -> dict[str, dict[str, object]]:
    """The plan's outputs as the last apply recorded them: name -> {value, sensitive}.

    State keeps a sensitive output as a hash only; `reveal` names one whose value is computed
    again from the plan file, its variables and state (`cloudorch output NAME --raw`)."""
    plan, state, _ = read_state(opts)
    got: dict[str, dict[str, object]] = dict(state.outputs) if state else {}
    if state is not None and reveal is not None and reveal in got and got[reveal].get("sensitive"):
        from cloudorch.run.apply import compute_outputs
        from cloudorch.state.model import is_sensitive_marker

        if reveal in plan.outputs and not plan.outputs[reveal].sensitive:
            return got
        again = compute_outputs(plan, state, reveal=reveal).get(reveal)
        if again is None or again["value"] is None or _holds_marker(again["value"], is_sensitive_marker):
            raise StateError(
                f"output {reveal!r} cannot be shown: it reads a sensitive property, which state keeps only as a hash",
                hint="build the output from a sensitive variable instead, passed with --var",
            )
        if again["value"] != got[reveal].get("value") and is_sensitive_marker(got[reveal].get("value")):
            from cloudorch.state.model import sensitive_marker

            if sensitive_marker(again["value"]) != got[reveal]["value"]:
                raise StateError(
                    f"output {reveal!r} differs from what the last apply recorded (its variables changed)",
                    hint="pass the variables the last apply used, or apply again",
                )
        got[reveal] = again
    return got


def _holds_marker(value: object, is_marker: Callable[[object], bool]) -> bool:
    if is_marker(value):
        return True
    if isinstance(value, dict):
        return any(_holds_marker(v, is_marker) for v in value.values())
    if isinstance(value, list):
        return any(_holds_marker(v, is_marker) for v in value)
    return False


def state_list(opts: RunOptions) -> list[ResourceRecord]:
    _, state, _ = read_state(opts)
    return sorted(state.resources.values(), key=lambda r: r.address) if state else []


def state_deposed(opts: RunOptions) -> list[DeposedObject]:
    """Old objects that replacements superseded and have not deleted yet (the next apply does)."""
    _, state, _ = read_state(opts)
    return sorted(state.deposed_objects(), key=lambda d: (d.address, d.key)) if state else []


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
        refuse_waiting(backend, plan, opts)
        state = backend.read() or State(plan_name=plan_key(plan), state_key=plan_key(plan))
        what = fn(state)
        state.events.append(StateEvent(kind=kind, actor=actor_name(), detail={"what": what}))
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
    providers = providers_for(loaded, opts)
    backend = backend_for(loaded.plan, opts)
    try:
        with backend.lock(LockInfo.new(opts.command), opts.lock_timeout):
            refuse_waiting(backend, loaded.plan, opts)
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
                StateEvent(kind="import", actor=actor_name(), detail={"address": address, "id": cloud_id})
            )
            backend.write_next(state)
            return rec
    finally:
        providers.close()


def state_history(opts: RunOptions) -> list[HistoryEntry]:
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
    documents: list[CopiedDocument]
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
    copied: list[CopiedDocument] = []
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


def state_rekey(
    opts: RunOptions,
    old_key_envs: Sequence[str] = (),
    old_key_files: Sequence[Path] = (),
    *,
    purge_remote_history: bool = False,
) -> list[Rekeyed]:
    """Re-encrypt each state document of the plan with the backend's configured key, and its
    history (local versions re-sealed; remote object versions deleted only when asked)."""
    from cloudorch.state.crypto import StateKey
    from cloudorch.state.migrate import rekey_document

    plan = read_plan(opts)
    env = dict(os.environ if opts.env is None else opts.env)
    old = [StateKey.from_env(n, env) for n in old_key_envs] + [StateKey.from_file(p) for p in old_key_files]
    done: list[Rekeyed] = []
    for key in _plan_documents(plan, opts):
        backend = backend_for(plan, opts, key=key)
        got = rekey_document(
            backend,
            key=key,
            command=opts.command,
            lock_timeout=opts.lock_timeout,
            actor=actor_name(),
            old_keys=old,
            purge_remote_history=purge_remote_history,
        )
        if got is not None:
            done.append(got)
    if not done:
        raise StateError(f"nothing to rekey: {plan.path} has no state yet", hint="apply the plan first")
    return done


def force_unlock(opts: RunOptions, lock_id: str) -> None:
    _, _, backend = read_state(opts)
    backend.force_unlock(lock_id)


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


