"""Client-side encryption of state documents at rest (AES-256-GCM, the `cryptography` package).

Owns the key format, the sealed envelope and the errors for a missing or wrong key. A sealed
document keeps the state header in clear (serial, lineage, written_at, resource_count, checksum)
so history can be listed and compare-and-swap checked without the key; the header is bound to
the ciphertext as associated data, so editing it breaks decryption. Everything else, including
resource ids and outputs, is only in the ciphertext. It never reads or writes storage.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudorch.errors import ConfigError, StateError
from cloudorch.state.model import State
from cloudorch.state.statefile import HEADER_PEEK, CorruptStateError, StateHeader, decode_state

ALGORITHM = "AES-256-GCM"
KEY_BYTES = 32
#: the ciphertext comes last so a ranged read of the first few KB holds the whole header
_CIPHER_MARK = b',"ciphertext":"'
_TAIL = b'"}\n'
_KEY_HINT = (
    "A key is 32 random bytes, written as base64 or hex: "
    "python -c 'import os,base64; print(base64.b64encode(os.urandom(32)).decode())'"
)


class WrongKeyError(StateError):
    """An encrypted state document cannot be opened with the configured key(s)."""


@dataclass(frozen=True)
class StateKey:
    """One AES-256 key and where it came from (for messages; the key itself is never shown)."""

    secret: bytes
    source: str

    @property
    def key_id(self) -> str:
        """A short fingerprint saying which key sealed a document (not usable to recover it)."""
        return hashlib.sha256(b"cloudorch-state-key\0" + self.secret).hexdigest()[:16]

    @classmethod
    def from_env(cls, name: str, env: dict[str, str] | None = None) -> StateKey:
        value = (env if env is not None else os.environ).get(name)
        if not value:
            raise ConfigError(
                f"state encryption key: environment variable {name} is not set",
                hint=f"export {name}=<key>. " + _KEY_HINT,
            )
        return cls(_decode_key(value.strip().encode(), f"${name}"), f"${name}")

    @classmethod
    def from_file(cls, path: str | Path) -> StateKey:
        """The key in `path`, refused when the file is readable or writable by group or others
        (checked on the open descriptor, so the file checked is the file read)."""
        full = Path(path).expanduser()
        try:
            fd = os.open(full, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            with os.fdopen(fd, "rb") as fh:
                st = os.fstat(fh.fileno())
                if os.name == "posix" and stat.S_IMODE(st.st_mode) & 0o077:
                    raise ConfigError(
                        f"state encryption key file {path} is accessible to other users "
                        f"(mode {stat.S_IMODE(st.st_mode):04o}); cloudorch does not use a key others can read",
                        hint=f"chmod 600 {shlex.quote(str(full))} (and rotate the key with `cloudorch state rekey` "
                        "if others may have read it)",
                    )
                raw = fh.read(4096)
        except OSError as exc:
            raise ConfigError(
                f"state encryption key file {path}: {exc.strerror or exc}",
                hint="Check the path in backend.encryption.key_file. " + _KEY_HINT,
            ) from exc
        if len(raw) == KEY_BYTES:
            return cls(raw, str(path))
        return cls(_decode_key(raw.strip(), str(path)), str(path))


def _decode_key(text: bytes, source: str) -> bytes:
    candidates: list[bytes] = []
    if len(text) == 2 * KEY_BYTES:
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            candidates.append(bytes.fromhex(text.decode("ascii")))
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.append(decode(text + b"=" * (-len(text) % 4)))
    for key in candidates:
        if len(key) == KEY_BYTES:
            return key
    raise ConfigError(f"state encryption key {source} is not 32 bytes of base64 or hex", hint=_KEY_HINT)


class StateCipher:
    """Seals with the first key; opens with any of them (earlier keys stay usable after a rekey)."""

    def __init__(self, keys: list[StateKey]) -> None:
        if not keys:
            raise ValueError("a StateCipher needs at least one key")
        self.keys = keys

    @property
    def key_id(self) -> str:
        return self.keys[0].key_id

    def seal(self, plain: bytes, header: StateHeader) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        head = _envelope_head(header, self.keys[0].key_id, nonce)
        sealed = AESGCM(self.keys[0].secret).encrypt(nonce, plain, head)
        return head[:-1] + _CIPHER_MARK + base64.b64encode(sealed) + _TAIL

    def open(self, data: bytes, source: str) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        head, sealed = _split(data, source)
        meta = json.loads(head)["encryption"]
        key = next((k for k in self.keys if k.key_id == meta.get("key_id")), None)
        if key is None:
            raise WrongKeyError(
                f"{source} is encrypted with key {meta.get('key_id')}, but the configured key is "
                f"{self.key_id} ({self.keys[0].source}); nothing was changed",
                hint="Use the key it was written with (list earlier keys under backend.encryption.old_keys).",
            )
        try:
            nonce = base64.b64decode(meta["nonce"])
            return AESGCM(key.secret).decrypt(nonce, sealed, head)
        except (InvalidTag, KeyError, ValueError, binascii.Error) as exc:
            raise WrongKeyError(
                f"{source} could not be decrypted with key {key.key_id}: its header or ciphertext was changed",
                hint="cloudorch never uses a state it cannot verify; restore a previous version from history.",
            ) from exc


def is_sealed(prefix: bytes) -> bool:
    """Whether a document (or its first few KB) is an encrypted envelope, judged on its header
    only (a plain document's resources may well contain the same words)."""
    cipher_at = prefix.find(_CIPHER_MARK, 0, 4096)
    if cipher_at < 0:
        return False
    state_at = prefix.find(b',"state":', 0, cipher_at)
    return state_at < 0 and b'"encryption":{' in prefix[:cipher_at]


def sealed_header(prefix: bytes, source: str) -> StateHeader:
    """The clear header of an envelope from its first few KB."""
    idx = prefix.find(_CIPHER_MARK)
    if idx < 0:
        raise StateError(f"{source} is not a complete encrypted state document")
    try:
        doc = json.loads(prefix[:idx] + b"}")
        return StateHeader(
            serial=int(doc["serial"]),
            lineage=str(doc["lineage"]),
            written_at=str(doc.get("written_at", "")),
            resource_count=int(doc.get("resource_count", 0)),
            checksum=str(doc["checksum"]),
        )
    except (ValueError, KeyError, TypeError) as exc:  # an edited or damaged header: never guess
        raise CorruptStateError(f"state file {source} cannot be used: its encrypted header is damaged") from exc


def open_sealed(data: bytes, cipher: StateCipher | None, source: str, *, no_key_hint: str) -> State:
    """The state inside an envelope (`is_sealed(data)`), checked against its clear header.

    No cipher is a StateError naming the key that sealed it; a wrong key is a WrongKeyError.
    """
    if cipher is None:
        raise StateError(
            f"state file {source} is encrypted (key {sealed_key_id(data[:HEADER_PEEK])}), but no key is configured",
            hint=no_key_hint,
        )
    outer = sealed_header(data[:HEADER_PEEK], source)
    state = decode_state(cipher.open(data, source), source)
    if outer.serial != state.serial or outer.lineage != state.lineage:
        raise CorruptStateError(f"state file {source} cannot be used: its envelope disagrees with its content")
    return state


def sealed_key_id(prefix: bytes) -> str | None:
    try:
        idx = prefix.find(_CIPHER_MARK)
        meta: Any = json.loads(prefix[:idx] + b"}")["encryption"]
        return str(meta["key_id"])
    except (ValueError, KeyError, TypeError):
        return None


def _envelope_head(header: StateHeader, key_id: str, nonce: bytes) -> bytes:
    doc = {
        "checksum": header.checksum,
        "encryption": {"alg": ALGORITHM, "key_id": key_id, "nonce": base64.b64encode(nonce).decode()},
        "lineage": header.lineage,
        "resource_count": header.resource_count,
        "serial": header.serial,
        "written_at": header.written_at,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _split(data: bytes, source: str) -> tuple[bytes, bytes]:
    idx = data.find(_CIPHER_MARK)
    if idx < 0 or not data.endswith(_TAIL):
        raise StateError(
            f"state file {source} cannot be used: its encrypted envelope is truncated",
            hint="cloudorch never uses a state it cannot verify; restore a previous version from history.",
        )
    head = data[:idx] + b"}"
    try:
        sealed = base64.b64decode(data[idx + len(_CIPHER_MARK) : -len(_TAIL)], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise StateError(f"state file {source} cannot be used: its ciphertext is not base64") from exc
    return head, sealed


def cipher_from_options(encryption: Any, env: dict[str, str] | None = None) -> StateCipher | None:
    """The cipher for a validated `backend.encryption` block (`url.EncryptionOptions`), or None."""
    if encryption is None:
        return None
    keys = [_key(encryption.key_env, encryption.key_file, env)]
    keys += [_key(old.key_env, old.key_file, env) for old in encryption.old_keys]
    return StateCipher(keys)


def _key(key_env: str | None, key_file: str | None, env: dict[str, str] | None) -> StateKey:
    if key_env is not None:
        return StateKey.from_env(key_env, env)
    assert key_file is not None
    return StateKey.from_file(key_file)
