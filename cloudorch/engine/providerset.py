"""The configured providers of one run: one `Provider` instance per provider block key.

A block key is a provider name (`aws`) or an alias (`aws.west`). Blocks are validated by the
provider's own Config model; errors point at the block in the plan file. Providers are
constructed lazily, only for the blocks a plan (or its state) uses.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from cloudorch.errors import ConfigError, Location
from cloudorch.providers import Provider, ProviderContext, Registry, ResourceType


class ProviderSet:
    def __init__(
        self,
        registry: Registry,
        blocks: Mapping[str, Mapping[str, Any]],
        context: ProviderContext,
        *,
        locate: Callable[[str], Location | None] = lambda _key: None,
    ) -> None:
        self.registry = registry
        self.blocks = blocks
        self.context = context
        self.locate = locate
        self._providers: dict[str, Provider] = {}
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
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            loc = self.locate(key)
            raise ConfigError(
                f"provider block {key}: {field}: {err['msg']}",
                hint="fields: " + ", ".join(sorted(cls.Config.model_fields)),
                location=Location(loc.file, loc.line, loc.column, f"providers.{key}.{field}")
                if loc
                else None,
            ) from exc
        return cls(config, alias or name, self.context)

    def resource_type(self, provider_key: str, type_name: str) -> ResourceType[Any]:
        return self.get(provider_key).resource_type(type_name)

    def used(self) -> dict[str, Provider]:
        return dict(self._providers)

    def close(self) -> None:
        for p in self._providers.values():
            # closing must never hide the command's real outcome
            with contextlib.suppress(Exception):
                p.close()
