"""The provider registry: installed providers, found by entry point and imported on first use.

Every provider, `core` included, is a distribution's entry point in the group
`cloudorch.providers` (name = provider name, value = its `Provider` class). Listing providers
reads only package metadata; a provider's module is imported when a plan first uses it, so the
core never imports a cloud SDK. What is loaded is checked against the contract it claims
(`cloudorch.provider.contract`) and every missing piece is named, so a broken or out-of-date
plugin fails with a message, not a traceback deep in a run.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from cloudorch.errors import ConfigError, ProviderNotFoundError, did_you_mean
from cloudorch.provider.contract import (
    CONTRACT_VERSION,
    ContractMismatchError,
    Provider,
    ResourceType,
    contract_admits,
    contract_text,
    contract_wants_newer,
)

ENTRY_POINT_GROUP = "cloudorch.providers"

#: the module contract 1 lived in; a plugin importing it was built before contracts were versioned
_CONTRACT_1_MODULE = "cloudorch.providers"


def source_checkout() -> Path:
    """The folder holding the `cloudorch` package: a source checkout's root when run from one."""
    import cloudorch

    return Path(cloudorch.__file__).parents[1]


def install_command(
    name: str, package: str | None = None, *, upgrade: bool = False, checkout: Path | None = None
) -> str:
    """How to install provider `name`: from its folder in a source checkout, else from the index.

    In a checkout (`providers/NAME/pyproject.toml` beside the `cloudorch` package) the provider
    is developed in that folder, and the index's release is not what the checkout runs.
    """
    root = checkout or source_checkout()
    folder = root / "providers" / name
    if (folder / "pyproject.toml").is_file():
        return f"pip install -e {_shown(folder)}"
    if _declares(root / "pyproject.toml", name):  # `core`, in a checkout that was never installed
        return f"pip install -e {_shown(root)}"
    return f"pip install {'--upgrade ' if upgrade else ''}{package or f'cloudorch-{name}'}"


def _declares(pyproject: Path, name: str) -> bool:
    """Whether `pyproject` declares provider `name` in its entry points."""
    import tomllib

    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (OSError, ValueError):
        return False
    return name in project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {})


def install_hint(name: str, package: str | None = None, *, checkout: Path | None = None) -> str:
    """The hint of a missing provider `name` (see `install_command`)."""
    command = install_command(name, package, checkout=checkout)
    if command.startswith("pip install -e "):
        return command
    return f"{command}  (or: pip install 'cloudorch[{name}]')"


def _shown(folder: Path) -> str:
    """`folder` relative to the working directory when it lies below it (the usual `providers/aws`)."""
    try:
        return str(folder.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(folder)


def _origin(ep: metadata.EntryPoint) -> str:
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else ep.value


#: (what sys.path looked like, the entry points found there): scanning every installed
#: distribution's metadata costs ~30 ms, and a fleet worker builds a registry per stack
_SCANNED: tuple[tuple[tuple[str, float], ...], tuple[metadata.EntryPoint, ...]] | None = None


#: (provider name, entry point value) -> its class, once imported and checked against the contract
_CHECKED: dict[tuple[str, str], type[Provider]] = {}


def _path_key() -> tuple[tuple[str, float], ...]:
    out = []
    for entry in sys.path:
        try:
            out.append((entry, os.stat(entry or ".").st_mtime))  # installing a distribution touches its folder
        except OSError:
            out.append((entry, -1.0))
    return tuple(out)


def _installed_entry_points() -> tuple[metadata.EntryPoint, ...]:
    global _SCANNED
    key = _path_key()
    if _SCANNED is None or _SCANNED[0] != key:
        _SCANNED = (key, tuple(metadata.entry_points(group=ENTRY_POINT_GROUP)))
    return _SCANNED[1]


class Registry:
    """Installed providers, discovered by entry point and imported on first use.

    `extra` adds provider classes by name without an entry point (tests); they are trusted as given.
    """

    def __init__(self, extra: Mapping[str, type[Provider]] | None = None) -> None:
        self._entry_points: dict[str, list[metadata.EntryPoint]] = {}
        for ep in _installed_entry_points():
            self._entry_points.setdefault(ep.name, []).append(ep)
        self._loaded: dict[str, type[Provider]] = dict(extra or {})

    def names(self) -> list[str]:
        return sorted(set(self._entry_points) | set(self._loaded))

    def provider_class(self, name: str) -> type[Provider]:
        cls = self._loaded.get(name)
        if cls is not None:
            return cls
        eps = self._entry_points.get(name)
        if not eps:
            installed = ", ".join(self.names()) or "none"
            raise ProviderNotFoundError(
                f"provider {name!r} is not installed (installed: {installed})", hint=install_hint(name)
            )
        if len({ep.value for ep in eps}) > 1:
            raise ProviderNotFoundError(
                f"provider {name!r} is registered by more than one distribution: "
                + ", ".join(f"{_origin(ep)} ({ep.value})" for ep in eps),
                hint="uninstall all but one of them",
            )
        loaded = self._load(name, eps[0])
        self._loaded[name] = loaded
        return loaded

    def _load(self, name: str, ep: metadata.EntryPoint) -> type[Provider]:
        known = _CHECKED.get((name, ep.value))
        if known is not None:
            return known  # imported and checked already in this process
        origin = _origin(ep)
        try:
            loaded = ep.load()
        except ModuleNotFoundError as exc:
            if exc.name == _CONTRACT_1_MODULE:
                declared = "contract 1 (it imports cloudorch.providers)"
                raise _mismatch(name, origin, ep, declared, wants_newer=False) from exc
            raise _broken(name, origin, ep, exc) from exc
        except Exception as exc:  # a broken plugin must not look like a missing one
            raise _broken(name, origin, ep, exc) from exc
        if not (isinstance(loaded, type) and issubclass(loaded, Provider)):
            raise ProviderNotFoundError(
                f"entry point {ep.value} for provider {name!r} ({origin}) is not a Provider class",
                hint="a provider's entry point names its Provider subclass, e.g. `aws = \"cloudorch_aws:AwsProvider\"`",
            )
        _check(name, origin, ep, loaded)
        _CHECKED[(name, ep.value)] = loaded
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


# --------------------------------------------------------------------------- validation of a loaded plugin


def _broken(name: str, origin: str, ep: metadata.EntryPoint, exc: BaseException) -> ProviderNotFoundError:
    package = ep.dist.name if ep.dist is not None else f"cloudorch-{name}"
    return ProviderNotFoundError(
        f"provider {name!r} failed to load from {ep.value} ({origin}): {exc}",
        hint=f"reinstall it: pip install --force-reinstall {package}",
    )


def _mismatch(
    name: str, origin: str, ep: metadata.EntryPoint, declared: str, *, wants_newer: bool
) -> ContractMismatchError:
    running = contract_text(CONTRACT_VERSION)
    package = ep.dist.name if ep.dist is not None else f"cloudorch-{name}"
    if wants_newer:
        hint = (
            f"upgrade cloudorch to a release that runs that contract (pip install --upgrade cloudorch), "
            f"or install a {package} release for contract {CONTRACT_VERSION[0]}.x"
        )
    else:
        hint = (
            f"upgrade the plugin to one built for contract {CONTRACT_VERSION[0]}.x "
            f"({install_command(name, package, upgrade=True)}), or downgrade cloudorch to a release that runs "
            "the contract it was built for"
        )
    return ContractMismatchError(
        f"provider {name!r} ({origin}) implements provider {declared}, but this cloudorch runs contract {running}",
        hint=hint,
    )


def _check(name: str, origin: str, ep: metadata.EntryPoint, cls: type[Provider]) -> None:
    """Refuse a provider class built for another contract, or one missing what the contract asks for."""
    contract = getattr(cls, "contract", None)
    if isinstance(contract, str):
        try:
            admitted = contract_admits(contract)
        except ValueError as exc:
            raise ProviderNotFoundError(
                f"provider {name!r} ({origin}) declares an unreadable contract range: {exc}",
                hint="report it to the plugin's authors",
            ) from exc
        if not admitted:
            raise _mismatch(
                name, origin, ep, f"contract {contract}", wants_newer=contract_wants_newer(contract)
            )

    missing: list[str] = []
    if not isinstance(contract, str):
        example = f">={contract_text()},<{CONTRACT_VERSION[0] + 1}"
        missing.append(f"contract (the contract range it implements, e.g. {example!r})")
    for attr in ("name", "package"):
        if not isinstance(getattr(cls, attr, None), str):
            missing.append(attr)
    config = getattr(cls, "Config", None)
    if not (isinstance(config, type) and issubclass(config, BaseModel)):
        missing.append("Config (a pydantic model of its provider block)")
    types = getattr(cls, "resource_types", None)
    if not isinstance(types, list | tuple):
        missing.append("resource_types")
        types = ()
    for rt in types:
        if not (isinstance(rt, type) and issubclass(rt, ResourceType)):
            missing.append(f"resource_types: {rt!r} is not a ResourceType class")
            continue
        type_name = getattr(rt, "type_name", None)
        label = type_name if isinstance(type_name, str) else rt.__name__
        if not isinstance(type_name, str):
            missing.append(f"{label}.type_name")
        elif not type_name.startswith(f"{name}."):
            missing.append(f"{label}: a type name starting with {name + '.'!r}")
        properties = getattr(rt, "Properties", None)
        if not (isinstance(properties, type) and issubclass(properties, BaseModel)):
            missing.append(f"{label}.Properties (a pydantic model)")
        if inspect.isabstract(rt):
            missing.append(f"{label}: " + ", ".join(sorted(rt.__abstractmethods__)))
    if missing:
        raise ProviderNotFoundError(
            f"provider {name!r} ({origin}, {ep.value}) is incomplete; missing: " + "; ".join(missing),
            hint="report it to the plugin's authors, or reinstall it",
        )
    if cls.name != name:
        raise ProviderNotFoundError(
            f"entry point {name!r} ({origin}) names a provider called {cls.name!r}",
            hint=f"the entry point's name and {ep.value}.name must agree",
        )
