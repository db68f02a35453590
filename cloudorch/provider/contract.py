"""The provider contract: what a provider plugin implements and what cloudorch promises it.

A provider knows the resource types of one cloud. This module is everything a plugin imports
from cloudorch: the base classes (`Provider`, `ResourceType`, `Observed`), the classified errors
it raises, and the helpers every cloud needs (classifying an HTTP failure, reading `Retry-After`,
the first line of an SDK message). A resource type is narrow on purpose (Terraform's provider
interface is the model): one request in, one `Observed` out, errors raised as `ProviderError`s.

The contract is versioned (`CONTRACT_VERSION`, major.minor). A minor version only adds what a
plugin may ignore; a major version breaks plugins. Each `Provider` subclass declares the range it
implements in `contract` (for example `">=2.0,<3"`), and `cloudorch.provider.registry` refuses a
plugin whose range excludes the running contract. A plugin's distribution pins the cloudorch
releases that carry that contract: cloudorch 0.1.x carries contract 2.x (contract 1 was the
unversioned `cloudorch.providers` module), so a plugin for contract 2 depends on
`cloudorch>=0.1,<0.2`. Raise the contract's major version together with cloudorch's minor one.

2.1 added `ResourceType.find_all`, `can_find`, `finish_create` and `PartialCreate` (how a
multi-step create says its object exists although a later step failed), and
`recomputed_on_update`, `plan_update`, `plan_create` and `RECOMPUTED` (what an update or a create
will know, so only the attributes the cloud recomputes are unknown at plan).

2.2 added `ResourceType.lookup`, `can_lookup`, `LookupQuery` and `matches_filter`: reading objects
cloudorch does not manage, for the plan file's `data:` entries. A type without `lookup` keeps
working; using it in `data:` is a located error.
"""

from __future__ import annotations

import datetime
import email.utils
import functools
import math
import os
import random
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

# the error classes are defined with the rest of the hierarchy (the CLI's one handler knows them
# there); a plugin imports them from here, with the rest of the contract
from cloudorch.errors import ConfigError, ErrorKind, ProviderError, ProviderNotFoundError

__all__ = [
    "CONTRACT_VERSION",
    "RECOMPUTED",
    "ConfigError",
    "ContractMismatchError",
    "ErrorKind",
    "LookupQuery",
    "Observed",
    "PartialCreate",
    "Provider",
    "ProviderContext",
    "ProviderError",
    "ProviderNotFoundError",
    "ReadRequest",
    "ResourceProperties",
    "ResourceType",
    "classify_status",
    "contract_admits",
    "contract_text",
    "contract_wants_newer",
    "declares_update_plan",
    "first_line",
    "force_new_fields",
    "matches_filter",
    "parse_retry_after",
    "prop",
    "retry_after",
    "sensitive_fields",
]

#: The version of this contract, (major, minor); see the module docstring for what each means.
CONTRACT_VERSION: tuple[int, int] = (2, 2)


def contract_text(version: tuple[int, int] = CONTRACT_VERSION) -> str:
    """`2.0` for (2, 0): how messages show a contract version."""
    return f"{version[0]}.{version[1]}"


class ContractMismatchError(ProviderNotFoundError):
    """An installed provider implements a contract version this cloudorch does not run."""


# --------------------------------------------------------------------------- property models


def prop(
    default: Any = ...,
    *,
    description: str,
    force_new: bool = False,
    sensitive: bool = False,
    **kwargs: Any,
) -> Any:
    """A documented property of a resource type.

    `force_new`: changing it replaces the resource (delete + create) instead of updating it.
    `sensitive`: its value is masked in output and stored in state only as a hash.
    """
    extra: dict[str, Any] = {}
    if force_new:
        extra["force_new"] = True
    if sensitive:
        extra["sensitive"] = True
    return Field(default, description=description, json_schema_extra=extra or None, **kwargs)


class ResourceProperties(BaseModel):
    """Base of every resource type's properties model: unknown properties are an error."""

    model_config = ConfigDict(extra="forbid")


@functools.cache
def _flag_fields(model: type[BaseModel], flag: str) -> frozenset[str]:
    names = set()
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get(flag):
            names.add(name)
    return frozenset(names)


def force_new_fields(model: type[BaseModel]) -> frozenset[str]:
    return _flag_fields(model, "force_new")


def sensitive_fields(model: type[BaseModel]) -> frozenset[str]:
    return _flag_fields(model, "sensitive")


# --------------------------------------------------------------------------- the contract


@dataclass(frozen=True)
class Observed:
    """What a resource type saw of one object in the cloud.

    `properties` are in the shape of the type's Properties model; a key the cloud cannot report
    (a write-only value) is simply absent and is never diffed. `attributes` are computed values
    others can reference as `${resources.NAME.ATTR}` (an ARN, an etag); properties can be
    referenced the same way.
    """

    id: str
    properties: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReadRequest:
    address: str
    id: str
    properties: BaseModel  # the properties last applied, from state


@dataclass(frozen=True)
class LookupQuery:
    """What a data source asks of `ResourceType.lookup`: the object with `id`, and/or every object
    whose properties and attributes match `filter` (see `matches_filter`)."""

    id: str | None = None
    filter: Mapping[str, Any] = field(default_factory=dict)


def matches_filter(seen: Observed, filter: Mapping[str, Any]) -> bool:
    """Whether an object answers a data source's `filter`.

    Each key names a property or an attribute (`id` is the object's id). A mapping matches when
    every pair it lists is present (`tags: {Name: shared}` matches an object with more tags);
    any other value must be equal.
    """
    for key, want in filter.items():
        if key == "id" and key not in seen.attributes:
            have: Any = seen.id
        elif key in seen.properties:
            have = seen.properties[key]
        elif key in seen.attributes:
            have = seen.attributes[key]
        else:
            return False
        if isinstance(want, Mapping):
            if not isinstance(have, Mapping) or any(have.get(k) != v for k, v in want.items()):
                return False
        elif have != want:
            return False
    return True


@dataclass(frozen=True)
class ProviderContext:
    """What a provider may know about the run: where the plan lives, whether it is the sandbox."""

    plan_dir: Path = field(default_factory=Path.cwd)
    sandbox: bool = False
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


# --------------------------------------------------------------------------- update plans


class _Recomputed:
    """The value of an attribute the cloud computes during the update (see `plan_update`)."""

    def __repr__(self) -> str:
        return "RECOMPUTED"


class _Undeclared(frozenset[str]):
    """The base class's `recomputed_on_update`: a type that did not declare its own."""


#: an attribute value known only after the update (returned by `ResourceType.plan_update`)
RECOMPUTED: Any = _Recomputed()
UNDECLARED: frozenset[str] = _Undeclared()



P = TypeVar("P", bound=BaseModel)
T = TypeVar("T")


class ResourceType(ABC, Generic[P]):
    """CRUD for one kind of cloud object. Instances are bound to one configured provider.

    Every method is idempotent where the cloud allows. `create` tags the object with its
    address (`cloudorch:address`) or uses a deterministic token, so `find` can recover it after
    a crash between the cloud call and the journal line.
    """

    type_name: ClassVar[str]
    Properties: ClassVar[type[BaseModel]]
    #: attribute name -> description, for reference checking and `cloudorch schema`
    attributes: ClassVar[Mapping[str, str]] = {}
    #: one sentence for `cloudorch providers` and the JSON Schema
    description: ClassVar[str] = ""
    #: True for a type whose objects exist only in state (no cloud object): its `read` gives
    #: back exactly the recorded id, properties and attributes, so a refresh takes the record
    #: as it is without calling the type
    state_only: ClassVar[bool] = False

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    @abstractmethod
    def create(self, address: str, props: P) -> Observed: ...

    @abstractmethod
    def read(self, address: str, id: str, props: P) -> Observed | None:
        """Return what the cloud has now, or None if the object is gone."""

    @abstractmethod
    def update(self, address: str, id: str, old: P, new: P) -> Observed:
        """Change the object in place; only called when no force-new property changed."""

    @abstractmethod
    def delete(self, address: str, id: str, props: P) -> None:
        """Delete and wait until it is really gone; deleting a missing object is not an error."""

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        """Refresh many objects; override where one list call can answer for many."""
        return [self.read(r.address, r.id, r.properties) for r in requests]  # type: ignore[arg-type]

    def import_(self, address: str, id: str) -> Observed:
        raise ConfigError(
            f"resource type {self.type_name} does not support import",
            hint="create it with cloudorch instead, or remove it from the cloud",
        )

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        """Every object of this type answering `query`, read with the same shape as `import_`.

        For data sources: `address` is `data.NAME` (for messages only). An object that does not
        exist is simply not listed ([] when none); the engine decides what none or several mean.
        A type lists candidates however its cloud does it cheaply (server-side filters where it
        has them) and keeps those `matches_filter` accepts. Optional: types without it cannot be
        used under `data:` (`can_lookup`).
        """
        raise ConfigError(
            f"resource type {self.type_name} does not support lookup",
            hint="data sources can read the types whose provider implements lookup (see docs/providers.md)",
        )

    @property
    def can_lookup(self) -> bool:
        """Whether this type implements `lookup` (contract 2.2), so it can be a data source."""
        return type(self).lookup is not ResourceType.lookup

    def find(self, address: str, props: P) -> Observed | None:
        """Find an object a crashed create may have made (by tag or token); None if unknown."""
        return None

    # -- finding what a create made, and partial creates (see PartialCreate below) --------

    @property
    def can_find(self) -> bool:
        """Whether `find` can look at all (a type that cannot is never retried blindly)."""
        return type(self).find is not ResourceType.find or type(self).find_all is not ResourceType.find_all

    def find_all(self, address: str, props: P) -> list[Observed]:
        """Every object of `address` the cloud has (by tag or token): after a replace there may
        be an old and a new one, told apart by id. Types that tag by address override this."""
        found = self.find(address, props)
        return [found] if found is not None else []

    def finish_create(self, address: str, object_id: str, step: Callable[[], T]) -> T:
        """Run the steps after a create's first call (settings, waits, the read back).

        They are idempotent, so each failure classified retryable is retried alone, with
        backoff; if they still fail, `PartialCreate` carries the id of the object that exists.
        """
        attempts = max(1, self.provider.max_attempts)
        for attempt in range(1, attempts + 1):
            try:
                return step()
            except Exception as exc:
                err = self.provider.classify(exc, address)
                if err.retryable and attempt < attempts:
                    time.sleep(min(20.0, 0.2 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
                    continue
                raise PartialCreate(
                    f"{address}: {object_id} was created, then a later step failed: {err.message}",
                    object_id=object_id,
                    address=address,
                    hint=err.hint,
                    cause=exc,
                ) from exc
        raise AssertionError("unreachable")

    def estimate_seconds(self, props: P) -> float:
        """How long an operation usually takes; the scheduler's critical-path weight."""
        return 1.0


    # -- what an in-place update recomputes (the planner's precise unknowns) ------------------
    #: attributes the cloud gives a new value on an in-place update (an etag, a version, a
    #: last-modified time). Every other attribute keeps its value across the update, so a
    #: dependent that references it (an id, an ARN, a name) is not touched. Each type sets this
    #: in its own class body, even when empty: `declares_update_plan` checks it.
    recomputed_on_update: ClassVar[frozenset[str]] = UNDECLARED

    def plan_update(self, prior: Observed, desired: Mapping[str, Any]) -> dict[str, Any]:
        """The attributes the object will have after an in-place update to `desired`.

        `prior` is the object as refreshed (or as state recorded it); `desired` the properties
        the update will send, JSON-shaped, with unresolved values where the plan does not know
        them yet. A value the cloud computes anew is `RECOMPUTED`. The default keeps every
        attribute except those in `recomputed_on_update` and those named like a property whose
        value changes; a type whose update recomputes nothing it cannot predict overrides this.
        """
        recomputed = self.recomputed_on_update
        if recomputed is UNDECLARED:
            # a type that never said: every attribute may change, as before the contract had this
            return {k: RECOMPUTED for k in prior.attributes}
        out: dict[str, Any] = {}
        for key, value in prior.attributes.items():
            if key in recomputed or (key in desired and desired[key] != prior.properties.get(key, value)):
                out[key] = RECOMPUTED
            else:
                out[key] = value
        for key in recomputed:
            out.setdefault(key, RECOMPUTED)
        return out

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        """The attributes a new object will have that the plan can know already; others are unknown.

        The default knows none (an id, an ARN are the cloud's to choose); a type whose
        attributes follow from its properties alone says so here.
        """
        return {}



def declares_update_plan(cls: type[ResourceType[Any]]) -> bool:
    """Whether a resource type says, in its own class body, what an update recomputes."""
    return "recomputed_on_update" in vars(cls) and vars(cls)["recomputed_on_update"] is not UNDECLARED


class PartialCreate(ProviderError):
    """A create made its object (`object_id`) but a later step failed.

    The engine never retries such a create (that would make a second object): it records the
    object tainted, so the next plan replaces it, as Terraform does.
    """

    def __init__(
        self,
        message: str,
        *,
        object_id: str,
        address: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        hint: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        tainted = "the object is kept in state as tainted; the next apply replaces it"
        super().__init__(
            message,
            kind=ErrorKind.FATAL,
            address=address,
            hint=f"{hint}; {tainted}" if hint else tainted,
            cause=cause,
        )
        self.object_id = object_id
        self.attributes = dict(attributes or {})


class Provider(ABC):
    """A configured provider block (`providers.aws`, `providers.aws.west`)."""

    name: ClassVar[str]
    #: the distribution to install, for error hints
    package: ClassVar[str]
    #: the contract versions this provider implements, e.g. ">=2.0,<3" (see `contract_admits`)
    contract: ClassVar[str]
    Config: ClassVar[type[BaseModel]]
    resource_types: ClassVar[Sequence[type[ResourceType[Any]]]]
    default_concurrency: ClassVar[int] = 16
    #: attempts per operation for throttled/transient errors (the engine retries, with backoff)
    default_max_attempts: ClassVar[int] = 5

    def __init__(self, config: BaseModel, alias: str, context: ProviderContext) -> None:
        self.config = config
        self.alias = alias
        self.context = context
        self._types: dict[str, ResourceType[Any]] = {}

    @property
    def max_concurrency(self) -> int:
        value = getattr(self.config, "max_concurrency", None)
        return int(value) if value else self.default_concurrency

    @property
    def max_attempts(self) -> int:
        value = getattr(self.config, "max_attempts", None)
        return int(value) if value else self.default_max_attempts

    @classmethod
    def type_class(cls, type_name: str) -> type[ResourceType[Any]] | None:
        for rt in cls.resource_types:
            if rt.type_name == type_name:
                return rt
        return None

    def resource_type(self, type_name: str) -> ResourceType[Any]:
        rt = self._types.get(type_name)
        if rt is None:
            cls = self.type_class(type_name)
            if cls is None:
                raise ConfigError(f"provider {self.name} has no resource type {type_name}")
            rt = self._types[type_name] = cls(self)
        return rt

    def check_health(self, kind: str, spec: Mapping[str, Any]) -> tuple[bool, str]:
        """Answer a release health check of this provider's cloud: (passed, what was seen).

        `kind` is the check's name in the plan file (`aws_alarms` for the `aws` provider); `spec`
        its settings. Providers that offer checks override this; the release gates call it, so
        the core reads a cloud's health without importing its SDK. A check that cannot be
        answered (bad spec) raises ConfigError; a cloud call that fails raises ProviderError.
        """
        raise ConfigError(
            f"provider {self.name} offers no health check {kind!r}",
            hint="built-in checks are http and command; see the provider's README for its checks",
        )

    def classify(self, exc: BaseException, address: str | None = None) -> ProviderError:
        """Turn an SDK exception into a classified ProviderError; providers override this."""
        if isinstance(exc, ProviderError):
            return exc
        return ProviderError(f"{type(exc).__name__}: {exc}", kind=ErrorKind.FATAL, address=address, cause=exc)

    @contextmanager
    def errors(self, address: str, what: str) -> Iterator[None]:
        """Turn any SDK exception raised inside into a classified ProviderError naming `what` was done.

        The message reads `ADDRESS: WHAT: DETAIL`; errors cloudorch already classified pass unchanged.
        """
        try:
            yield
        except (ProviderError, ConfigError):
            raise
        except Exception as exc:
            error = self.classify(exc, address)
            detail = error.message.removeprefix(f"{address}: ")
            error.message = f"{address}: {what}: {detail}"
            error.args = (error.message,)
            raise error from exc

    def close(self) -> None:
        """Release clients and threads; called once at the end of a command."""
        return None


# --------------------------------------------------------------------------- contract versions

_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\d+)(?:\.(\d+))?\s*$")


def _clauses(spec: str) -> list[tuple[str, tuple[int, int]]]:
    clauses = []
    for part in spec.split(","):
        m = _CLAUSE.match(part)
        if m is None:
            raise ValueError(f"cannot read {part.strip()!r} in contract range {spec!r} (write e.g. '>=2.0,<3')")
        clauses.append((m.group(1), (int(m.group(2)), int(m.group(3) or 0))))
    return clauses


def contract_admits(spec: str, version: tuple[int, int] = CONTRACT_VERSION) -> bool:
    """Whether a declared range such as `>=2.0,<3` includes `version`.

    A range is clauses joined by commas, each an operator (`>=`, `>`, `<=`, `<`, `==`, `!=`) and
    a version `MAJOR` or `MAJOR.MINOR` (a missing minor is 0). Raises ValueError if unreadable.
    """
    checks = {
        ">=": lambda v, b: v >= b,
        ">": lambda v, b: v > b,
        "<=": lambda v, b: v <= b,
        "<": lambda v, b: v < b,
        "==": lambda v, b: v == b,
        "!=": lambda v, b: v != b,
    }
    return all(checks[op](version, bound) for op, bound in _clauses(spec))


def contract_wants_newer(spec: str, version: tuple[int, int] = CONTRACT_VERSION) -> bool:
    """Whether `spec` excludes `version` because it asks for a later contract (a lower bound fails)."""
    lower = {">=": lambda v, b: v >= b, ">": lambda v, b: v > b, "==": lambda v, b: v >= b}
    return any(op in lower and not lower[op](version, bound) for op, bound in _clauses(spec))


# --------------------------------------------------------------------------- helpers every cloud needs


def classify_status(
    status: int | None,
    *,
    throttled: bool = False,
    conflict: bool = False,
    transient: bool = False,
) -> ErrorKind:
    """The kind of a failed cloud call, by one rule for every cloud.

    The flags carry what only the cloud knows (its error codes, its messages); the HTTP status
    carries the rest. In this order: throttled (HTTP 429 or `throttled`), conflict (`conflict`:
    the object is busy; HTTP 409 alone is not enough, clouds also send it for a name taken),
    transient (HTTP 408, any 5xx, or `transient`), else fatal.
    """
    code = status or 0
    if throttled or code == 429:
        return ErrorKind.THROTTLED
    if conflict:
        return ErrorKind.CONFLICT
    if transient or code == 408 or code >= 500:
        return ErrorKind.TRANSIENT
    return ErrorKind.FATAL


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header value, or None when there is none to honour.

    Both forms of RFC 9110 section 10.2.3: delta-seconds (`120`; a decimal is accepted) and an
    HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`, or the obsolete RFC 850 and asctime forms, read as
    GMT). A date in the past means "now" (0.0). A negative or non-finite number, or anything
    unreadable, is None, so the engine falls back to its own backoff. The result is not capped:
    `cloudorch.engine.retry` bounds every wait.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # `-0000` and asctime dates carry no zone; HTTP dates are always GMT
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """`parse_retry_after` of the `Retry-After` header in `headers`, looked up in any letter case."""
    if not headers:
        return None
    value = headers.get("Retry-After")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    return parse_retry_after(value, now=now)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (SDK messages run on), or its class name if empty."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__
