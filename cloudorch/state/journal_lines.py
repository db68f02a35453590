"""Reading a whole journal in one validator pass: JSON parsing and record validation together.

A journal of tens of thousands of finished operations is mostly state records. Parsing its lines
to dicts and then validating each record into a `ResourceRecord` builds every record twice; here
pydantic-core reads the lines straight from the bytes, and an operation's `record` comes out as a
`ResourceRecord` when it is a valid one, as the parsed JSON when it is not (the fold, in
`recovery.py`, refuses it only if state would take it). Payloads stay plain dicts otherwise.
Imported by `journal.parse_journal` only when a journal is read (it pulls in pydantic and the model).

`paused_gc`: reading and folding a large journal allocates hundreds of thousands of objects that
all stay alive; each allocation burst set off a full cyclic collection that walked all of them
again, which cost more than the parsing itself (measured: 40,000 lines, 0.64 s to 0.23 s).
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from cloudorch.state.model import ResourceRecord


@with_config(ConfigDict(extra="allow"))
class _Payload(TypedDict, total=False):
    # left to right: a valid record becomes a ResourceRecord, anything else (None, a hand-written
    # dict) is kept as parsed
    record: Annotated[ResourceRecord | Any, Field(union_mode="left_to_right")]


@with_config(ConfigDict(extra="allow"))
class _Line(TypedDict, total=False):
    op: _Payload


@functools.cache
def _lines() -> TypeAdapter[list[_Line]]:
    # built on first use, not at import: every command imports this module, few read a journal
    return TypeAdapter(list[_Line])


def read_lines(raws: list[bytes]) -> list[dict[str, Any]] | None:
    """Every line as a dict (records validated where valid), or None when some line is not a JSON
    object whose `op`, if any, is an object: the caller then reads line by line and says which."""
    try:
        docs = _lines().validate_json(b"[" + b",".join(raws) + b"]")
    except ValidationError:
        return None
    return docs  # type: ignore[return-value]  # a TypedDict with extra keys is a dict


def split_record(op: dict[str, Any]) -> ResourceRecord | None:
    """Take a validated record out of `op` (leaving its fields as a plain dict, as journaled)."""
    record = op.get("record")
    if type(record) is ResourceRecord:
        op["record"] = dict(record.__dict__)
        return record
    return None


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside (reference counting still frees everything acyclic);
    collection resumes on exit if it was on at entry."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
