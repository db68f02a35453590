"""Encrypted local state: sealed on disk, opened only with the right key, history without the key."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from cloudorch.errors import ConfigError, StateError
from cloudorch.state import LocalBackend, State
from cloudorch.state.backends import open_backend
from cloudorch.state.crypto import StateCipher, StateKey, WrongKeyError
from cloudorch.state.migrate import rekey_document

MakeState = Callable[..., State]


def _key(name: str = "test") -> StateKey:
    return StateKey(os.urandom(32), name)


def _sealed(root: Path, *keys: StateKey) -> LocalBackend:
    return LocalBackend(root, "shop", cipher=StateCipher(list(keys)))


def _write_serials(backend: LocalBackend, make_state: MakeState, last: int) -> State:
    state = make_state(3)
    backend.write(state, None)
    for serial in range(2, last + 1):
        state.serial = serial
        state.outputs["n"] = serial
        backend.write(state, serial - 1)
    return state


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes (lock and journal directories included)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_round_trip_and_the_file_hides_the_content(root: Path, make_state: MakeState) -> None:
    key = _key()
    backend = _sealed(root, key)
    state = make_state(3)
    state.outputs["password"] = "hunter2-very-secret"
    backend.write(state, None)

    raw = backend.state_path.read_bytes()
    assert b"hunter2-very-secret" not in raw and b"prod.r0" not in raw and b"arn:aws" not in raw
    assert b'"ciphertext"' in raw and key.key_id.encode() in raw
    again = _sealed(root, key).read()
    assert again == state
    assert "encrypted (key " + key.key_id in backend.describe()


def test_wrong_key_fails_and_changes_nothing(root: Path, make_state: MakeState) -> None:
    _write_serials(_sealed(root, _key()), make_state, 2)
    before = _tree(root)
    wrong = _sealed(root, _key("$OTHER_KEY"))
    with pytest.raises(WrongKeyError, match="encrypted with key") as err:
        wrong.read()
    assert "$OTHER_KEY" in err.value.message and err.value.hint is not None and "old_keys" in err.value.hint
    with pytest.raises(WrongKeyError):
        wrong.read_version(1)
    assert _tree(root) == before


def test_missing_key_names_the_file_and_the_setting(root: Path, make_state: MakeState) -> None:
    _write_serials(_sealed(root, _key()), make_state, 2)
    before = _tree(root)
    plain = LocalBackend(root, "shop")
    with pytest.raises(StateError, match=r"state/shop\.json is encrypted .* no key is configured") as err:
        plain.read()
    assert err.value.hint is not None and "encryption:" in err.value.hint
    assert _tree(root) == before


def test_history_lists_sealed_versions_without_the_key(root: Path, make_state: MakeState) -> None:
    key = _key()
    _write_serials(_sealed(root, key), make_state, 3)
    listed = LocalBackend(root, "shop").history()  # no key
    assert [(e.serial, e.current, e.resource_count) for e in listed] == [(3, True, 3), (2, False, 3), (1, False, 3)]
    opened = _sealed(root, key)
    for serial in (1, 2, 3):
        assert opened.read_version(serial).outputs.get("n", 1) == serial


def test_edited_header_is_refused(root: Path, make_state: MakeState) -> None:
    key = _key()
    _write_serials(_sealed(root, key), make_state, 2)
    path = root / "history" / "shop" / "1.json"
    path.write_bytes(path.read_bytes().replace(b'"resource_count":3', b'"resource_count":4'))
    with pytest.raises(WrongKeyError, match="header or ciphertext was changed"):
        _sealed(root, key).read_version(1)


def test_turning_encryption_on_over_plaintext(root: Path, make_state: MakeState) -> None:
    state = _write_serials(LocalBackend(root, "shop"), make_state, 2)
    key = _key()
    sealed = _sealed(root, key)
    loaded = sealed.read()  # the plaintext state stays readable with a key configured
    assert loaded == state
    loaded.serial = 3
    sealed.write(loaded, 2)  # and the next write seals it
    assert b"prod.r0" not in sealed.state_path.read_bytes()
    # the first sealed write re-seals the plaintext versions kept in history
    assert b"prod.r0" not in (sealed.history_dir / "2.json").read_bytes()
    assert sealed.last_reseal is not None and 2 in sealed.last_reseal.resealed
    assert sealed.read() == loaded and sealed.read_version(2) == state


def test_compare_and_swap_still_guards_sealed_writes(root: Path, make_state: MakeState) -> None:
    backend = _sealed(root, _key())
    state = _write_serials(backend, make_state, 2)
    before = _tree(root)
    state.serial = 3
    with pytest.raises(StateError, match="expected serial 1, but it is at serial 2"):
        backend.write(state, 1)
    assert _tree(root) == before


def test_rekey_seals_with_the_new_key_and_old_keys_read_the_past(root: Path, make_state: MakeState) -> None:
    old, new = _key("$OLD"), _key("$NEW")
    _write_serials(_sealed(root, old), make_state, 2)
    done = rekey_document(_sealed(root, new), key="shop", command="t", lock_timeout=0, actor="ann", old_keys=[old])
    assert done is not None and done.changed and done.from_key == old.key_id and done.to_key == new.key_id
    current = _sealed(root, new).read()
    assert current is not None and current.serial == 3 and current.events[-1].kind == "rekey"
    # history is re-sealed with the new key: the old key alone no longer reads it
    assert done.history_resealed == [1, 2] and done.history_remaining == {}
    assert _sealed(root, new).read_version(2).serial == 2
    with pytest.raises(WrongKeyError):
        _sealed(root, old).read_version(2)
    again = rekey_document(_sealed(root, new), key="shop", command="t", lock_timeout=0, actor="ann", old_keys=[])
    assert again is not None and not again.changed


def test_rekey_without_a_key_is_a_config_error(root: Path, make_state: MakeState) -> None:
    _write_serials(LocalBackend(root, "shop"), make_state, 1)
    with pytest.raises(ConfigError, match="no encryption key configured"):
        rekey_document(LocalBackend(root, "shop"), key="shop", command="t", lock_timeout=0, actor="a", old_keys=[])


def test_a_backend_block_without_url_means_encrypted_local_state(root: Path, make_state: MakeState) -> None:
    env = {"STATE_KEY": base64.b64encode(os.urandom(32)).decode()}
    backend = open_backend(None, {"encryption": {"key_env": "STATE_KEY"}}, key="shop", local_root=root, env=env)
    assert isinstance(backend, LocalBackend) and backend.cipher is not None
    backend.write(make_state(1), None)
    assert b'"ciphertext"' in backend.state_path.read_bytes()
    with pytest.raises(ConfigError, match="STATE_KEY is not set"):
        open_backend(None, {"encryption": {"key_env": "STATE_KEY"}}, key="shop", local_root=root, env={})
    with pytest.raises(ConfigError, match="exactly one of key_env and key_file"):
        open_backend(None, {"encryption": {}}, key="shop", local_root=root, env=env)
