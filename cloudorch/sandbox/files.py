"""The sandbox's own files, written without following symlinks.

A cloned repository can carry a symlink at `.cloudorch/sandbox/moto.log` or `.lock`; opening
such a path normally writes through the link into whatever it names. Every file here is opened
with O_NOFOLLOW, new files with O_EXCL (a planted link is unlinked, never written through), and
permissions are set on the open descriptor so no other user can read them in between.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from cloudorch.errors import CloudorchError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class SandboxFileError(CloudorchError):
    """A sandbox file or folder is a symlink or otherwise unusable."""


def private_dir(directory: Path) -> Path:
    """Create `directory` (and its parents) and make it 0700; refuse it when it is a symlink."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    st = os.lstat(directory)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise SandboxFileError(
            f"{directory}: the sandbox folder is a symlink or not a folder; cloudorch does not follow it",
            hint=f"remove {directory} (rm {directory}) and run the command again",
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(directory, 0o700)
    return directory


def open_lock(path: Path) -> int:
    """A descriptor on the lock file, created 0600 if missing; a symlink there is an error.

    The lock is never replaced (another `up` may hold the existing one), so a link is refused.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o600)
    except OSError as exc:
        raise SandboxFileError(
            f"{path}: cannot open the sandbox lock ({exc.strerror}); a symlink there is not followed",
            hint=f"remove {path} and run the command again",
        ) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SandboxFileError(f"{path}: the sandbox lock is not a regular file", hint=f"remove {path}")
    os.fchmod(fd, 0o600)
    return fd


def create_fresh(path: Path, mode: int = 0o600) -> int:
    """A new, empty file at `path` for writing: whatever was there (a file, a planted link) is
    unlinked first, and the file is created with O_EXCL so nothing is written through a link."""
    with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(path) and not os.path.islink(path):
            raise SandboxFileError(f"{path}: expected a file, found a folder", hint=f"remove {path}")
        os.unlink(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode)
    except FileExistsError as exc:
        # someone planted a new entry between the unlink and the open: refuse rather than follow
        raise SandboxFileError(f"{path}: appeared while being replaced", hint="run the command again") from exc
    os.fchmod(fd, mode)
    return fd


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data`: written to an O_EXCL temp name beside it, then renamed over it
    (rename replaces a link at `path` itself, it never writes into the link's target)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_nofollow(path: Path) -> bytes:
    """The bytes of `path`; a symlink there raises OSError (ELOOP) instead of being read through."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()
