"""After encryption is enabled or the key rotated, no version in local history stays readable
without the current key (tests/state/test_key_file_mode.py: a key file others can read).

Everything runs through the CLI on a plan in a temporary folder; the history folder is grepped
for a property value known to be in every version.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloudorch.cli import main
from cloudorch.state import LocalBackend
from cloudorch.state.crypto import StateCipher, StateKey, WrongKeyError

NEEDLE = "needle-7f3a9c"
KEY1 = base64.b64encode(b"1" * 32).decode()
KEY2 = base64.b64encode(b"2" * 32).decode()


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


def write_plan(folder: Path, backend: str = "") -> Path:
    plan = folder / "sec.yaml"
    plan.write_text(
        "version: 1\nname: sec\nvariables:\n  v: {type: string, default: d}\n"
        + backend
        + f'resources:\n  a: {{type: core.null, properties: {{values: {{v: "{NEEDLE}-${{var.v}}"}}}}}}\n'
    )
    return plan


def history_files(folder: Path) -> list[Path]:
    return sorted((folder / ".cloudorch" / "history" / "sec").glob("*.json"))


def plaintext_left(folder: Path) -> list[str]:
    every = [p for p in (folder / ".cloudorch").rglob("*") if p.is_file()]
    return [str(p) for p in every if NEEDLE.encode() in p.read_bytes()]


def apply(cli: Callable[..., Result], plan: Path, value: str) -> Result:
    done = cli("apply", str(plan), "--auto-approve", "--var", f"v={value}")
    assert done.code == 0, done.out + done.err
    return done


def backend_on(folder: Path, key: str) -> LocalBackend:
    return LocalBackend(folder / ".cloudorch", "sec", cipher=StateCipher([StateKey(base64.b64decode(key), "test")]))


def test_enabling_encryption_reseals_plaintext_history(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("K1", KEY1)
    plan = write_plan(tmp_path)
    apply(cli, plan, "one")
    apply(cli, plan, "two")
    assert plaintext_left(tmp_path)  # the control: unencrypted state holds the value in clear
    write_plan(tmp_path, "backend: {encryption: {key_env: K1}}\n")
    apply(cli, plan, "three")
    assert plaintext_left(tmp_path) == []
    assert len(history_files(tmp_path)) >= 2
    # every version still restores, with the key
    backend = backend_on(tmp_path, KEY1)
    for entry in backend.history():
        assert NEEDLE in json.dumps(backend.read_version(entry.serial).model_dump(mode="json"))


def test_rekey_reseals_history_with_the_new_key_only(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("K1", KEY1)
    monkeypatch.setenv("K2", KEY2)
    plan = write_plan(tmp_path, "backend: {encryption: {key_env: K1}}\n")
    apply(cli, plan, "one")
    apply(cli, plan, "two")
    old_serials = [e.serial for e in backend_on(tmp_path, KEY1).history()]
    write_plan(tmp_path, "backend: {encryption: {key_env: K2}}\n")
    done = cli("state", "rekey", str(plan), "--old-key-env", "K1", "--json")
    assert done.code == 0, done.out + done.err
    [doc] = json.loads(done.out)["rekeyed"]
    assert doc["history_remaining"] == {}
    assert sorted(doc["history_resealed"]) == sorted(old_serials)
    new_only, old_only = backend_on(tmp_path, KEY2), backend_on(tmp_path, KEY1)
    for serial in old_serials:
        assert new_only.read_version(serial).serial == serial
        with pytest.raises(WrongKeyError):
            old_only.read_version(serial)
    assert plaintext_left(tmp_path) == []


def test_rekey_says_what_stays_readable_without_the_new_key(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # without the old key, versions sealed with it cannot be re-sealed: they remain, and it says so
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("K1", KEY1)
    monkeypatch.setenv("K2", KEY2)
    plan = write_plan(tmp_path, "backend: {encryption: {key_env: K1}}\n")
    apply(cli, plan, "one")
    apply(cli, plan, "two")
    write_plan(tmp_path, "backend: {encryption: {key_env: K2}}\n")
    done = cli("state", "rekey", str(plan))
    # the current version needs the old key too: the rekey refuses and changes nothing
    assert done.code == 1 and "K1" not in done.out
    files_before = {p: p.read_bytes() for p in history_files(tmp_path)}
    write_plan(tmp_path, "backend: {encryption: {key_env: K2, old_keys: [{key_env: K1}]}}\n")
    assert cli("state", "rekey", str(plan)).code == 0
    text = cli("state", "rekey", str(plan))
    assert text.code == 0 and "no older version remains readable without key" in text.out, text.out
    assert all(p.read_bytes() != data for p, data in files_before.items())
