"""Where a module's folder comes from: a local path, or a git repository pinned in a lock file.

This module owns the `git+https://HOST/REPO.git//SUB/DIR?ref=REF` (and `git+file://`, `git+ssh://`)
source grammar, the cache of fetched commits and the lock file `cloudorch.lock` beside the plan.
It runs the user's `git` (their credentials, their config), never a git library.

A git source not yet in the lock is fetched, its ref resolved to a commit, and the commit written
to the lock; later runs check out that commit whatever the ref points at now. A source whose ref in
the plan differs from the locked one is an error until `cloudorch modules update PLAN` re-resolves
the refs (`updating()` below) and rewrites the lock.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cloudorch.errors import ConfigError, Location

LOCK_FILE = "cloudorch.lock"
_GIT_TIMEOUT = float(os.environ.get("CLOUDORCH_GIT_TIMEOUT", "300"))
UPDATE_HINT = "run `cloudorch modules update PLAN` to re-resolve module refs and rewrite the lock file"

#: set inside `updating()`: refs are re-resolved and the lock rewritten instead of read
_UPDATING: contextvars.ContextVar[bool] = contextvars.ContextVar("cloudorch_modules_updating", default=False)


@contextmanager
def updating() -> Iterator[None]:
    """Within this block, loading a plan re-resolves every git module ref and rewrites its lock."""
    token = _UPDATING.set(True)
    try:
        yield
    finally:
        _UPDATING.reset(token)


@dataclass(frozen=True)
class GitSource:
    """`git+URL//SUBDIR?ref=REF` split up; `repo` is the URL git is given."""

    repo: str
    subdir: str
    ref: str | None
    text: str

    @property
    def key(self) -> str:
        """The lock file key: the source without its ref (one pinned commit per repository folder)."""
        return f"git+{self.repo}" + (f"//{self.subdir}" if self.subdir else "")


def is_git(source: str) -> bool:
    return source.startswith("git+")


def parse_git_source(source: str, where: Location) -> GitSource:
    """Parse `git+SCHEME://HOST/PATH[//SUBDIR][?ref=REF]`; a located error when malformed."""
    rest = source[len("git+") :]
    parts = urlsplit(rest)
    if parts.scheme not in ("https", "http", "ssh", "file") or (parts.scheme != "file" and not parts.netloc):
        raise ConfigError(
            f"module source {source!r} is not a git URL cloudorch can fetch",
            location=where,
            hint="write e.g. `git+https://github.com/org/modules.git//network?ref=v1.2.0` or `git+file:///path/repo.git`",
        )
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"ref"})
    if unknown:
        raise ConfigError(
            f"module source {source!r}: unknown query parameter `{unknown[0]}`",
            location=where,
            hint="only `?ref=BRANCH|TAG|COMMIT` is understood",
        )
    refs = query.get("ref", [])
    ref = refs[0] if refs else None
    if ref is not None and (not ref or ref.startswith("-")):
        raise ConfigError(f"module source {source!r}: invalid ref {ref!r}", location=where)
    path = parts.path
    repo_path, sep, subdir = path.partition("//")
    subdir = subdir.strip("/")
    if sep and (not subdir or any(p in ("", ".", "..") for p in subdir.split("/"))):
        raise ConfigError(
            f"module source {source!r}: invalid sub-folder {subdir!r}",
            location=where,
            hint="the part after `//` is a folder inside the repository, without `..`",
        )
    repo = f"{parts.scheme}://{parts.netloc}{repo_path}"
    return GitSource(repo=repo, subdir=subdir, ref=ref, text=source)


def cache_root() -> Path:
    """`$CLOUDORCH_MODULE_CACHE`, else `$XDG_CACHE_HOME/cloudorch/modules`, else `~/.cache/...`."""
    explicit = os.environ.get("CLOUDORCH_MODULE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cloudorch" / "modules"


def _git(args: list[str], where: Location, what: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}  # never hang on a password prompt
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise ConfigError(
            f"{what}: git is not installed", location=where, hint="install git, or use a local module folder"
        ) from None
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"{what}: git did not finish in {_GIT_TIMEOUT:.0f}s",
            location=where,
            hint="check the network, or raise CLOUDORCH_GIT_TIMEOUT",
        ) from None
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ConfigError(
            f"{what}: {detail[-1] if detail else f'git exited {proc.returncode}'}",
            location=where,
            hint="check the URL, the ref and your git credentials",
        )
    return proc.stdout.decode("utf-8", "replace")


class ModuleLock:
    """The lock file beside a plan: pinned commits by source key, written only when changed."""

    def __init__(self, plan_path: Path) -> None:
        self.path = plan_path.parent / LOCK_FILE
        self.entries: dict[str, dict[str, str]] = {}
        self.changed = False
        self.updating = _UPDATING.get()
        self._refreshed: set[str] = set()
        if self.path.exists():
            self._read()
        if self.updating:
            self.changed = True  # even an update that finds nothing rewrites (drops stale entries)
            self.entries = {}

    def _read(self) -> None:
        where = Location(str(self.path))
        try:
            doc = json.loads(self.path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"cannot read the module lock file: {exc}", location=where, hint=UPDATE_HINT) from None
        mods = doc.get("modules") if isinstance(doc, dict) else None
        if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(mods, dict):
            raise ConfigError(
                "the module lock file is not a cloudorch.lock (version 1)", location=where, hint=UPDATE_HINT
            )
        for key, entry in mods.items():
            if not (isinstance(entry, dict) and isinstance(entry.get("commit"), str)):
                raise ConfigError(f"lock entry {key!r} has no commit", location=where, hint=UPDATE_HINT)
            self.entries[str(key)] = {k: str(v) for k, v in entry.items() if v is not None}

    def folder(self, src: GitSource, where: Location) -> Path:
        """The module folder for `src` at its pinned commit, fetching and pinning it if new."""
        entry = self.entries.get(src.key)
        ref = src.ref or "HEAD"
        if entry is not None and entry.get("ref", "HEAD") != ref:
            if src.key in self._refreshed:
                raise ConfigError(
                    f"module source {src.key} is used at two refs ({entry.get('ref')} and {ref})",
                    location=where,
                    hint="the lock pins one commit per source: use one ref for it everywhere",
                )
            raise ConfigError(
                f"module source {src.text!r} asks for ref {ref}, but {LOCK_FILE} pins ref "
                f"{entry.get('ref', 'HEAD')} (commit {entry['commit'][:12]})",
                location=where,
                hint=UPDATE_HINT,
            )
        repo_dir = self._bare_repo(src, where)
        if entry is None:
            commit = self._resolve(repo_dir, src, ref, where)
            entry = {"ref": ref, "commit": commit}
            self.entries[src.key] = entry
            self._refreshed.add(src.key)
            self.changed = True
        else:
            self._refreshed.add(src.key)
        return self._checkout(repo_dir, src, entry["commit"], where)

    def _bare_repo(self, src: GitSource, where: Location) -> Path:
        root = cache_root()
        repo_dir = root / "repos" / hashlib.sha256(src.repo.encode()).hexdigest()[:32]
        if not (repo_dir / "HEAD").exists():
            root.joinpath("repos").mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=root / "repos"))
            try:
                _git(["clone", "--bare", "--quiet", "--", src.repo, str(tmp)], where, f"fetching module {src.text!r}")
                try:
                    tmp.rename(repo_dir)
                except OSError:  # another run cloned it first
                    shutil.rmtree(tmp, ignore_errors=True)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        return repo_dir

    def _resolve(self, repo_dir: Path, src: GitSource, ref: str, where: Location) -> str:
        what = f"fetching module {src.text!r}"
        # a fresh fetch on every resolve: a branch may have moved since the cache was filled
        _git(
            ["fetch", "--quiet", "--force", "--tags", "--", src.repo, "+refs/heads/*:refs/heads/*"],
            where,
            what,
            repo_dir,
        )
        try:
            out = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], where, what, repo_dir)
        except ConfigError:
            raise ConfigError(
                f"module source {src.text!r}: ref {ref!r} is not a branch, tag or commit of {src.repo}",
                location=where,
                hint="check `?ref=` in the source",
            ) from None
        return out.strip()

    def _checkout(self, repo_dir: Path, src: GitSource, commit: str, where: Location) -> Path:
        dest = cache_root() / "trees" / f"{hashlib.sha256(src.repo.encode()).hexdigest()[:16]}-{commit}"
        if not dest.exists():
            what = f"checking out module {src.text!r} at {commit[:12]}"
            if not _has_commit(repo_dir, commit):
                _git(
                    ["fetch", "--quiet", "--force", "--", src.repo, "+refs/heads/*:refs/heads/*"], where, what, repo_dir
                )
            proc = subprocess.run(
                ["git", "archive", "--format=tar", commit],
                cwd=repo_dir,
                capture_output=True,
                timeout=_GIT_TIMEOUT,
                check=False,
            )
            if proc.returncode != 0:
                raise ConfigError(
                    f"{what}: the commit pinned in {LOCK_FILE} is not in {src.repo}",
                    location=where,
                    hint=UPDATE_HINT,
                )
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tree-", dir=dest.parent))
            try:
                with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
                    tar.extractall(tmp, filter="data")  # no absolute paths, links out or devices
                with contextlib.suppress(OSError):  # another run extracted it first
                    tmp.rename(dest)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        folder = dest / src.subdir if src.subdir else dest
        if not folder.is_dir():
            raise ConfigError(
                f"module source {src.text!r}: no folder {src.subdir!r} in the repository at {commit[:12]}",
                location=where,
                hint="check the part after `//` in the source",
            )
        return folder

    def save(self) -> None:
        """Write the lock file if anything changed (atomically: a killed run leaves the old one)."""
        if not self.changed:
            return
        doc: dict[str, Any] = {
            "version": 1,
            "modules": {k: self.entries[k] for k in sorted(self.entries)},
        }
        text = json.dumps(doc, indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=".cloudorch.lock.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, self.path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise ConfigError(f"cannot write {self.path}: {exc.strerror}", location=Location(str(self.path))) from None
        self.changed = False


def _has_commit(repo_dir: Path, commit: str) -> bool:
    proc = subprocess.run(
        ["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=repo_dir, capture_output=True, check=False
    )
    return proc.returncode == 0
