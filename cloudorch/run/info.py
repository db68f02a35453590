"""What is installed: the plan-file JSON Schema, the providers with their resource types, and the
conformance table the kit's last run wrote (which guarantees each type was seen to keep)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudorch.errors import ConfigError


def schema(module: bool = False) -> dict[str, object]:
    """The JSON Schema of plan files, or with `module` of module files (`module.yaml`)."""
    from cloudorch.planfile import plan_json_schema
    from cloudorch.planfile.schema import module_json_schema
    from cloudorch.provider.registry import Registry

    return module_json_schema(Registry()) if module else plan_json_schema(Registry())


@dataclass(frozen=True)
class ResourceTypeInfo:
    type: str
    description: str
    properties: list[str]
    force_new: list[str]
    sensitive: list[str]
    attributes: list[str]


@dataclass(frozen=True)
class ProviderInfo:
    """One installed provider; `error` says why it could not be loaded (then `types` is empty)."""

    name: str
    package: str | None = None
    types: list[ResourceTypeInfo] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"name": self.name, "error": self.error, "types": []}
        return {"name": self.name, "package": self.package, "types": [t.__dict__.copy() for t in self.types]}


def providers_info() -> list[ProviderInfo]:
    from cloudorch.provider.contract import force_new_fields, sensitive_fields
    from cloudorch.provider.registry import Registry

    reg = Registry()
    out: list[ProviderInfo] = []
    for name in reg.names():
        try:
            cls = reg.provider_class(name)
        except ConfigError as exc:
            out.append(ProviderInfo(name, error=exc.message))
            continue
        types = [
            ResourceTypeInfo(
                type=rt.type_name,
                description=rt.description,
                properties=sorted(rt.Properties.model_fields),
                force_new=sorted(force_new_fields(rt.Properties)),
                sensitive=sorted(sensitive_fields(rt.Properties)),
                attributes=sorted(rt.attributes),
            )
            for rt in cls.resource_types
        ]
        out.append(ProviderInfo(name, package=cls.package, types=types))
    return out


# --------------------------------------------------------------------------- the conformance table

#: the checks of the conformance kit (cloudorch/testing/conformance.py), in the table's order
CONFORMANCE_CHECKS = (
    "create", "create_full", "update", "force_new", "delete", "import", "find", "read_many",
    "sensitive", "drift", "fault_transient", "fault_lost", "crash",
)
#: where the kit writes the table of its last run (under the directory pytest ran in)
CONFORMANCE_FILE = Path(".cloudorch") / "conformance.json"

_RANK = {"fail": 0, "skip": 1, "xfail": 2, "pass": 3, "n/a": 4}


def conformance_cell(statuses: Sequence[str]) -> str:
    """One table cell from the outcomes of a check's cases (`update[tags]`, `update[size]`): the
    worst, and how many passed when they differ."""
    if not statuses:
        return ""
    worst = min(statuses, key=lambda s: _RANK.get(s, 0))
    if len(set(statuses)) == 1:
        return worst
    return f"{worst} ({sum(s == 'pass' for s in statuses)}/{len(statuses)} pass)"


@dataclass(frozen=True)
class ConformanceRow:
    """One resource type in the table: `cells` by column of `CONFORMANCE_CHECKS`, `checks` as run."""

    type: str
    cells: dict[str, str]
    checks: dict[str, str]
    seed: int | None = None
    at: str | None = None


@dataclass(frozen=True)
class ConformanceTable:
    path: Path
    rows: list[ConformanceRow]

    def to_json(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "checks": list(CONFORMANCE_CHECKS),
            "types": [r.__dict__.copy() for r in self.rows],
        }


def conformance_rows(doc: Mapping[str, Any]) -> list[ConformanceRow]:
    rows = []
    for type_name, row in sorted(dict(doc.get("types", {})).items()):
        checks = {str(k): str(v) for k, v in dict(row.get("checks", {})).items()}
        by_column: dict[str, list[str]] = {}
        for check, status in checks.items():
            by_column.setdefault(check.split("[", 1)[0], []).append(status)
        cells = {c: conformance_cell(by_column.get(c, [])) for c in CONFORMANCE_CHECKS}
        rows.append(ConformanceRow(type_name, cells, checks, row.get("seed"), row.get("at")))
    return rows


def conformance(path: Path | None = None) -> ConformanceTable | None:
    """The conformance table of the kit's last run (`CONFORMANCE_FILE` under the current directory
    unless `path`); None when no run left one."""
    where = path if path is not None else Path.cwd() / CONFORMANCE_FILE
    try:
        text = where.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the conformance table {where}: {exc.strerror}") from exc
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or not isinstance(doc.get("types", {}), dict):
            raise ValueError("not a conformance table")
        rows = conformance_rows(doc)
    except (ValueError, AttributeError, TypeError) as exc:
        raise ConfigError(
            f"{where} is not a conformance table the kit wrote: {exc}",
            hint="run the providers' conformance tests again (pytest -k conformance) to rewrite it",
        ) from exc
    return ConformanceTable(where, rows)
