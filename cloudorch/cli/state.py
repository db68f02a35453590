"""State commands: `state list|show|rm|mv|import|history|migrate|rekey`, `output` and `force-unlock`.

They read state without the lock, or edit it under the lock; `migrate` moves every document of
the plan to another backend and `rekey` re-encrypts them. Each calls one `cloudorch.api` function.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cloudorch.cli.common import app, state_app
from cloudorch.cli.options import (
    EXITS,
    BackendOpt,
    JsonOpt,
    SandboxOpt,
    StageOpt,
    StateDirOpt,
    epilog,
    plan_command,
)
from cloudorch.cli.output import Output
from cloudorch.errors import ConfigError

if TYPE_CHECKING:
    from cloudorch.api import RunOptions

def _waiting(opts: RunOptions) -> dict[str, object] | None:
    """Say on stderr that a killed run's journal waits unfolded (state is shown as stored); its JSON."""
    from cloudorch import api

    waiting = api.waiting_run(opts)
    if waiting is None:
        return None
    opts.say(waiting.message())
    return waiting.to_json()


AddressArg = Annotated[str, typer.Argument(metavar="ADDRESS", help="A resource address, e.g. site or logs[eu].")]
READ = f"0 done, {EXITS}"


@plan_command(
    app,
    "output",
    uses="vars state stage sandbox json",
    summary="Show the outputs the last apply recorded.",
    example="cloudorch output plans/quickstart.yaml\ncloudorch output plans/quickstart.yaml note_path --json",
    exits=f"0 shown, 1 no such output, {EXITS}",
)
def output(
    opts: RunOptions,
    out: Output,
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="One output; all when omitted.")] = None,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="Show output NAME's value even if it is sensitive (computed again from the plan file, "
            "its variables and state: state keeps sensitive values as hashes only).",
        ),
    ] = False,
) -> int:
    """Show the plan's outputs, as recorded in state by the last apply; sensitive ones masked."""
    from cloudorch import api
    from cloudorch.api import SENSITIVE

    _waiting(opts)
    if raw and name is None:
        raise ConfigError("--raw shows one output: name it", hint="cloudorch output PLAN_FILE NAME --raw")
    values = api.outputs(opts, reveal=name if raw else None)
    if name is not None:
        if name not in values:
            raise ConfigError(
                f"no output named {name!r} in state",
                hint="outputs: " + (", ".join(sorted(values)) or "none (apply the plan first)"),
            )
        v = SENSITIVE if values[name].get("sensitive") and not raw else values[name].get("value")
        if out.json_mode:
            out.document(v, reveal=raw)
        else:
            out.plain(v if isinstance(v, str) else json.dumps(v), reveal=raw)
        return 0
    if out.json_mode:
        out.document({k: SENSITIVE if v.get("sensitive") else v.get("value") for k, v in values.items()})
    else:
        from cloudorch.cli.render import render_outputs

        if not values:
            out.print("No outputs in state (apply the plan first).")
        render_outputs(out, values)
    return 0


@app.command(
    "force-unlock",
    short_help="Remove a state lock whose holder is gone.",
    epilog=epilog(
        "cloudorch force-unlock 3f2a9c plans/quickstart.yaml\ncloudorch force-unlock 3f2a9c   # any local lock",
        f"0 removed, 1 no such lock, {EXITS}",
    ),
)
def force_unlock(
    lock_id: Annotated[
        str, typer.Argument(metavar="LOCK_ID", help="The lock id printed by the command that was refused.")
    ],
    plan_file: Annotated[
        Path | None, typer.Argument(metavar="PLAN_FILE", help="The plan file whose state is locked.")
    ] = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    sandbox: SandboxOpt = False,
    stage: StageOpt = None,
    json_: JsonOpt = False,
) -> int:
    """Remove a state lock left by a process that will not come back. Check it is really gone first."""
    from cloudorch import api
    from cloudorch.cli.options import build_options

    out = Output.configure(json_mode=json_)
    if plan_file is None:
        api.force_unlock_any(Path(state_dir or ".cloudorch"), lock_id)
    else:
        values = {"plan_file": plan_file, "state_dir": state_dir, "backend": backend, "sandbox": sandbox,
                  "stage": stage}
        api.force_unlock(build_options(values, command="force-unlock", out=out), lock_id)
    if json_:
        out.document({"unlocked": lock_id})
    else:
        out.print(f"Lock {lock_id} removed.")
    return 0


@plan_command(
    state_app,
    "list",
    command="state list",
    uses="vars state stage sandbox json",
    summary="List the addresses in state.",
    example="cloudorch state list plans/quickstart.yaml",
    exits=READ,
)
def state_list(opts: RunOptions, out: Output) -> int:
    """List the addresses in state, with type and cloud id; a tainted object (its create failed half-way)
    and a deposed one (the old object of a replacement, not deleted yet) say so."""
    from cloudorch import api

    waiting = _waiting(opts)
    records = api.state_list(opts)
    deposed = api.state_deposed(opts)
    if out.json_mode:
        doc: dict[str, object] = {
            "resources": [
                {"address": r.address, "type": r.type, "id": r.id, "provider": r.provider}
                | ({"tainted": True} if r.tainted else {})
                for r in records
            ]
        }
        if deposed:
            doc["deposed"] = [
                {"address": d.address, "key": d.key, "type": d.type, "id": d.id, "provider": d.provider}
                for d in deposed
            ]
        if waiting is not None:
            doc["pending_run"] = waiting
        out.document(doc)
    else:
        for r in records:
            out.plain(f"{r.address}\t{r.type}\t{r.id}" + ("\t(tainted)" if r.tainted else ""))
        for d in deposed:
            out.plain(f"{d.address}\t{d.type}\t{d.id}\t(deposed {d.key})")
    return 0


@plan_command(
    state_app,
    "show",
    command="state show",
    uses="vars state stage sandbox json",
    summary="Show one resource as state recorded it.",
    example="cloudorch state show plans/quickstart.yaml note",
    exits=f"0 shown, 1 not in state, {EXITS}",
)
def state_show(opts: RunOptions, out: Output, address: AddressArg) -> int:
    """Show one resource as state recorded it (sensitive values are stored as hashes only)."""
    from cloudorch import api

    _waiting(opts)
    doc = api.state_show(opts, address).model_dump(mode="json")
    if out.json_mode:
        out.document(doc)
    else:
        out.plain(json.dumps(doc, indent=2))
    return 0


@plan_command(
    state_app,
    "rm",
    command="state rm",
    uses="vars state stage sandbox lock json",
    summary="Forget a resource; the cloud object stays.",
    example="cloudorch state rm plans/quickstart.yaml note",
    exits=f"0 removed, 1 not in state, {EXITS}",
)
def state_rm(opts: RunOptions, out: Output, address: AddressArg) -> int:
    """Forget a resource without touching the cloud object."""
    from cloudorch import api

    what = api.state_rm(opts, address)
    out.document({"ok": True, "message": what}) if out.json_mode else out.plain(what)
    return 0


@plan_command(
    state_app,
    "mv",
    command="state mv",
    uses="vars state stage sandbox lock json",
    summary="Rename an address in state.",
    example="cloudorch state mv plans/quickstart.yaml note readme",
    exits=f"0 moved, 1 not in state or the new address is taken, {EXITS}",
)
def state_mv(
    opts: RunOptions,
    out: Output,
    old: Annotated[str, typer.Argument(metavar="OLD", help="The address in state now.")],
    new: Annotated[str, typer.Argument(metavar="NEW", help="The address the plan file uses now.")],
) -> int:
    """Rename an address in state (after renaming it in the plan file), so it is not replaced."""
    from cloudorch import api

    what = api.state_mv(opts, old, new)
    out.document({"ok": True, "message": what}) if out.json_mode else out.plain(what)
    return 0


@plan_command(
    state_app,
    "import",
    command="state import",
    uses="vars state stage sandbox lock json",
    summary="Adopt an existing cloud object into state.",
    example="cloudorch state import plans/aws-webapp.yaml site shop-prod-site",
    exits=f"0 imported, 1 not in the plan, already in state or not found, {EXITS}",
)
def state_import(
    opts: RunOptions,
    out: Output,
    address: AddressArg,
    cloud_id: Annotated[str, typer.Argument(metavar="ID", help="The object's id in its cloud.")],
) -> int:
    """Adopt an existing cloud object into state under an address the plan declares."""
    from cloudorch import api

    rec = api.state_import(opts, address, cloud_id)
    if out.json_mode:
        out.document(rec.model_dump(mode="json"))
    else:
        out.print(f"Imported {address} (id {rec.id}). Run `cloudorch plan` to see how it differs from the plan file.")
    return 0


@plan_command(
    state_app,
    "history",
    command="state history",
    uses="vars state stage sandbox json",
    summary="List the kept versions of state, newest first.",
    example="cloudorch state history plans/quickstart.yaml",
    exits=READ,
)
def state_history(opts: RunOptions, out: Output) -> int:
    """List the kept versions of state (serials), newest first; `rollback --to SERIAL` reverts to one."""
    from cloudorch import api

    waiting = _waiting(opts)
    entries = api.state_history(opts)
    if out.json_mode:
        out.document({"history": [asdict(e) for e in entries]} | ({"pending_run": waiting} if waiting else {}))
        return 0
    for e in entries:
        cur = " (current)" if getattr(e, "current", False) else ""
        out.plain(f"serial {e.serial}\t{e.written_at}\t{e.resource_count} resource(s){cur}")
    return 0


@plan_command(
    state_app,
    "migrate",
    command="state migrate",
    uses="vars state stage lock json",
    summary="Move state and its history to another backend.",
    example="cloudorch state migrate plans/quickstart.yaml --to s3://team-state/quickstart",
    exits=f"0 copied and verified, 1 nothing to migrate or the target holds state, {EXITS}",
)
def state_migrate(
    opts: RunOptions,
    out: Output,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="URL",
            help="Where state moves: s3://bucket/prefix, gs://bucket/prefix, azblob://account/container/prefix "
            "or file://path (must hold no state yet).",
            show_default=False,
        ),
    ],
) -> int:
    """Copy the plan's state and its history to another backend under lock, verify it, and switch the plan to it."""
    from cloudorch import api

    result = api.state_migrate(opts, to)
    if out.json_mode:
        out.document(
            {
                "target": result.target,
                "switched": result.switched,
                "note": result.switch_note,
                "documents": [asdict(d) for d in result.documents],
            }
        )
        return 0
    for doc in result.documents:
        serials = ", ".join(map(str, doc.serials))
        out.plain(f"Copied state {doc.key}: serials {serials} -> {doc.target} (verified {doc.checksum[:19]}...)")
        if doc.skipped:
            out.plain(f"  left out serials {', '.join(map(str, doc.skipped))} (another lineage)")
    out.plain(result.switch_note + ("." if result.switched else ""))
    out.plain("The source was left as it was; remove it once everyone uses the new backend.")
    return 0


@plan_command(
    state_app,
    "rekey",
    command="state rekey",
    uses="vars state stage lock json",
    summary="Re-encrypt state with the backend's current key.",
    example="cloudorch state rekey plans/shop.yaml --old-key-env OLD_STATE_KEY",
    exits=f"0 re-encrypted (or already), 1 nothing to rekey or a key is wrong, {EXITS}",
)
def state_rekey(
    opts: RunOptions,
    out: Output,
    old_key_env: Annotated[
        list[str] | None,
        typer.Option(
            "--old-key-env",
            metavar="VARIABLE",
            help="Environment variable holding the key the state is encrypted with now. Repeatable.",
            show_default=False,
        ),
    ] = None,
    old_key_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--old-key-file",
            metavar="FILE",
            help="File holding the key the state is encrypted with now. Repeatable.",
            show_default=False,
        ),
    ] = None,
    purge_remote_history: Annotated[
        bool,
        typer.Option(
            "--purge-remote-history",
            help="Delete the remote state's older object versions not sealed with the new key "
            "(destructive: they leave `state history`). Local history is always re-sealed.",
        ),
    ] = False,
) -> int:
    """Re-encrypt the current state with the key in the plan's backend block (key rotation), and
    its history: local history versions are re-sealed with the new key; a remote store's older
    object versions are listed as remaining unless --purge-remote-history deletes them."""
    from cloudorch import api

    done = api.state_rekey(
        opts,
        old_key_envs=old_key_env or [],
        old_key_files=old_key_file or [],
        purge_remote_history=purge_remote_history,
    )
    if out.json_mode:
        out.document({"rekeyed": [asdict(d) for d in done]})
        return 0
    for d in done:
        if not d.changed:
            out.plain(f"state {d.key} is already encrypted with key {d.to_key}")
        else:
            was = f"key {d.from_key}" if d.from_key else "plaintext"
            out.plain(f"state {d.key}: re-encrypted from {was} to key {d.to_key} as serial {d.serial}")
        if d.history_resealed:
            out.plain(f"  history re-sealed with key {d.to_key}: serials {', '.join(map(str, d.history_resealed))}")
        if d.history_removed:
            out.plain(f"  history removed: {', '.join(d.history_removed)}")
        if d.history_remaining:
            out.plain(f"  history left readable without key {d.to_key} ({len(d.history_remaining)}):")
            for version, why in d.history_remaining.items():
                out.plain(f"    {version}: {why}")
        else:
            out.plain(f"  no older version remains readable without key {d.to_key}")
    return 0
