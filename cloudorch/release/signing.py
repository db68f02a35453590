"""Signed approvals: what an approver signs, and checking a signature against `allowed_signers`.

An approval of an approval gate with `signed: true` counts only with an SSH signature (OpenSSH's
`ssh-keygen -Y`, the format git uses for signed commits) over `canonical_text`: plan name,
stage, version, the plan file's sha256, the approval's time and the approver. The gate verifies
it against the `allowed_signers` file kept beside the plan, and the identity it counts is the
principal that file names for the key, never what `CLOUDORCH_ACTOR` claimed. Runs `ssh-keygen`;
never prints, never records anything.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cloudorch.errors import ConfigError

#: the signature namespace (`-n`): a signature made for anything else never verifies here
NAMESPACE = "cloudorch-approval"
#: ssh-keygen answers locally; a wait longer than this is a hung agent or prompt
_TIMEOUT = 30.0


@dataclass(frozen=True)
class Signed:
    """The fields an approval signature covers, as recorded in the ledger event."""

    plan: str
    stage: str
    version: str
    plan_sha256: str
    at: str
    approver: str

    def text(self) -> str:
        return canonical_text(self)


def canonical_text(s: Signed) -> str:
    """One field per line, fixed order, `repr`-quoted so no value can forge another field's line."""
    fields = (
        ("plan", s.plan),
        ("stage", s.stage),
        ("version", s.version),
        ("plan_sha256", s.plan_sha256),
        ("at", s.at),
        ("approver", s.approver),
    )
    return "cloudorch approval v1\n" + "".join(f"{k}: {v!r}\n" for k, v in fields)


def plan_sha256(text: str) -> str:
    """What an approval binds to: the plan file exactly as written."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise ConfigError(
            "signed approvals need ssh-keygen, which is not on PATH",
            hint="install OpenSSH's client (e.g. apt-get install openssh-client)",
        )
    return found


def _run(args: list[str], data: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [_ssh_keygen(), *args],
            input=data,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            stdin=None if data is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"ssh-keygen {args[0]} {args[1]} did not finish within {_TIMEOUT:.0f}s",
            hint="a key with a passphrase needs ssh-agent; cloudorch never types one",
        ) from None


def sign(key: Path, text: str) -> str:
    """The armored SSH signature of `text` made with the private key file `key`."""
    if not key.is_file():
        raise ConfigError(f"--sign-key {key}: no such key file", hint="the private key, e.g. ~/.ssh/id_ed25519")
    proc = _run(["-Y", "sign", "-n", NAMESPACE, "-f", str(key)], text)
    if proc.returncode != 0 or "BEGIN SSH SIGNATURE" not in proc.stdout:
        why = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        raise ConfigError(f"could not sign the approval with {key}: {why}", hint="is it an SSH private key?")
    return proc.stdout


def _signature_file(folder: str, signature: str) -> str:
    path = Path(folder) / "approval.sig"
    path.write_text(signature, encoding="utf-8")
    return str(path)


def principals(signature: str, allowed_signers: Path) -> list[str]:
    """The principals `allowed_signers` lists for the key that made `signature` (none: not listed)."""
    with tempfile.TemporaryDirectory(prefix="cloudorch-sig-") as folder:
        sig = _signature_file(folder, signature)
        proc = _run(["-Y", "find-principals", "-s", sig, "-f", str(allowed_signers)])
    if proc.returncode != 0:
        return []
    return [p for line in proc.stdout.splitlines() for p in line.strip().split(",") if p]


def verify(signature: str, text: str, principal: str, allowed_signers: Path) -> str | None:
    """None when `signature` is `principal`'s valid signature of `text`; else why it is not."""
    if not signature.strip():
        return "no signature"
    with tempfile.TemporaryDirectory(prefix="cloudorch-sig-") as folder:
        sig = _signature_file(folder, signature)
        proc = _run(
            ["-Y", "verify", "-f", str(allowed_signers), "-I", principal, "-n", NAMESPACE, "-s", sig], text
        )
    if proc.returncode == 0:
        return None
    return "the signature does not verify against " + allowed_signers.name


def verified_principal(
    signature: str, text: str, allowed_signers: Path, allowed: tuple[str, ...]
) -> tuple[str | None, str]:
    """(principal, "") when `signature` verifies for a principal that may approve; else (None, why)."""
    if not signature.strip():
        return None, "not signed"
    names = principals(signature, allowed_signers)
    if not names:
        return None, f"signed with a key {allowed_signers.name} does not list"
    why = ""
    for name in [n for n in names if n in allowed] or names:
        problem = verify(signature, text, name, allowed_signers)
        if problem is None:
            if name not in allowed:
                return None, f"signed by {name}, who may not approve this stage"
            return name, ""
        why = problem
    return None, why
