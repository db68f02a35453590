"""Moving state between backends (`state migrate`) and re-encrypting it (`state rekey`).

Owns the copy: every kept version of one state document, oldest first, written to an empty
target under both locks, then read back and verified (serial, lineage, content checksum) before
anyone is told to switch; and the plan-file edit that switches `backend.url`. It never decides
which documents a plan has (the API does) and never prints.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cloudorch.errors import StateError
from cloudorch.state.backends.base import StateBackend
from cloudorch.state.crypto import StateKey
from cloudorch.state.lock import LockInfo
from cloudorch.state.model import State

if TYPE_CHECKING:
    from cloudorch.state.backends.remote import RemoteBackend
    from cloudorch.state.backends.store import ObjectStore


def content_checksum(state: State) -> str:
    """sha256 of the state's canonical JSON without `written_at`, which every write stamps anew:
    a copy verifies when everything it records is the same."""
    doc = state.model_copy(update={"written_at": ""})
    return "sha256:" + hashlib.sha256(doc.canonical_json().encode()).hexdigest()


@dataclass
class CopiedDocument:
    """One state document moved: its key, the serials copied (oldest first) and skipped."""

    key: str
    source: str
    target: str
    serials: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    checksum: str = ""


def copy_document(
    source: StateBackend, target: StateBackend, *, key: str, command: str, lock_timeout: float
) -> CopiedDocument | None:
    """Copy `source`'s current state and history to the empty `target`; None if source is empty."""
    if source.journal_path().exists():
        raise StateError(
            f"state {key} has the journal of an interrupted apply ({source.journal_path()})",
            hint="run `cloudorch plan` once to recover it, then migrate",
        )
    with source.lock(LockInfo.new(command), lock_timeout), target.lock(LockInfo.new(command), lock_timeout):
        current = source.read()
        if current is None:
            return None
        if target.read() is not None:
            raise StateError(
                f"refusing to migrate state {key}: {target.describe()} already holds a state",
                hint="migrate to an empty location (another prefix), or remove that state first",
            )
        report = CopiedDocument(key, source.describe(), target.describe())
        wanted: dict[int, str] = {}
        expected: int | None = None
        for entry in sorted(source.history(), key=lambda e: e.serial):
            if entry.serial in wanted or entry.serial > current.serial:
                continue
            state = current if entry.serial == current.serial else source.read_version(entry.serial)
            if state.lineage != current.lineage:
                report.skipped.append(entry.serial)  # a state that was since replaced: not this one's past
                continue
            wanted[state.serial] = content_checksum(state)
            target.write(state.model_copy(deep=True), expected)
            expected = state.serial
        if current.serial not in wanted:
            wanted[current.serial] = content_checksum(current)
            target.write(current.model_copy(deep=True), expected)
        _verify(target, key, current, wanted)
        report.serials = sorted(wanted)
        report.checksum = wanted[current.serial]
        return report


def _verify(target: StateBackend, key: str, current: State, wanted: dict[int, str]) -> None:
    landed = target.read()
    problems: list[str] = []
    if landed is None or landed.serial != current.serial or landed.lineage != current.lineage:
        problems.append(f"current serial is {landed.serial if landed else 'missing'}, expected {current.serial}")
    listed = {e.serial for e in target.history()}
    for serial, checksum in sorted(wanted.items()):
        if serial not in listed:
            problems.append(f"serial {serial} is not in its history")
            continue
        got = target.read_version(serial)
        if got.serial != serial or content_checksum(got) != checksum:
            problems.append(f"serial {serial} differs from the source")
    if problems:
        raise StateError(
            f"the copy of state {key} at {target.describe()} does not verify: " + "; ".join(problems),
            hint="the source was left as it was and the plan still points at it; check the target and retry",
        )


# --------------------------------------------------------------------------- plan file switch

_TOP_BACKEND = re.compile(r"^backend\s*:", re.MULTILINE)


def switch_plan_backend(path: Path, old_url: str | None, new_url: str, url_line: int | None) -> bool:
    """Point the plan file's `backend.url` at `new_url` with the smallest edit; False if the file's
    shape is one we do not rewrite (the caller tells the user to edit it)."""
    text = path.read_text(encoding="utf-8")
    quoted = f'"{new_url}"'
    if old_url is not None and url_line is not None:
        lines = text.splitlines(keepends=True)
        idx = url_line - 1
        if not 0 <= idx < len(lines) or old_url not in lines[idx]:
            return False
        line = lines[idx]
        for form in (f'"{old_url}"', f"'{old_url}'", old_url):
            if form in line:
                lines[idx] = line.replace(form, quoted, 1)
                break
        text = "".join(lines)
    elif old_url is None and not _TOP_BACKEND.search(text):
        text = text + ("" if text.endswith("\n") else "\n") + f"backend:\n  url: {quoted}\n"
    elif old_url is None:
        # a block without `url` (local state with options, e.g. encryption): add the url to it
        added = _add_url_to_block(text, quoted)
        if added is None:
            return False
        text = added
    else:
        return False
    tmp = path.with_name(f".{path.name}.migrate-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return True


def _add_url_to_block(text: str, quoted: str) -> str | None:
    """`text` with `url:` added to its top-level `backend:` mapping (block or flow style), or None
    when the result would not parse to exactly that (then the user edits the file)."""
    import yaml

    lines = text.splitlines(keepends=True)
    at = next((i for i, line in enumerate(lines) if _TOP_BACKEND.match(line)), None)
    if at is None:
        return None
    head, _, rest = lines[at].partition(":")
    value = rest.split("#", 1)[0].strip()
    if value.startswith("{") and value != "{}":
        lines[at] = head + ":" + rest.replace("{", f"{{url: {quoted}, ", 1)
    elif not value:
        following = next((ln for ln in lines[at + 1 :] if ln.strip() and not ln.lstrip().startswith("#")), "")
        indent = following[: len(following) - len(following.lstrip())] or "  "
        lines.insert(at + 1, f"{indent}url: {quoted}\n")
    else:
        return None
    edited = "".join(lines)
    try:
        before, after = yaml.safe_load(text), yaml.safe_load(edited)
    except yaml.YAMLError:
        return None
    if not (isinstance(before, dict) and isinstance(after, dict) and isinstance(before.get("backend"), dict)):
        return None
    expected = {**before, "backend": {**before["backend"], "url": quoted.strip('"')}}
    return edited if after == expected else None


# --------------------------------------------------------------------------- rekey


@dataclass
class Rekeyed:
    """One state document after `state rekey`: the key that sealed it before (None: plaintext),
    and what became of its history: serials re-sealed with the new key or removed, and the
    versions left readable without it (`history_remaining`: serial or object version -> why)."""

    key: str
    where: str
    from_key: str | None
    to_key: str
    serial: int
    changed: bool
    history_resealed: list[int] = field(default_factory=list)
    history_removed: list[str] = field(default_factory=list)
    history_remaining: dict[str, str] = field(default_factory=dict)


def rekey_document(
    backend: StateBackend,
    *,
    key: str,
    command: str,
    lock_timeout: float,
    actor: str,
    old_keys: list[StateKey],
    purge_remote_history: bool = False,
) -> Rekeyed | None:
    """Re-encrypt the current state with the backend's configured key (a new serial), and its
    history: local history versions are re-sealed with the new key (plaintext that cannot be
    decoded is removed); a remote store's older object versions are listed as remaining unless
    `purge_remote_history`, which deletes every older version not sealed with the new key
    (object versions cannot be rewritten in place). None when nothing is stored under `key`.
    """
    from cloudorch.errors import ConfigError
    from cloudorch.state.backends.local import LocalBackend
    from cloudorch.state.backends.remote import RemoteBackend
    from cloudorch.state.model import StateEvent

    if not isinstance(backend, RemoteBackend | LocalBackend) or backend.cipher is None:
        raise ConfigError(
            f"state {key} ({backend.describe()}) has no encryption key configured",
            hint="add `encryption: {key_env: NAME}` (the new key) to the plan's backend block, then rekey",
        )
    backend.cipher.keys.extend(k for k in old_keys if k.key_id not in {c.key_id for c in backend.cipher.keys})
    with backend.lock(LockInfo.new(command), lock_timeout):
        before = backend.sealed_with()
        state = backend.read()
        if state is None:
            return None
        to_key = backend.cipher.key_id
        if before == to_key:
            done = Rekeyed(key, backend.describe(), before, to_key, state.serial, changed=False)
        else:
            detail = {"from": before or "plaintext", "to": to_key}
            state.events.append(StateEvent(kind="rekey", actor=actor, detail=detail))
            if isinstance(backend, LocalBackend):
                backend.last_reseal = None
            backend.write_next(state)
            done = Rekeyed(key, backend.describe(), before, to_key, state.serial, changed=True)
        if isinstance(backend, LocalBackend):
            # the write re-sealed history when the key changed; run it anyway for a rekey that
            # found the current version already sealed but older ones not
            reseal = backend.reseal_history()
            first = backend.last_reseal
            done.history_resealed = sorted({*reseal.resealed, *(first.resealed if first else [])})
            done.history_removed = [str(s) for s in sorted({*reseal.removed, *(first.removed if first else [])})]
            done.history_remaining = {str(s): why for s, why in sorted(reseal.remaining.items())}
        else:
            _remote_history(backend, done, purge_remote_history)
        return done


def _remote_history(backend: RemoteBackend, done: Rekeyed, purge: bool) -> None:
    """List (or, with `purge`, delete) the older object versions not sealed with the new key."""
    from cloudorch.state.backends.remote import ALL_VERSIONS
    from cloudorch.state.crypto import is_sealed, sealed_key_id
    from cloudorch.state.statefile import HEADER_PEEK

    store, name = backend.store, backend.state_name
    try:
        versions = store.versions(name, ALL_VERSIONS)
    except StateError as exc:
        done.history_remaining["(versions)"] = f"could not list the object's versions: {exc.message}"
        return
    for version in versions:
        if version.current:
            continue
        head = store.get_head(name, HEADER_PEEK, version.version_id)
        prefix = head.data if head is not None else b""
        sealed_by = sealed_key_id(prefix) if is_sealed(prefix) else None
        if sealed_by == done.to_key:
            continue
        if purge:
            _delete_old_version(store, name, version.version_id)
            done.history_removed.append(version.version_id)
        else:
            done.history_remaining[version.version_id] = (
                f"sealed with key {sealed_by}" if sealed_by else "plaintext"
            ) + " (remote object versions are kept unless --purge-remote-history)"


def _delete_old_version(store: ObjectStore, name: str, version_id: str) -> None:
    """Delete one noncurrent version, checking the current object survived: a store that ignores
    the version id (fake-gcs-server does) would delete the live state instead; it is put back."""
    before = store.get(name)
    store.delete_version(name, version_id)
    after = store.get_head(name, 1)
    if before is not None and (after is None or after.token != before.token):
        if after is None:
            store.put(name, before.data, if_token=None)
        raise StateError(
            f"{store.url(name)}: deleting old version {version_id} touched the current state; "
            "it was put back and nothing more was deleted",
            hint="this store does not delete single versions: remove old versions with the cloud's own tools",
        )
