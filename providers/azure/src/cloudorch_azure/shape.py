"""The user's shape of what Azure reports: address tags, observed values projected onto desired ones.

Owns the rules that keep a re-plan clean: ARM returns many defaults and normalises casing and
region names, so observed values are reported in the shape (and spelling) the user wrote
whenever they mean the same thing. It must not call Azure.
"""

from __future__ import annotations

import hashlib
from typing import Any

#: The tag (ARM) every object cloudorch creates carries, so `find` can recover it after a crash.
ADDRESS_TAG = "cloudorch:address"
#: Blob and container metadata names must be C# identifiers, so storage uses these keys instead.
ADDRESS_METADATA = "cloudorch_address"
SHA256_METADATA = "cloudorch_sha256"
#: Metadata keys cloudorch writes for itself, never shown as the user's metadata.
OWN_METADATA = frozenset({ADDRESS_METADATA, SHA256_METADATA})


def same_location(a: str | None, b: str | None) -> bool:
    """ARM answers `westeurope` for `West Europe`."""
    if a is None or b is None:
        return a is b
    return a.replace(" ", "").lower() == b.replace(" ", "").lower()


def project(observed: Any, desired: Any) -> Any:
    """`observed` reduced to the keys of `desired`, recursively.

    A key the user set that Azure does not report (a write-only secret) keeps the user's value,
    since it cannot be observed; strings equal but for case are reported as the user wrote them
    (ARM enums such as `Standard_LRS` are case-insensitive). Lists are projected item by item
    when their lengths match.
    """
    if isinstance(desired, dict) and isinstance(observed, dict):
        lowered = {k.lower(): k for k in observed}
        out: dict[str, Any] = {}
        for key, want in desired.items():
            real = key if key in observed else lowered.get(key.lower())
            out[key] = want if real is None else project(observed[real], want)
        return out
    if isinstance(desired, list) and isinstance(observed, list) and len(desired) == len(observed):
        return [project(o, d) for o, d in zip(observed, desired, strict=True)]
    if isinstance(desired, str) and isinstance(observed, str) and desired.lower() == observed.lower():
        return desired
    if isinstance(desired, bool) or isinstance(observed, bool):
        return observed
    if isinstance(desired, int | float) and isinstance(observed, int | float) and desired == observed:
        return desired
    return observed


def user_metadata(observed: dict[str, str] | None, applied: dict[str, str]) -> dict[str, str]:
    """Storage metadata without cloudorch's own keys, keys spelt as the user spelt them."""
    spelling = {k.lower(): k for k in applied}
    out: dict[str, str] = {}
    for key, value in (observed or {}).items():
        if key.lower() in OWN_METADATA:
            continue
        out[spelling.get(key.lower(), key)] = value
    return out


def digests(data: bytes) -> tuple[bytes, str]:
    """(md5 digest, sha256 hex) of content."""
    return hashlib.md5(data, usedforsecurity=False).digest(), hashlib.sha256(data).hexdigest()
