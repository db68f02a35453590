"""Finding a fleet's stacks: plan files named on the command line, folders searched for plan files,
and `fleet.yaml` files that list stacks with globs, stages, tags and per-account limits.

A stack is one plan file in one stage (`name` or `name.stage`); the stacks it reads are found in
its `stacks:` section, so the fleet's order needs no state and no cloud call.
"""

from __future__ import annotations

import glob as globs
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloudorch.errors import ConfigError, Location
from cloudorch.planfile.limits import InputLimits
from cloudorch.planfile.source import parse_yaml, read_bounded

FLEET_FILE_NAMES = ("fleet.yaml", "fleet.yml")
#: folders never searched for plan files
_SKIP_DIRS = frozenset({".cloudorch", ".git", "node_modules", ".venv", "__pycache__"})
#: files a folder holds that are never stacks (a module's own file is instantiated by plans)
_NOT_PLANS = frozenset({*FLEET_FILE_NAMES, "module.yaml", "module.yml"})
_REMOTE_SCHEMES = ("s3://", "gs://", "azblob://")


@dataclass(frozen=True)
class Stack:
    """One plan file in one stage: the unit a fleet runs, locks and reports."""

    name: str
    plan_file: Path
    stage: str | None = None
    tags: tuple[str, ...] = ()
    #: the concurrency group (`account:` in fleet.yaml; default: the plan's providers, e.g. `aws`)
    account: str | None = None
    #: (plan file, stage) of each stack this one reads through `${stacks.*}`
    reads: tuple[tuple[Path, str | None], ...] = ()
    #: state lives in a remote backend (S3, GCS, Azure Blob), not on this disk
    remote_state: bool = False
    vars: tuple[tuple[str, str], ...] = ()


@dataclass
class Fleet:
    stacks: list[Stack]
    #: account -> at most this many of its stacks at once, across every worker
    limits: dict[str, int] = field(default_factory=dict)

    def by_name(self) -> dict[str, Stack]:
        return {s.name: s for s in self.stacks}


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    path: str = Field(description="A plan file, a folder or a glob, relative to fleet.yaml.")
    stages: list[str] | None = Field(None, description="The stages to run; default: every stage of the plan.")
    tags: list[str] = Field(default_factory=list)
    account: str | None = Field(None, description="Concurrency group; `limits:` bounds it.")
    vars: dict[str, str] = Field(default_factory=dict, description="`--var` values for these stacks.")


class _FleetFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    version: int = 1
    stacks: list[_Entry]
    limits: dict[str, int] = Field(default_factory=dict)


def discover(paths: Sequence[str | Path]) -> Fleet:
    """The fleet the command-line PATHs name (plan files, folders, fleet.yaml files)."""
    if not paths:
        raise ConfigError(
            "no stacks: name plan files, folders or a fleet.yaml", hint="e.g. `cloudorch fleet plan stacks/`"
        )
    found: list[Stack] = []
    limits: dict[str, int] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ConfigError(f"{path}: no such file or folder", location=Location(str(path)))
        if path.is_file() and path.name in FLEET_FILE_NAMES:
            stacks, more = _from_fleet_file(path)
            found += stacks
            limits.update(more)
        elif path.is_dir():
            found += _stacks_of_plans(sorted(_plan_files_in(path)), _Entry(path=str(path)))
        else:
            found += _stacks_of_plans([path], _Entry(path=str(path)), explicit=True)
    return Fleet(_unique(found), limits)


def _from_fleet_file(path: Path) -> tuple[list[Stack], dict[str, int]]:
    data, source = parse_yaml(read_bounded(str(path), InputLimits.from_env()), str(path))
    try:
        doc = _FleetFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = tuple(err["loc"])
        raise ConfigError(
            f"{'.'.join(str(p) for p in where) or 'fleet file'}: {err['msg']}",
            location=source.location(where),
            hint="a fleet file is `stacks: [{path: GLOB, stages: [...], tags: [...], account: NAME}]` and `limits:`",
        ) from None
    out: list[Stack] = []
    base = path.parent.resolve()
    for i, entry in enumerate(doc.stacks):
        at = source.location(("stacks", i, "path"))
        why = _escape(entry.path)
        if why is not None:
            raise ConfigError(
                f"stacks[{i}].path {entry.path!r}: {why}",
                location=at,
                hint="a fleet file names stacks inside its own folder; put it higher up to reach more",
            )
        matched = sorted(globs.glob(str(base / entry.path), recursive=True))
        plans: list[Path] = []
        for m in matched:
            p = Path(m)
            if base not in p.resolve().parents:  # through a link out of the folder
                raise ConfigError(
                    f"stacks[{i}].path {entry.path!r} reaches {p} through a link out of {base}",
                    location=at,
                    hint="a fleet file names stacks inside its own folder",
                )
            if p.is_dir():
                plans += sorted(_plan_files_in(p))
            elif p.name not in _NOT_PLANS and _is_plan_file(p):
                plans.append(p)
        if not plans:
            raise ConfigError(
                f"stacks[{i}].path {entry.path!r} matches no plan file",
                location=source.location(("stacks", i, "path")),
                hint="paths and globs are relative to the fleet file",
            )
        out += _stacks_of_plans(plans, entry, explicit=True)
    for account, n in doc.limits.items():
        if n < 1:
            raise ConfigError(f"limits.{account} must be at least 1", location=source.location(("limits", account)))
    return out, dict(doc.limits)


def _escape(pattern: str) -> str | None:
    """Why a fleet file's path pattern could name files outside the fleet file's folder (None: it cannot)."""
    if pattern.startswith(("/", "~", "\\")) or (len(pattern) > 1 and pattern[1] == ":"):
        return "is absolute or starts with `~`"
    if any(part == ".." for part in pattern.replace("\\", "/").split("/")):
        return "leads out of the fleet file's folder through `..`"
    return None


def _plan_files_in(folder: Path) -> Iterable[Path]:
    for path in folder.rglob("*"):
        if any(part in _SKIP_DIRS for part in path.relative_to(folder).parts[:-1]):
            continue
        if path.suffix in (".yaml", ".yml") and path.name not in _NOT_PLANS and _is_plan_file(path):
            yield path


def _is_plan_file(path: Path) -> bool:
    """A plan file starts (after comments) with `version: 1` and has resources, outputs or stacks."""
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:65536]
    except OSError:
        return False
    lines = [ln for ln in head.splitlines() if ln and not ln.lstrip().startswith("#")]
    keys = {ln.split(":", 1)[0] for ln in lines if not ln[0].isspace() and ":" in ln}
    return "version" in keys and bool(keys & {"resources", "outputs", "stacks"})


def _stacks_of_plans(plans: Sequence[Path], entry: _Entry, *, explicit: bool = False) -> list[Stack]:
    out: list[Stack] = []
    for plan in plans:
        data, _ = parse_yaml(read_bounded(str(plan), InputLimits.from_env()), str(plan))
        if not isinstance(data, dict):
            if explicit:
                raise ConfigError("not a plan file (not a mapping)", location=Location(str(plan), 1, 1))
            continue
        name = str(data.get("name") or plan.stem)
        declared = list((data.get("stages") or {}).keys()) if isinstance(data.get("stages"), dict) else []
        stages: list[str | None] = list(entry.stages) if entry.stages else (list(declared) or [None])
        for stage in stages:
            if stage is not None and stage not in declared:
                raise ConfigError(
                    f"stage {stage!r} is not a stage of {plan}",
                    location=Location(str(plan)),
                    hint=f"its stages: {', '.join(declared) or 'none'}",
                )
        reads = _reads_of(plan, data)
        backend = data.get("backend") if isinstance(data.get("backend"), dict) else {}
        url = str((backend or {}).get("url") or "")
        providers = sorted({str(k).split(".")[0] for k in (data.get("providers") or {})}) if isinstance(
            data.get("providers"), dict
        ) else []
        for stage in stages:
            out.append(
                Stack(
                    name=name if stage is None else f"{name}.{stage}",
                    plan_file=plan.resolve(),
                    stage=stage,
                    tags=tuple(entry.tags),
                    account=entry.account or (",".join(providers) if providers else None),
                    reads=reads,
                    remote_state=url.startswith(_REMOTE_SCHEMES),
                    vars=tuple(sorted(entry.vars.items())),
                )
            )
    return out


def _reads_of(plan: Path, data: dict[str, Any]) -> tuple[tuple[Path, str | None], ...]:
    section = data.get("stacks")
    if not isinstance(section, dict):
        return ()
    out = []
    for spec in section.values():
        if isinstance(spec, dict) and isinstance(spec.get("plan"), str):
            stage = spec.get("stage")
            out.append(((plan.parent / spec["plan"]).resolve(), str(stage) if stage is not None else None))
    return tuple(out)


def _unique(stacks: list[Stack]) -> list[Stack]:
    """Drop a stack named twice (a file and its folder); two files with one name get their paths."""
    seen: dict[tuple[Path, str | None], Stack] = {}
    for s in stacks:
        seen.setdefault((s.plan_file, s.stage), s)
    kept = list(seen.values())
    names: dict[str, int] = {}
    for s in kept:
        names[s.name] = names.get(s.name, 0) + 1
    if all(n == 1 for n in names.values()):
        return kept
    base = Path.cwd()
    out = []
    for s in kept:
        if names[s.name] > 1:
            try:
                rel = s.plan_file.relative_to(base).with_suffix("")
            except ValueError:
                rel = s.plan_file.with_suffix("")
            s = Stack(**{**s.__dict__, "name": str(rel) + (f".{s.stage}" if s.stage else "")})
        out.append(s)
    return out
