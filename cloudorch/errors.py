"""The one exception hierarchy of cloudorch.

Every failure a user can cause or meet is a `CloudorchError`: a message, an optional hint, an
optional source location, and the process exit code it maps to. The library raises these and
never prints; `cloudorch.cli` is the only place that turns them into text and exit codes.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Sequence
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    """The documented process exit codes (README.md, "Exit codes")."""

    OK = 0
    ERROR = 1
    CHANGES = 2
    DENIED = 3
    LOCKED = 4
    INTERRUPTED = 130


@dataclass(frozen=True)
class Location:
    """Where in a file something was written; `field` is a dotted path like `resources.web.properties.name`."""

    file: str
    line: int | None = None
    column: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.field:
            where += f" ({self.field})"
        return where


def did_you_mean(word: str, candidates: Sequence[str], *, cutoff: float = 0.6) -> str | None:
    """The hint for a misspelt name: the closest candidate, or None when nothing is close."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=cutoff)
    return f"did you mean `{close[0]}`?" if close else None


class CloudorchError(Exception):
    """A failure with a message for a human, a hint on what to do, and an exit code."""

    exit_code: int = ExitCode.ERROR

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        location: Location | None = None,
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.location = location
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        if self.location is not None:
            return f"{self.location}: {self.message}"
        return self.message

    def to_json(self) -> dict[str, object]:
        loc = self.location
        return {
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "exit_code": int(self.exit_code),
            "location": None
            if loc is None
            else {"file": loc.file, "line": loc.line, "column": loc.column, "field": loc.field},
        }


class ConfigError(CloudorchError):
    """The plan file, a variable file, a flag or a policy file is wrong."""


class ProviderNotFoundError(ConfigError):
    """A plan uses a provider or resource type that is not installed."""


class StateError(CloudorchError):
    """State is missing, corrupted, or does not match what a command expected."""


class StateLockedError(StateError):
    """Another process holds the state lock."""

    exit_code = ExitCode.LOCKED


class StalePlanError(StateError):
    """A saved plan was made against a state or plan file that has since moved."""


class PolicyDeniedError(CloudorchError):
    """A policy or a release gate denied the change."""

    exit_code = ExitCode.DENIED


class ApplyFailedError(CloudorchError):
    """Some operations of an apply failed; state holds every one that succeeded."""


class Interrupted(CloudorchError):
    """The user pressed Ctrl-C (or the process got SIGTERM); state was saved."""

    exit_code = ExitCode.INTERRUPTED


class ErrorKind(enum.StrEnum):
    """How the engine should react to a provider error."""

    THROTTLED = "throttled"  # retry after backoff, honour retry_after
    TRANSIENT = "transient"  # retry after backoff (5xx, timeouts, connection resets)
    CONFLICT = "conflict"  # the object is busy or already exists; retry a few times, then fail
    FATAL = "fatal"  # do not retry


class ProviderError(CloudorchError):
    """A cloud call failed; `kind` decides whether the engine retries it.

    `cause` keeps the SDK's exception so the message can be friendly without losing detail.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind = ErrorKind.FATAL,
        address: str | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind
        self.address = address
        self.retry_after = retry_after
        self.cause = cause

    @property
    def retryable(self) -> bool:
        return self.kind is not ErrorKind.FATAL
