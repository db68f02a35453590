"""backend commands: `state migrate` and `state rekey` (registered on the shared state app by
import from `app.py`). They parse flags, call `cloudorch.api`, and render; nothing else."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from cloudorch.cli.common import (
    BackendOpt,
    JsonOpt,
    LockTimeoutOpt,
    PlanArg,
    StageOpt,
    StateDirOpt,
    VarFileOpt,
    VarOpt,
    _options,
    _out,
    state_app,
)


@state_app.command("migrate")
def state_migrate(
    plan_file: PlanArg,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="Where state moves: s3://bucket/prefix, gs://bucket/prefix, azblob://account/container/prefix "
            "or file://path (must hold no state yet).",
            show_default=False,
        ),
    ],
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    stage: StageOpt = None,
    lock_timeout: LockTimeoutOpt = 0.0,
    json_: JsonOpt = False,
) -> int:
    """Copy the plan's state and its history to another backend under lock, verify it, and switch the plan to it."""
    from cloudorch import api

    out = _out(json_)
    opts = _options(
        plan_file,
        var=var,
        var_file=var_file,
        state_dir=state_dir,
        backend=backend,
        stage=stage,
        lock_timeout=lock_timeout,
        command="state migrate",
    )
    result = api.state_migrate(opts, to)
    if json_:
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


@state_app.command("rekey")
def state_rekey(
    plan_file: PlanArg,
    old_key_env: Annotated[
        list[str] | None,
        typer.Option("--old-key-env", help="Environment variable holding the key the state is encrypted with now."),
    ] = None,
    old_key_file: Annotated[
        list[Path] | None, typer.Option("--old-key-file", help="File holding the key the state is encrypted with now.")
    ] = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    stage: StageOpt = None,
    lock_timeout: LockTimeoutOpt = 0.0,
    json_: JsonOpt = False,
) -> int:
    """Re-encrypt the current state with the key in the plan's backend block (key rotation)."""
    from cloudorch import api

    out = _out(json_)
    opts = _options(
        plan_file,
        var=var,
        var_file=var_file,
        state_dir=state_dir,
        backend=backend,
        stage=stage,
        lock_timeout=lock_timeout,
        command="state rekey",
    )
    done = api.state_rekey(opts, old_key_envs=old_key_env or [], old_key_files=old_key_file or [])
    if json_:
        out.document({"rekeyed": [asdict(d) for d in done]})
        return 0
    for d in done:
        if not d.changed:
            out.plain(f"state {d.key} is already encrypted with key {d.to_key}; nothing to do")
        else:
            was = f"key {d.from_key}" if d.from_key else "plaintext"
            out.plain(f"state {d.key}: re-encrypted from {was} to key {d.to_key} as serial {d.serial}")
    out.plain("Older versions keep their key: list it under backend.encryption.old_keys to read them.")
    return 0
