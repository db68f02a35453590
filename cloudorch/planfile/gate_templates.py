"""The templates of release gates as the plan file writes them: which references a gate may use,
how a command line is split before each argument is substituted, how a URL is shown masked, and
`check_templates`, which `validate` runs so a gate that could never run is refused with a location.

Grammar only: evaluating a gate belongs to `cloudorch.release.gates`. Imports nothing above
`planfile`; never prints.
"""

from __future__ import annotations

import functools
import json
import shlex
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cloudorch.errors import ConfigError
from cloudorch.planfile.expressions import ExpressionError, Reference, find_refs, iter_strings, navigate, resolve

if TYPE_CHECKING:
    from cloudorch.planfile import PlanSpec
    from cloudorch.planfile.source import FieldPath
    from cloudorch.planfile.stages import Gate, Stage, Stages

#: the roots a gate may refer to; `var`/`env` are resolved when the plan loads
GATE_ROOTS = frozenset({"var", "env", "stage", "release"})
HTTP_SCHEMES = ("http", "https")


@functools.lru_cache(maxsize=4)
def _raw_plan(text: str, file: str) -> Any:
    from cloudorch.planfile.source import parse_yaml

    return parse_yaml(text, file)[0]


def _raw_entry(plan: PlanSpec, stage: Stage, gate: Gate) -> tuple[Any, FieldPath] | None:
    """The entry of `gate` as written in the plan file (templates intact) and its field path."""
    section = "verify" if any(g is gate for g in stage.verify) else "gates"
    try:
        raw_stage = _raw_plan(plan.text, str(plan.path))["stages"][stage.name]
        entries = raw_stage[section]
        base: FieldPath = ("stages", stage.name, section)
        if isinstance(entries, dict):
            entries, base = entries["checks"], (*base, "checks")
        return entries[gate.index], (*base, gate.index)
    except (KeyError, IndexError, TypeError, ConfigError):
        return None


def raw_check(plan: PlanSpec, stage: Stage, gate: Gate) -> tuple[Any, FieldPath] | None:
    """The health check of `gate` as written in the plan file and its field path."""
    found = _raw_entry(plan, stage, gate)
    if found is None or gate.kind != "health":
        return None
    entry, base = found
    try:
        return entry["health"][gate.check], (*base, "health", str(gate.check))
    except (KeyError, TypeError):
        return None


def gate_lookup(plan: PlanSpec, stage: str, version: str | None) -> Callable[[Reference], Any]:
    """Values for the references of a stage's gates: vars, env, `stage.*` and `release.*`."""
    from cloudorch.planfile.expand import stage_context

    context = stage_context(plan, stage, version)

    def lookup(ref: Reference) -> Any:
        head = str(ref.path[0]) if ref.path else ""
        if ref.root == "var":
            if head not in plan.variable_values:
                raise ExpressionError(f"`{ref.text}`: no variable `{head}`", ref.text)
            return navigate(plan.variable_values[head], ref.path[1:], ref.text)
        if ref.root == "env":
            if head not in plan.env_values:
                raise ExpressionError(f"`{ref.text}`: the environment variable is not set", ref.text)
            return plan.env_values[head]
        if ref.root in ("stage", "release"):
            return navigate(context[ref.root], ref.path, ref.text)
        raise ExpressionError(
            f"`{ref.text}` cannot be used in a gate (only var, env, stage and release values)", ref.text
        )

    return lookup


def text_of(value: Any) -> str:
    """A resolved value as one command-line argument or URL part: JSON for lists and maps."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return str(json.dumps(value, sort_keys=True, default=str))


def command_argv(run: str | list[str], lookup: Callable[[Reference], Any]) -> list[str]:
    """The argv of a command check: a command line is split first (shell words), then each
    argument is substituted on its own; a list is substituted item by item.

    ValueError for a line that cannot be split (an unmatched quote), ExpressionError for a
    reference that cannot resolve.
    """
    words = shlex.split(run) if isinstance(run, str) else [str(w) for w in run]
    if not words:
        raise ValueError("the command is empty")
    return [text_of(resolve(word, lookup)) for word in words]


def mask_url(url: str) -> str:
    """`url` with its user info, query string and fragment hidden (they often carry tokens)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "(an unparsable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, "***" if parts.query else "", "***" if parts.fragment else "")
    )


def check_templates(plan: PlanSpec, stages: Stages) -> None:
    """Refuse, with a location, a gate reference that cannot resolve, a command line that cannot
    be split and a health URL that is not http(s) (what `validate` checks of the gates)."""
    version = (plan.release or {}).get("version")
    for stage in stages.by_name.values():
        # `--version` may set the release version only at promotion: any text stands in for it here
        lookup = gate_lookup(plan, stage.name, str(version) if version is not None else "VERSION")
        for gate in (*stage.gates, *stage.verify):
            if gate.kind != "health":
                entry = _raw_entry(plan, stage, gate)
                late = [
                    (sub, ref)
                    for sub, text in iter_strings(entry[0] if entry else None)
                    for ref in find_refs(text)
                    if ref.root in ("stage", "release")
                ]
                if entry is not None and late:
                    sub, ref = late[0]
                    raise ConfigError(
                        f"stage `{stage.name}` {gate.kind} gate: `{ref.text}` is not resolved in a {gate.kind} gate",
                        location=plan.location(*entry[1], *sub),
                        hint="`${stage.*}` and `${release.*}` are resolved in health checks; "
                        "write the value itself here, or use a variable",
                    )
                continue
            found = raw_check(plan, stage, gate)
            if found is None:
                continue
            raw, base = found
            for sub, text in iter_strings(raw):
                for ref in find_refs(text):
                    try:
                        lookup(ref)
                    except ExpressionError as exc:
                        raise ConfigError(
                            f"stage `{stage.name}` health check {gate.check}: {exc}",
                            location=plan.location(*base, *sub),
                            hint="a gate can use `${var.NAME}`, `${env.NAME}`, `${stage.name}`, "
                            "`${stage.vars.NAME}`, `${release.version}` and `${release.KEY}`",
                        ) from None
            if gate.check == "command" and isinstance(raw, dict) and isinstance(raw.get("run"), str | list):
                try:
                    command_argv(raw["run"], lookup)
                except ValueError as exc:
                    raise ConfigError(
                        f"stage `{stage.name}` command check: cannot split the command line: {exc}",
                        location=plan.location(*base, "run"),
                        hint="quote arguments with matching ' or \", or give `run` as a list of arguments",
                    ) from None
            if gate.check == "http" and isinstance(raw, dict) and isinstance(raw.get("url"), str):
                url = text_of(resolve(raw["url"], lookup))
                if urllib.parse.urlsplit(url).scheme.lower() not in HTTP_SCHEMES:
                    raise ConfigError(
                        f"stage `{stage.name}` http check: `{mask_url(url)}` is not an http or https URL",
                        location=plan.location(*base, "url"),
                        hint="an http check fetches http:// or https:// URLs only; a command check can do the rest",
                    )
