"""The configured providers of one run: one `Provider` instance per provider block key.

A block key is a provider name (`aws`) or an alias (`aws.west`). Blocks are validated by the
provider's own Config model; errors point at the block in the plan file. Providers are
constructed lazily, only for the blocks a plan (or its state) uses.

In a run on one release stage, providers see addresses qualified by the stage (`dev.vpc`), while
state keeps plain ones (`vpc`): the `cloudorch:address` tag a provider writes, and finds again
after a crash, must tell dev's VPC from staging's in the same account.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from cloudorch.errors import ConfigError, Location
from cloudorch.provider.contract import Observed, Provider, ProviderContext, ReadRequest, ResourceType
from cloudorch.provider.registry import Registry


class ProviderSet:
    def __init__(
        self,
        registry: Registry,
        blocks: Mapping[str, Mapping[str, Any]],
        context: ProviderContext,
        *,
        locate: Callable[[str], Location | None] = lambda _key: None,
        scope: str | None = None,
    ) -> None:
        self.registry = registry
        self.blocks = blocks
        self.context = context
        self.locate = locate
        #: the release stage of this run: providers see `scope.address`
        self.scope = scope
        self._providers: dict[str, Provider] = {}
        self._scoped: dict[tuple[str, str], ResourceType[Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Provider:
        with self._lock:
            p = self._providers.get(key)
            if p is None:
                p = self._providers[key] = self._make(key)
            return p

    def _make(self, key: str) -> Provider:
        name, _, alias = key.partition(".")
        cls = self.registry.provider_class(name)
        block = self.blocks.get(key)
        if block is None and alias:
            raise ConfigError(
                f"provider block {key!r} is not defined",
                hint=f"add `providers: {{{key}: {{...}}}}` to the plan file",
                location=self.locate(key),
            )
        try:
            config = cls.Config.model_validate(dict(block or {}))
        except ValidationError as exc:
            from cloudorch.planfile.typecheck import provider_config_error

            field = ".".join(str(p) for p in exc.errors()[0]["loc"])
            loc = self.locate(key)
            where = Location(loc.file, loc.line, loc.column, f"providers.{key}.{field}") if loc else None
            raise provider_config_error(key, cls.Config, exc, where) from exc
        return cls(config, alias or name, self.context)

    def resource_type(self, provider_key: str, type_name: str) -> ResourceType[Any]:
        rt = self.get(provider_key).resource_type(type_name)
        if not self.scope:
            return rt
        with self._lock:
            found = self._scoped.get((provider_key, type_name))
            if found is None:
                found = self._scoped[(provider_key, type_name)] = _scoped_class(type(rt))(rt, self.scope)
            return found

    def used(self) -> dict[str, Provider]:
        return dict(self._providers)

    def close(self) -> None:
        for p in self._providers.values():
            # closing must never hide the command's real outcome
            with contextlib.suppress(Exception):
                p.close()


class _Scoped(ResourceType[Any]):
    """A resource type seen through a stage: every address it is given becomes `scope.address`."""

    def __init__(self, inner: ResourceType[Any], scope: str) -> None:
        super().__init__(inner.provider)
        self.inner = inner
        self.scope = scope

    def _q(self, address: str) -> str:
        return f"{self.scope}.{address}"

    def create(self, address: str, props: Any) -> Observed:
        return self.inner.create(self._q(address), props)

    def read(self, address: str, id: str, props: Any) -> Observed | None:
        return self.inner.read(self._q(address), id, props)

    def update(self, address: str, id: str, old: Any, new: Any) -> Observed:
        return self.inner.update(self._q(address), id, old, new)

    def delete(self, address: str, id: str, props: Any) -> None:
        self.inner.delete(self._q(address), id, props)

    def estimate_seconds(self, props: Any) -> float:
        return self.inner.estimate_seconds(props)

    def plan_update(self, prior: Observed, desired: Mapping[str, Any]) -> dict[str, Any]:
        return self.inner.plan_update(prior, desired)

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        return self.inner.plan_create(desired)

    def _read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        return self.inner.read_many([ReadRequest(self._q(r.address), r.id, r.properties) for r in requests])

    def _find(self, address: str, props: Any) -> Observed | None:
        return self.inner.find(self._q(address), props)

    def _import(self, address: str, id: str) -> Observed:
        return self.inner.import_(self._q(address), id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@functools.cache
def _scoped_class(inner: type[ResourceType[Any]]) -> type[_Scoped]:
    """A `_Scoped` subclass that overrides exactly what `inner` overrides (the engine checks which
    optional methods a type implements, e.g. `read_many`, by comparing them with the base's)."""
    ns: dict[str, Any] = {
        "type_name": inner.type_name,
        "Properties": inner.Properties,
        "attributes": inner.attributes,
        "description": inner.description,
        "recomputed_on_update": inner.recomputed_on_update,
    }
    for name, impl in (("read_many", _Scoped._read_many), ("find", _Scoped._find), ("import_", _Scoped._import)):
        if getattr(inner, name) is not getattr(ResourceType, name):
            ns[name] = impl
    return type(f"Scoped{inner.__name__}", (_Scoped,), ns)
