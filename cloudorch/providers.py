"""Providers: the plugin contract, the registry, and the built-in `core` provider.

A provider knows the resource types of one cloud. It is found through the entry point group
`cloudorch.providers` and imported only when a plan uses it, so the core never imports a cloud
SDK. A resource type is narrow on purpose (Terraform's provider interface is the model): one
request in, one `Observed` out, errors raised as classified `ProviderError`s.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cloudorch.errors import ConfigError, ErrorKind, ProviderError, ProviderNotFoundError, did_you_mean

ENTRY_POINT_GROUP = "cloudorch.providers"


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

    def find(self, address: str, props: P) -> Observed | None:
        """Find an object a crashed create may have made (by tag or token); None if unknown."""
        return None

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


class Provider(ABC):
    """A configured provider block (`providers.aws`, `providers.aws.west`)."""

    name: ClassVar[str]
    #: the distribution to install, for error hints
    package: ClassVar[str]
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

    def close(self) -> None:
        """Release clients and threads; called once at the end of a command."""
        return None


# --------------------------------------------------------------------------- registry


def _known_package(name: str) -> str:
    return f"cloudorch-{name}"


class Registry:
    """Installed providers, discovered by entry point and imported on first use."""

    def __init__(self, extra: Mapping[str, type[Provider]] | None = None) -> None:
        self._entry_points: dict[str, metadata.EntryPoint] = {
            ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)
        }
        self._loaded: dict[str, type[Provider]] = dict(extra or {})
        if "core" not in self._entry_points:
            # running from a source tree that was never installed: core is always there
            self._loaded.setdefault("core", CoreProvider)

    def names(self) -> list[str]:
        return sorted(set(self._entry_points) | set(self._loaded))

    def provider_class(self, name: str) -> type[Provider]:
        cls = self._loaded.get(name)
        if cls is not None:
            return cls
        ep = self._entry_points.get(name)
        if ep is None:
            installed = ", ".join(self.names()) or "none"
            raise ProviderNotFoundError(
                f"provider {name!r} is not installed (installed: {installed})",
                hint=f"pip install {_known_package(name)}  (or: pip install 'cloudorch[{name}]')",
            )
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken plugin must not look like a missing one
            raise ProviderNotFoundError(
                f"provider {name!r} failed to load from {ep.value}: {exc}",
                hint=f"reinstall it: pip install --force-reinstall {_known_package(name)}",
            ) from exc
        if not (isinstance(loaded, type) and issubclass(loaded, Provider)):
            raise ProviderNotFoundError(
                f"entry point {ep.value} for provider {name!r} is not a Provider class"
            )
        self._loaded[name] = loaded
        return loaded

    def type_class(self, type_name: str) -> type[ResourceType[Any]]:
        """The class of a resource type such as `aws.s3_bucket`, loading only its provider."""
        provider_name, _, _ = type_name.partition(".")
        cls = self.provider_class(provider_name).type_class(type_name)
        if cls is None:
            known = self.type_names(provider_name)
            hint = did_you_mean(type_name, known, cutoff=0.5) or (
                "known types: " + ", ".join(known) if known else None
            )
            raise ConfigError(f"unknown resource type {type_name!r}", hint=hint)
        return cls

    def type_names(self, provider_name: str | None = None) -> list[str]:
        names = [provider_name] if provider_name else self.names()
        out: list[str] = []
        for n in names:
            try:
                out.extend(rt.type_name for rt in self.provider_class(n).resource_types)
            except ProviderNotFoundError:
                continue
        return sorted(out)


# --------------------------------------------------------------------------- the core provider


class CoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_concurrency: int | None = Field(None, ge=1, description="Most operations of this provider at once.")


class NullProperties(ResourceProperties):
    values: dict[str, Any] = prop(
        default_factory=dict, description="Any mapping; each key is exposed as an attribute."
    )
    triggers: dict[str, Any] = prop(
        default_factory=dict, force_new=True, description="A change to any value replaces the resource."
    )
    fail_on_create: bool = prop(False, description="Make create fail (to test failure paths).")
    fail_on_update: bool = prop(False, description="Make update fail (to test failure paths).")
    fail_on_delete: bool = prop(False, description="Make delete fail (to test failure paths).")


def _fail(op: str, address: str) -> ProviderError:
    return ProviderError(
        f"{op} of {address} failed (fail_on_{op} is set)", kind=ErrorKind.FATAL, address=address
    )


class NullResource(ResourceType[NullProperties]):
    """Holds values and nothing else, like Terraform's `terraform_data`."""

    type_name = "core.null"
    Properties = NullProperties
    description = "A resource with no effect: holds `values` as attributes; `triggers` force replacement."
    attributes = {"id": "A random id chosen at create.", "values": "The values mapping."}
    recomputed_on_update = frozenset()

    def plan_update(self, prior: Observed, desired: Mapping[str, Any]) -> dict[str, Any]:
        # every attribute is the new `values` or the id, which an update keeps
        return {**self.plan_create(desired), "id": prior.id}

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        values = desired.get("values")
        if not isinstance(values, dict):
            return {"values": values}
        out = {**values, "values": values}
        out.pop("id", None)  # the id is chosen at create, even when `values` has one
        return out

    def _observed(self, id: str, props: NullProperties) -> Observed:
        # the fields as they are: a refresh of many thousands of these is the hot path of a
        # no-change plan, and model_dump copies what nobody changes
        return Observed(
            id=id,
            properties={name: getattr(props, name) for name in NullProperties.model_fields},
            attributes={**props.values, "id": id, "values": props.values},
        )

    def create(self, address: str, props: NullProperties) -> Observed:
        if props.fail_on_create:
            raise _fail("create", address)
        return self._observed(uuid.uuid4().hex, props)

    def read(self, address: str, id: str, props: NullProperties) -> Observed | None:
        return self._observed(id, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        return [self._observed(r.id, r.properties) for r in requests]  # type: ignore[arg-type]

    def update(self, address: str, id: str, old: NullProperties, new: NullProperties) -> Observed:
        if new.fail_on_update:
            raise _fail("update", address)
        return self._observed(id, new)

    def delete(self, address: str, id: str, props: NullProperties) -> None:
        if props.fail_on_delete:
            raise _fail("delete", address)

    def import_(self, address: str, id: str) -> Observed:
        return self._observed(id, NullProperties())

    def estimate_seconds(self, props: NullProperties) -> float:
        return 0.0


class FileProperties(ResourceProperties):
    path: str = prop(description="File path; relative paths are relative to the plan file.", force_new=True)
    content: str = prop("", description="The file's text content.")
    mode: str | None = prop(
        None,
        description="Octal permission bits such as '0644'; unset leaves the default.",
        pattern=r"^0?[0-7]{3}$",
    )


class FileResource(ResourceType[FileProperties]):
    """A local file: a real, visible effect, so drift can be shown by editing it."""

    type_name = "core.file"
    Properties = FileProperties
    description = "A local text file with the given content and mode."
    attributes = {"id": "The absolute path.", "sha256": "Hash of the content.", "size": "Bytes."}
    recomputed_on_update = frozenset({"sha256", "size"})

    def plan_update(self, prior: Observed, desired: Mapping[str, Any]) -> dict[str, Any]:
        # the path forces replacement, so the id stays; the hash and size follow the content
        return {**prior.attributes, "sha256": RECOMPUTED, "size": RECOMPUTED, **self.plan_create(desired)}

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        import hashlib

        content = desired.get("content")
        if not isinstance(content, str):
            return {}
        data = content.encode("utf-8")
        return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}

    def _path(self, props: FileProperties) -> Path:
        p = Path(props.path).expanduser()
        return p if p.is_absolute() else (self.provider.context.plan_dir / p)

    def _observe(self, path: Path, want_mode: bool) -> Observed | None:
        import hashlib

        try:
            data = path.read_bytes()
            st = path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ProviderError(f"cannot read {path}: {exc.strerror}", kind=ErrorKind.FATAL) from exc
        text = data.decode("utf-8", errors="replace")
        props: dict[str, Any] = {"path": str(path), "content": text}
        if want_mode:
            props["mode"] = f"0{st.st_mode & 0o777:o}"
        return Observed(
            id=str(path.resolve()),
            properties=props,
            attributes={
                "id": str(path.resolve()),
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
            },
        )

    def _write(self, address: str, props: FileProperties) -> Observed:
        path = self._path(props)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.cloudorch-tmp")
            tmp.write_text(props.content, encoding="utf-8")
            if props.mode:
                os.chmod(tmp, int(props.mode, 8))
            os.replace(tmp, path)
        except OSError as exc:
            raise ProviderError(
                f"cannot write {path}: {exc.strerror}", kind=ErrorKind.FATAL, address=address, cause=exc
            ) from exc
        seen = self._observe(path, props.mode is not None)
        assert seen is not None
        # report the path as the user wrote it, so a relative path does not diff against absolute
        return Observed(seen.id, {**seen.properties, "path": props.path}, seen.attributes)

    def create(self, address: str, props: FileProperties) -> Observed:
        return self._write(address, props)

    def update(self, address: str, id: str, old: FileProperties, new: FileProperties) -> Observed:
        return self._write(address, new)

    def read(self, address: str, id: str, props: FileProperties) -> Observed | None:
        seen = self._observe(self._path(props), props.mode is not None)
        if seen is None:
            return None
        return Observed(seen.id, {**seen.properties, "path": props.path}, seen.attributes)

    def delete(self, address: str, id: str, props: FileProperties) -> None:
        try:
            self._path(props).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ProviderError(
                f"cannot delete {props.path}: {exc.strerror}", address=address, cause=exc
            ) from exc

    def find(self, address: str, props: FileProperties) -> Observed | None:
        return self.read(address, "", props)

    def import_(self, address: str, id: str) -> Observed:
        path = Path(id).expanduser()
        if not path.is_absolute():
            path = self.provider.context.plan_dir / path
        seen = self._observe(path, True)
        if seen is None:
            raise ProviderError(f"no file at {id}", kind=ErrorKind.FATAL, address=address)
        # record the path the way a plan file writes it (relative to the plan) when it can be
        try:
            shown = str(path.resolve().relative_to(self.provider.context.plan_dir.resolve()))
        except ValueError:
            shown = str(path)
        return Observed(seen.id, {**seen.properties, "path": shown}, seen.attributes)

    def estimate_seconds(self, props: FileProperties) -> float:
        return 0.001


class WaitProperties(ResourceProperties):
    seconds: float = prop(
        ge=0, description="Sleep this long on create, update and delete (simulates cloud latency)."
    )


class WaitResource(ResourceType[WaitProperties]):
    """Sleeps; used by benchmarks and tests to stand in for slow cloud calls."""

    type_name = "core.wait"
    Properties = WaitProperties
    description = "Sleeps `seconds` on create, update and delete."
    attributes = {"id": "A random id chosen at create."}
    recomputed_on_update = frozenset()

    def create(self, address: str, props: WaitProperties) -> Observed:
        time.sleep(props.seconds)
        id = uuid.uuid4().hex
        return Observed(id, props.model_dump(), {"id": id})

    def read(self, address: str, id: str, props: WaitProperties) -> Observed | None:
        return Observed(id, props.model_dump(), {"id": id})

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        return [Observed(r.id, r.properties.model_dump(), {"id": r.id}) for r in requests]

    def update(self, address: str, id: str, old: WaitProperties, new: WaitProperties) -> Observed:
        time.sleep(new.seconds)
        return Observed(id, new.model_dump(), {"id": id})

    def delete(self, address: str, id: str, props: WaitProperties) -> None:
        time.sleep(props.seconds)

    def estimate_seconds(self, props: WaitProperties) -> float:
        return props.seconds


class CoreProvider(Provider):
    """Built-in types with local or no effects: for demos, tests and benchmarks."""

    name = "core"
    package = "cloudorch"
    Config = CoreConfig
    resource_types = (NullResource, FileResource, WaitResource)
    # core operations are local; let the global --parallelism bound them
    default_concurrency = 1024
