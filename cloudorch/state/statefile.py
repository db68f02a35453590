"""The on-disk encoding of one state document, with its checksum; shared by every backend.

A state file is one JSON object: a small header (checksum, format, lineage, serial, written_at,
resource_count) followed by `"state"`, the state's canonical JSON (`State.canonical_json`). The
checksum is the sha256 of exactly those canonical bytes, so loading hashes the bytes as read
instead of re-serialising 5,000 resources. A file that does not verify is never used: decoding
raises StateError naming the file. Persistence and locking are not here (see `backends/`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from cloudorch.errors import StateError
from cloudorch.state.model import STATE_FORMAT, State, now_iso

# Nothing inside a JSON string can contain this (its quotes would be escaped), so the first
# occurrence separates the header from the canonical body.
_BODY_MARK = b',"state":'
_TAIL = b"}\n"
HEADER_PEEK = 4096


class CorruptStateError(StateError):
    """A state file failed verification (checksum, truncation, edits); backends add a restore hint."""


@dataclass(frozen=True)
class StateHeader:
    """What a state file says about itself without loading its resources (cheap to list)."""

    serial: int
    lineage: str
    written_at: str
    resource_count: int
    checksum: str


def encode_state(state: State) -> tuple[bytes, StateHeader]:
    """Serialise `state` (canonical JSON, checksummed once over the whole body)."""
    body = state.canonical_json().encode()
    header = StateHeader(
        serial=state.serial,
        lineage=state.lineage,
        written_at=state.written_at,
        resource_count=len(state.resources),
        checksum="sha256:" + hashlib.sha256(body).hexdigest(),
    )
    head = json.dumps(_header_dict(header), sort_keys=True, separators=(",", ":")).encode()
    return head[:-1] + _BODY_MARK + body + _TAIL, header


def decode_state(data: bytes, source: str) -> State:
    """Verify and parse a state file's bytes; `source` names the file in errors."""
    header, body = _split(data, source)
    if body is not None:
        actual = "sha256:" + hashlib.sha256(body).hexdigest()
    else:
        # Not in the exact layout we write (e.g. re-indented by hand): verify the content instead
        # of the bytes, which still catches any edit that changes a value.
        document = _parse_whole(data, source)
        raw_state = document.get("state")
        if not isinstance(raw_state, dict):
            raise _corrupt(source, 'it has no "state" object')
        body = json.dumps(raw_state, sort_keys=True, separators=(",", ":")).encode()
        actual = "sha256:" + hashlib.sha256(body).hexdigest()
    if actual != header.checksum:
        raise _corrupt(source, f"checksum mismatch (file says {header.checksum}, content is {actual})")
    try:
        state = State.model_validate_json(body)
    except ValidationError as exc:
        raise _corrupt(source, f"its content is not a valid state ({exc.error_count()} errors)") from exc
    if state.serial != header.serial or state.lineage != header.lineage:
        raise _corrupt(source, "its header disagrees with its content (serial or lineage)")
    return state


def decode_header(prefix: bytes, read_rest: Callable[[], bytes], source: str) -> StateHeader:
    """A state file's header from its first `HEADER_PEEK` bytes (a ranged read for remote
    backends); `read_rest` fetches the remainder only when the file is not in our layout."""
    idx = prefix.find(_BODY_MARK)
    if idx > 0:
        with contextlib.suppress(StateError):
            return _parse_header(prefix[:idx] + b"}", source)
    return _header_from_document(_parse_whole(prefix + read_rest(), source), source)


def _split(data: bytes, source: str) -> tuple[StateHeader, bytes | None]:
    idx = data.find(_BODY_MARK, 0, HEADER_PEEK)
    if idx > 0 and data.endswith(_TAIL):
        try:
            header = _parse_header(data[:idx] + b"}", source)
        except StateError:
            pass
        else:
            return header, data[idx + len(_BODY_MARK) : -len(_TAIL)]
    return _header_from_document(_parse_whole(data, source), source), None


def _parse_whole(data: bytes, source: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        what = "it is empty" if not data.strip() else f"it is not valid JSON ({exc}); it may be truncated"
        raise _corrupt(source, what) from exc
    if not isinstance(document, dict):
        raise _corrupt(source, "it is not a JSON object")
    return document


def _parse_header(raw: bytes, source: str) -> StateHeader:
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _corrupt(source, "its header is not valid JSON") from exc
    if not isinstance(document, dict):
        raise _corrupt(source, "its header is not a JSON object")
    return _header_from_document(document, source)


def _header_from_document(document: dict[str, Any], source: str) -> StateHeader:
    fmt = document.get("format")
    if isinstance(fmt, int) and fmt > STATE_FORMAT:
        raise StateError(
            f"{source} has state format {fmt}, newer than this cloudorch understands ({STATE_FORMAT})",
            hint="Upgrade cloudorch; never edit state written by a newer version.",
        )
    try:
        return StateHeader(
            serial=_typed(document, "serial", int),
            lineage=_typed(document, "lineage", str),
            written_at=str(document.get("written_at", "")),
            resource_count=int(document.get("resource_count", 0)),
            checksum=_typed(document, "checksum", str),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _corrupt(source, f"its header is incomplete ({exc})") from exc


def _typed(document: dict[str, Any], key: str, kind: type[Any]) -> Any:
    value = document[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{key} is not {kind.__name__}")
    return value


def _header_dict(header: StateHeader) -> dict[str, Any]:
    return {
        "checksum": header.checksum,
        "format": STATE_FORMAT,
        "lineage": header.lineage,
        "resource_count": header.resource_count,
        "serial": header.serial,
        "written_at": header.written_at or now_iso(),
    }


def _corrupt(source: str, why: str) -> CorruptStateError:
    return CorruptStateError(
        f"state file {source} cannot be used: {why}",
        hint=(
            "cloudorch never uses a state it cannot verify. Restore a previous version from its "
            "history (`cloudorch state history`, then restore a serial), or put back a backup of the file."
        ),
    )
