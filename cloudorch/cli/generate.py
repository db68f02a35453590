"""`plan --generate-config-out FILE`: write the resource blocks the plan read for import targets.

The file is created, never overwritten (a user's edits to an earlier one are not lost)."""

from __future__ import annotations

import os
from pathlib import Path

from cloudorch.cli.output import Output
from cloudorch.errors import ConfigError


def refuse_existing(path: Path) -> None:
    if path.exists() or path.is_symlink():
        raise ConfigError(
            f"--generate-config-out {path}: the file exists; cloudorch never overwrites it",
            hint="name a new file, or move the old one away after merging what you need from it",
        )


def write_generated(out: Output, path: Path, text: str | None) -> None:
    if text is None:
        out.err.print("No import target lacks a resource block: nothing to generate.")
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except FileExistsError as exc:
        raise ConfigError(f"--generate-config-out {path}: the file exists; cloudorch never overwrites it") from exc
    except OSError as exc:
        raise ConfigError(f"--generate-config-out {path}: cannot create it: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    out.err.print(
        f"Wrote resource blocks for the import targets without one to {path}: "
        "merge them into the plan file's `resources:` and plan again."
    )
