"""Turn plan-file `policies:` entries and `--policy PATH`s into one `PolicySet`.

Owns entry validation, path resolution (relative to the plan file's folder), YAML rule files,
Rego policy ids and levels. Every mistake is a `PolicyLoadError` naming where it was written;
nothing is evaluated here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudorch.errors import ConfigError, Location
from cloudorch.planfile.limits import InputLimits
from cloudorch.planfile.source import parse_yaml, read_bounded
from cloudorch.policy.builtin import RULES, BuiltinRule, Match
from cloudorch.policy.model import Level, PolicyInfo, PolicyLoadError
from cloudorch.policy.policyset import PolicySet
from cloudorch.policy.rego import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT,
    RegoEngine,
    RegoModule,
    RegoRule,
    read_module,
    rego_files,
)

PATH_KEYS = frozenset({"path", "level", "namespace", "id", "full_input", "timeout", "max_memory_mb"})
BUILTIN_KEYS = frozenset({"id", "rule", "level", "match", "description"})
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class _Collected:
    builtins: list[BuiltinRule] = field(default_factory=list)
    modules: list[RegoModule] = field(default_factory=list)
    rules: list[RegoRule] = field(default_factory=list)
    full_input: bool = False
    seen_modules: set[str] = field(default_factory=set)
    seen_rules: set[tuple[str, str]] = field(default_factory=set)


def load_policies(
    entries: Sequence[Mapping[str, Any]] | None,
    *,
    base_dir: str | os.PathLike[str] = ".",
    extra_paths: Sequence[str | os.PathLike[str]] = (),
    context: Mapping[str, Mapping[str, Any]] | None = None,
    plan_file: str | None = None,
    default_level: Level = Level.MANDATORY,
    rego_workers: int | None = None,
) -> PolicySet:
    """Load every policy a command uses; compile the Rego ones once.

    `entries` is the plan file's parsed `policies:` list; `extra_paths` the `--policy` flags
    (relative to the working directory); `context` maps provider block keys to their config, for
    rules that fall back on a provider's region or default tags. `plan_file` only names the
    plan file in error messages.
    """
    base = Path(base_dir)
    where_file = plan_file or "policies"
    out = _Collected()
    for i, entry in enumerate(entries or ()):
        where = f"{where_file} (policies[{i}])"
        loc = Location(where_file, field=f"policies[{i}]")
        if not isinstance(entry, Mapping):
            raise PolicyLoadError(
                f"{where}: a policy entry must be a mapping",
                location=loc,
                hint="write {path: policies/, level: mandatory} or {id: ..., rule: ..., level: ...}",
            )
        if "path" in entry:
            _load_path_entry(entry, base, where, out, context, default_level)
        elif "rule" in entry:
            out.builtins.append(_builtin(entry, where, context, default_level=default_level))
        else:
            raise PolicyLoadError(
                f"{where}: a policy entry needs `path` (Rego or YAML rule files) or `rule` (a built-in rule)",
                location=loc,
                hint=f"built-in rules: {', '.join(RULES)}",
            )
    for extra in extra_paths:
        _load_path_entry({"path": str(extra)}, Path.cwd(), f"--policy {extra}", out, context, default_level)

    ids: dict[str, PolicyInfo] = {}
    for rule in out.builtins:
        if rule.info.id in ids:
            raise PolicyLoadError(
                f"{rule.where}: policy id {rule.info.id!r} is used twice", hint="give each policy a unique `id`"
            )
        ids[rule.info.id] = rule.info
    for rr in out.rules:
        existing = ids.get(rr.policy_id)
        if existing is not None and existing.kind != "rego":
            raise PolicyLoadError(
                f"{rr.source}: Rego policy id {rr.policy_id!r} is already a built-in policy's id",
                location=Location(rr.source, rr.line),
            )
        if existing is None or (rr.name.startswith(("deny", "violation")) and existing.level is Level.ADVISORY):
            level = Level.ADVISORY if rr.name.startswith("warn") else rr.level
            ids[rr.policy_id] = PolicyInfo(rr.policy_id, level, "rego", rr.source, rr.line, rr.query)
    engine = (
        RegoEngine(out.modules, out.rules, full_input=out.full_input, workers=rego_workers) if out.modules else None
    )
    return PolicySet(list(ids.values()), out.builtins, engine)


def _shown(path: Path) -> str:
    """How a policy file is named in messages and reports: relative to the working directory if inside it."""
    if not path.is_absolute():
        return str(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _level(entry: Mapping[str, Any], where: str, default: Level) -> Level:
    return Level.parse(entry["level"], where=where) if entry.get("level") is not None else default


def _builtin(
    entry: Mapping[str, Any],
    where: str,
    context: Mapping[str, Mapping[str, Any]] | None,
    *,
    default_level: Level,
    source: str | None = None,
) -> BuiltinRule:
    rule_name = str(entry.get("rule"))
    cls = RULES.get(rule_name)
    if cls is None:
        raise PolicyLoadError(
            f"{where}: unknown built-in rule {rule_name!r}", hint=f"built-in rules: {', '.join(RULES)}"
        )
    policy_id = entry.get("id")
    if not isinstance(policy_id, str) or not policy_id.strip():
        raise PolicyLoadError(f"{where}: a built-in rule needs an `id` (used in reports and --override)")
    info = PolicyInfo(
        id=policy_id,
        level=_level(entry, where, default_level),
        kind=rule_name,
        source=source,
        description=str(entry.get("description") or cls.description),
    )
    match = Match.parse(entry.get("match"), where=where, default_types=cls.default_types)
    opts = {k: v for k, v in entry.items() if k not in BUILTIN_KEYS}
    return cls(info, match, opts, where=f"{where} [{policy_id}]", provider_configs=context)


def _load_path_entry(
    entry: Mapping[str, Any],
    base: Path,
    where: str,
    out: _Collected,
    context: Mapping[str, Mapping[str, Any]] | None,
    default_level: Level,
) -> None:
    unknown = set(entry) - PATH_KEYS
    if unknown:
        raise PolicyLoadError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))} in a path entry",
            hint=f"a path entry takes: {', '.join(sorted(PATH_KEYS))}",
        )
    raw_path = str(entry["path"])
    path = Path(raw_path)
    full = path if path.is_absolute() else base / path
    if not full.exists():
        raise PolicyLoadError(f"{where}: policy path {raw_path} does not exist (looked in {full})")
    explicit_level = Level.parse(entry["level"], where=where) if entry.get("level") is not None else None
    if entry.get("full_input"):
        out.full_input = True

    yaml_files: list[Path] = []
    if full.is_dir():
        yaml_files = sorted(p for p in full.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
    elif full.suffix in YAML_SUFFIXES:
        yaml_files = [full]
    elif full.suffix != ".rego":
        raise PolicyLoadError(f"{where}: {raw_path} is neither a .rego nor a YAML rule file")
    for yf in yaml_files:
        _load_rule_file(yf, explicit_level or default_level, out, context, strict=not full.is_dir())

    rego_paths = [p for p in rego_files(full) if p.suffix == ".rego" and not p.name.endswith("_test.rego")]
    if not rego_paths:
        if not yaml_files:
            raise PolicyLoadError(f"{where}: no .rego or YAML rule files in {raw_path}")
        return
    namespace = str(entry.get("namespace") or "main")
    timeout, max_memory_mb = _limits(entry, where)
    modules = []
    for p in rego_paths:
        shown = _shown(p)
        key = str(p.resolve())
        mod = read_module(p, shown)
        if key not in out.seen_modules:
            out.seen_modules.add(key)
            out.modules.append(mod)
        modules.append(mod)
    in_ns = [m for m in modules if namespace == "*" or m.package == namespace]
    definers: dict[tuple[str, str], list[RegoModule]] = {}
    for mod in in_ns:
        for rule in mod.rules:
            definers.setdefault((mod.package, rule), []).append(mod)
    if not definers:
        raise PolicyLoadError(
            f"{where}: no deny, warn or violation rules in package {namespace} under {raw_path}",
            hint="Conftest-style policies use `package main`; set `namespace:` on the entry for another package",
        )
    for (package, rule), mods in definers.items():
        if (package, rule) in out.seen_rules:
            continue  # the same package is loaded by two entries: query it once
        out.seen_rules.add((package, rule))
        first = mods[0]
        if entry.get("id"):
            policy_id = str(entry["id"])
        elif "_" in rule:
            policy_id = rule.split("_", 1)[1]
        elif len(mods) == 1:
            policy_id = Path(first.file).stem
        else:
            policy_id = package
        level = explicit_level or first.level or default_level
        out.rules.append(
            RegoRule(package, rule, policy_id, level, first.file, first.rules[rule], timeout, max_memory_mb)
        )


_SECONDS_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m)?$")


def _limits(entry: Mapping[str, Any], where: str) -> tuple[float, int]:
    """An entry's `timeout` (seconds, or `500ms`/`5s`/`2m`) and `max_memory_mb` for its Rego rules."""
    timeout = DEFAULT_TIMEOUT
    raw = entry.get("timeout")
    if raw is not None:
        m = _SECONDS_RE.match(str(raw).strip()) if not isinstance(raw, bool) else None
        value = float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2) or "s"] if m else 0.0
        if value <= 0:
            raise PolicyLoadError(
                f"{where}: `timeout: {raw}` is not a positive duration", hint="write e.g. `timeout: 5s` or `500ms`"
            )
        timeout = value
    memory = DEFAULT_MEMORY_MB
    raw = entry.get("max_memory_mb")
    if raw is not None:
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 16:
            raise PolicyLoadError(
                f"{where}: `max_memory_mb: {raw}` is not a whole number of megabytes (16 or more)",
                hint=f"the default is {DEFAULT_MEMORY_MB}",
            )
        memory = raw
    return timeout, memory


def _load_rule_file(
    path: Path,
    level: Level,
    out: _Collected,
    context: Mapping[str, Mapping[str, Any]] | None,
    *,
    strict: bool,
) -> None:
    """A YAML file of built-in rules: a list of entries, or {level: ..., policies: [entries]}."""
    shown = _shown(path)
    limits = InputLimits.from_env()
    try:
        # the plan file's bounded loader: a rule file can come from a pull request too
        raw, _ = parse_yaml(read_bounded(str(path), limits), shown, limits)
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyLoadError(f"cannot read policy file {shown}: {exc}") from exc
    except ConfigError as exc:
        raise PolicyLoadError(f"{shown}: {exc.message}", location=exc.location, hint=exc.hint) from exc
    file_level = level
    if isinstance(raw, Mapping):
        if raw.get("level") is not None:
            file_level = Level.parse(raw["level"], where=shown)
        raw = raw.get("policies", raw.get("rules"))
    if not isinstance(raw, list) or not all(isinstance(e, Mapping) and "rule" in e for e in raw):
        if strict:
            raise PolicyLoadError(
                f"{shown}: not a policy rule file",
                location=Location(shown, 1),
                hint="write a list of {id, rule, level, match, ...} entries, or {level: ..., policies: [...]}",
            )
        return  # a folder may hold other YAML (data for Rego policies)
    for i, entry in enumerate(raw):
        out.builtins.append(
            _builtin(entry, f"{shown} (policies[{i}])", context, default_level=file_level, source=shown)
        )
