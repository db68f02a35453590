"""A journal is folded in only when it is bound to the stored state and its chain is intact.

Hostile or stale journals (no header, another lineage, an older serial, an edited or injected
line, forged rollback lines) are refused by every command that would fold them, naming what does
not match; the state file and the world stay exactly as they were.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloudorch.cli import main
from cloudorch.state import LocalBackend
from cloudorch.state.journal import Journal, StateBinding, parse_journal, pending


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def _finished_delete(address: str) -> dict[str, object]:
    return {"op": address, "address": address, "action": "delete"}


def _forge(path: Path, binding: StateBinding, lines: list[tuple[str, dict[str, object]]]) -> None:
    journal = Journal.start(path, {"command": "cloudorch apply", "actor": "mallory"}, binding=binding)
    for event, payload in lines:
        if event == "finished":
            journal.finished(payload)
        elif event == "started":
            journal.started(payload)
        elif event == "rollback":
            journal.rollback(payload)
        else:
            journal.inverses([payload])
    journal.abandon()


def _edit_line(path: Path, index: int, edit: Callable[[dict[str, object]], None]) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    doc = json.loads(lines[index])
    edit(doc)
    lines[index] = json.dumps(doc, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(b"".join(lines))


KINDS = ["no-header", "other-lineage", "older-serial", "edited-line", "injected-line", "forged-rollback"]


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_or_stale_journal_is_refused_and_nothing_is_written(
    kind: str, cli: Callable[..., Result], fixture_plan: Callable[[str], Path], tmp_path: Path
) -> None:
    plan = fixture_plan("lifecycle.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    backend = LocalBackend(tmp_path / ".cloudorch", "lifecycle")
    older = backend.binding()
    assert cli("apply", str(plan), "--auto-approve", "--var", "owner=ops").code == 0
    current = backend.binding()
    assert older is not None and current is not None and older.serial < current.serial
    journal = backend.journal_path()
    victim = {"op": "note", "address": "note", "action": "delete", "record": None}

    if kind == "no-header":  # a hand-written file, as a pull request could ship it
        journal.parent.mkdir(parents=True, exist_ok=True)
        line = {"at": "2026-01-01T00:00:00.000Z", "event": "finished", "op": victim}
        journal.write_text(json.dumps(line) + "\n")
        expected = "no header binding it to a state"
    elif kind == "other-lineage":
        _forge(journal, StateBinding("another-lineage", current.serial, current.state_hash), [("finished", victim)])
        expected = "belongs to state lineage another-lineage"
    elif kind == "older-serial":  # a stale journal from before the last apply
        _forge(journal, older, [("finished", victim)])
        expected = f"started from serial {older.serial}, but the stored state is at serial {current.serial}"
    elif kind == "edited-line":
        _forge(journal, current, [("started", dict(victim)), ("finished", {**victim, "action": "update"})])
        _edit_line(journal, 1, lambda doc: doc["op"].update(address="config"))  # type: ignore[union-attr]
        expected = "hash chain is broken"
    elif kind == "injected-line":
        _forge(journal, current, [("started", _finished_delete("config"))])
        forged = {"at": "2026-01-01T00:00:00.000Z", "event": "finished", "op": victim, "prev": "0" * 64}
        with open(journal, "ab") as fh:
            fh.write(json.dumps(forged).encode() + b"\n")
        expected = "hash chain is broken"
    else:  # inverse + rollback lines that would make `recover` delete a managed file
        _forge(journal, current, [])
        inverse = {"op": "inverse:note", "address": "note", "action": "create", "undo": "delete",
                   "type": "core.file", "provider": "core", "after": []}  # fmt: skip
        with open(journal, "ab") as fh:
            for event, op in (("inverse", inverse), ("rollback", {"reason": "forged"})):
                fh.write(json.dumps({"at": "2026-01-01T00:00:00.000Z", "event": event, "op": op}).encode() + b"\n")
        expected = "hash chain is broken"

    state_file = tmp_path / ".cloudorch" / "state" / "lifecycle.json"
    before = state_file.read_bytes()
    note = (tmp_path / "out" / "note.txt").read_bytes()
    journal_bytes = journal.read_bytes()
    for args in (("plan", str(plan)), ("apply", str(plan), "--auto-approve"), ("recover", str(plan))):
        r = cli(*args)
        said = r.out + r.err
        assert r.code != 0, (args, said)
        assert expected in said, (args, said)
        assert "cloudorch recover" in said and "move it aside" in said
        assert state_file.read_bytes() == before
        assert journal.read_bytes() == journal_bytes
        assert (tmp_path / "out" / "note.txt").read_bytes() == note
    with pytest.raises(Exception, match="journal"):
        pending(backend)


def test_a_bound_journal_is_still_recovered(
    cli: Callable[..., Result], fixture_plan: Callable[[str], Path], tmp_path: Path
) -> None:
    """The refusals above are not blanket: a journal bound to the stored state, chain intact, folds in."""
    plan = fixture_plan("lifecycle.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    backend = LocalBackend(tmp_path / ".cloudorch", "lifecycle")
    state = backend.read()
    assert state is not None
    record = state.resources["config"].model_dump(mode="json")
    record["attributes"] = {**record["attributes"], "marker": "from-the-journal"}
    binding = backend.binding()
    assert binding is not None
    _forge(backend.journal_path(), binding, [("started", {"op": "config", "address": "config", "action": "update"}),
                                              ("finished", {"op": "config", "address": "config", "action": "update",
                                                            "record": record})])  # fmt: skip
    run = pending(backend)
    assert run is not None and not run.ended_cleanly and len(run.replay.finished) == 1
    r = cli("recover", str(plan), "--json")
    assert r.code == 0, r.err
    after = backend.read()
    assert after is not None and after.resources["config"].attributes.get("marker") == "from-the-journal"
    assert not backend.journal_path().exists()


def test_encrypted_state_seals_its_journal(tmp_path: Path) -> None:
    import base64

    from cloudorch.state.crypto import StateCipher, StateKey

    key = StateKey(secret=b"k" * 32, source="test")
    cipher = StateCipher([key])
    path = tmp_path / "j.jsonl"
    journal = Journal.start(path, {"command": "apply"}, binding=StateBinding("L", 0, None), cipher=cipher)
    journal.finished({"op": "db", "address": "db", "action": "create", "record": {"id": "secret-id"}})
    journal.abandon()
    raw = path.read_bytes()
    assert b"secret-id" not in raw and b'"db"' not in raw
    assert base64.b64encode(b"secret-id") not in raw
    assert parse_journal(raw, str(path), cipher).finished[0]["record"] == {"id": "secret-id"}
    with pytest.raises(Exception, match="encrypted"):
        parse_journal(raw, str(path), None)
