"""Gates: the checks a version must pass to enter a stage, each giving a `Verdict`.

`policy` reads the policy report of the promotion's changeset, `approval` and `soak` read the
ledger, `window` reads the clock, `health` runs a check: `http`, `command`, or a provider's own
(`aws_alarms` through the AWS provider's `check_health`, so the core imports no cloud SDK).
Gates only judge; they never apply or record anything.

A health check's references (`${var.*}`, `${env.*}`, `${stage.*}`, `${release.*}`) are resolved
from the check as written in the plan file: a command line is split first and each argument
substituted on its own, so a value never adds arguments. `check_templates` refuses, at
`validate`, a reference that cannot resolve and a URL that is not http(s).
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudorch.errors import ConfigError, ProviderError
from cloudorch.planfile.expressions import ExpressionError, Reference, find_refs, iter_strings, navigate, resolve
from cloudorch.release.ledger import BECAME_CURRENT, Ledger
from cloudorch.release.model import CommandCheck, Gate, HttpCheck, Stage, Stages, parse_duration

if TYPE_CHECKING:
    from cloudorch.planfile import PlanSpec
    from cloudorch.planfile.source import FieldPath
    from cloudorch.policy import PolicyReport
    from cloudorch.providers import Provider


@dataclass
class Verdict:
    """One gate's outcome: `passed`, what was seen (`detail`), and whether an override let it pass."""

    gate: str
    passed: bool
    detail: str
    overridden: str | None = None  # the override's reason
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "passed": self.passed,
            "detail": self.detail,
            "overridden": self.overridden,
            **({"data": self.data} if self.data else {}),
        }


@dataclass
class GateInputs:
    """What the gates of one promotion look at."""

    stage: Stage
    version: str
    ledger: Ledger
    now: datetime
    plan_dir: Path
    #: provider block key -> configured provider (for provider health checks)
    provider: Callable[[str], Provider]
    #: the policy report of the promotion's changeset (None: the plan has no policies)
    policy_report: PolicyReport | None = None
    #: mandatory policy ids overridden with a reason for this run
    policy_overrides: Mapping[str, str] = field(default_factory=dict)
    #: the plan the stage belongs to: health checks are resolved from what it says (None: the
    #: checks as `stages_of` parsed them, with `${stage.*}`/`${release.*}` left unresolved)
    plan: PlanSpec | None = None
    #: `--dry-run`: judge without running any command check
    dry_run: bool = False


def _fmt_seconds(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def policy_gate(gate: Gate, inp: GateInputs) -> Verdict:
    from cloudorch.policy.model import Level

    names: tuple[str, ...] | None = gate.spec
    report = inp.policy_report
    known = {p.id for p in report.policies} if report is not None else set()
    missing = [n for n in names or () if n not in known]
    if missing:
        return Verdict(gate.name, False, f"no policy named {', '.join(missing)} in the plan's policies")
    if report is None:
        return Verdict(gate.name, True, "the plan declares no policies")
    wanted = set(names) if names else known
    hits = [v for v in report.violations if v.policy_id in wanted]
    # only a mandatory policy can be waived (--override ID --reason); hard and advisory ones stand
    standing = [v for v in hits if not (v.level is Level.MANDATORY and v.policy_id in inp.policy_overrides)]
    what = ", ".join(sorted(wanted)) or "no policies"
    if standing:
        lines = "; ".join(str(v) for v in standing[:5]) + (
            f"; and {len(standing) - 5} more" if len(standing) > 5 else ""
        )
        return Verdict(gate.name, False, f"{len(standing)} violation(s): {lines}", data={"policies": sorted(wanted)})
    note = f" ({len(hits)} overridden)" if hits else ""
    return Verdict(gate.name, True, f"{what}: no violations on the promotion's changes{note}")


def approval_gate(gate: Gate, inp: GateInputs) -> Verdict:
    need, allowed = gate.spec
    got = [a for a in inp.ledger.approvals(inp.stage.name, inp.version) if a in allowed]
    data = {"min": need, "approved_by": got, "allowed": list(allowed)}
    if len(got) >= need:
        return Verdict(gate.name, True, f"{len(got)}/{need} approvals ({', '.join(got)})", data=data)
    who = f" (so far: {', '.join(got)})" if got else ""
    return Verdict(
        gate.name, False, f"{len(got)}/{need} approvals for {inp.version} into {inp.stage.name}{who}", data=data
    )


def soaked_seconds(ledger: Ledger, stage: str, version: str, now: datetime) -> float | None:
    """How long `version`'s latest unbroken run in `stage` lasted (up to now if it still runs)."""
    from cloudorch.release.clock import parse_iso

    start: datetime | None = None
    end: datetime | None = None
    for e in ledger.of_stage(stage):
        if e.kind not in BECAME_CURRENT or not e.detail.get("ok", True):
            continue
        if e.detail.get("version") == version:
            if start is None or end is not None:
                start, end = parse_iso(e.at), None
        elif start is not None and end is None:
            end = parse_iso(e.at)
    if start is None:
        return None
    return ((end or now) - start).total_seconds()


def soak_gate(gate: Gate, inp: GateInputs) -> Verdict:
    need = float(gate.spec)
    worst: tuple[float, str] | None = None
    for prev in inp.stage.needs:
        ran = soaked_seconds(inp.ledger, prev, inp.version, inp.now)
        if ran is None:
            return Verdict(gate.name, False, f"{inp.version} never ran in {prev}")
        if worst is None or ran < worst[0]:
            worst = (ran, prev)
    if worst is None:
        return Verdict(gate.name, True, "the stage needs no previous stage")
    ran, prev = worst
    data = {"required_seconds": need, "soaked_seconds": round(ran, 1), "stage": prev}
    if ran >= need:
        return Verdict(
            gate.name, True, f"{inp.version} ran {_fmt_seconds(ran)} in {prev} (needs {_fmt_seconds(need)})", data=data
        )
    return Verdict(
        gate.name,
        False,
        f"{inp.version} ran only {_fmt_seconds(ran)} in {prev}; needs {_fmt_seconds(need)} "
        f"({_fmt_seconds(need - ran)} more)",
        data=data,
    )


def window_gate(gate: Gate, inp: GateInputs) -> Verdict:
    if gate.spec.contains(inp.now):
        return Verdict(gate.name, True, f"{inp.now.isoformat(timespec='minutes')} is inside {gate.spec}")
    return Verdict(gate.name, False, f"{inp.now.isoformat(timespec='minutes')} is outside {gate.spec}")


# --------------------------------------------------------------------------- templates

#: the roots a gate may refer to; `var`/`env` are resolved when the plan loads
GATE_ROOTS = frozenset({"var", "env", "stage", "release"})
_HTTP_SCHEMES = ("http", "https")


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


def _raw_check(plan: PlanSpec, stage: Stage, gate: Gate) -> tuple[Any, FieldPath] | None:
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


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def command_argv(run: str | list[str], lookup: Callable[[Reference], Any]) -> list[str]:
    """The argv of a command check: a command line is split first (shell words), then each
    argument is substituted on its own; a list is substituted item by item.

    ValueError for a line that cannot be split (an unmatched quote), ExpressionError for a
    reference that cannot resolve.
    """
    words = shlex.split(run) if isinstance(run, str) else [str(w) for w in run]
    if not words:
        raise ValueError("the command is empty")
    return [_text(resolve(word, lookup)) for word in words]


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
            found = _raw_check(plan, stage, gate)
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
                url = _text(resolve(raw["url"], lookup))
                if urllib.parse.urlsplit(url).scheme.lower() not in _HTTP_SCHEMES:
                    raise ConfigError(
                        f"stage `{stage.name}` http check: `{mask_url(url)}` is not an http or https URL",
                        location=plan.location(*base, "url"),
                        hint="an http check fetches http:// or https:// URLs only; a command check can do the rest",
                    )


def _resolved_check(gate: Gate, inp: GateInputs) -> Any:
    """The check's settings with every reference resolved for this stage and version."""
    if inp.plan is None:
        return gate.spec
    found = _raw_check(inp.plan, inp.stage, gate)
    if found is None:
        return gate.spec
    raw, _ = found
    lookup = gate_lookup(inp.plan, inp.stage.name, inp.version)
    if isinstance(gate.spec, CommandCheck) and isinstance(raw, dict) and "run" in raw:
        # the argv is built per argument in command_check; keep the template here
        return gate.spec.model_copy(update={"run": raw["run"]})
    resolved = resolve(raw, lookup)
    if isinstance(gate.spec, HttpCheck) and isinstance(resolved, dict) and "url" in resolved:
        return gate.spec.model_copy(update={"url": _text(resolved["url"])})
    if isinstance(gate.spec, dict) and isinstance(resolved, dict):
        return resolved
    return gate.spec


# --------------------------------------------------------------------------- health


class _NoRedirectToOtherSchemes(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if urllib.parse.urlsplit(newurl).scheme.lower() not in _HTTP_SCHEMES:
            return None  # urllib then reports the redirect itself as the answer
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener() -> urllib.request.OpenerDirector:
    """urllib with http(s) only: no file://, ftp:// or data: handlers, and no redirect to them."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        _NoRedirectToOtherSchemes(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def http_check(check: HttpCheck, inp: GateInputs) -> tuple[bool, str]:
    timeout = parse_duration(check.timeout)
    pause = parse_duration(check.interval)
    shown = mask_url(check.url)
    if urllib.parse.urlsplit(check.url).scheme.lower() not in _HTTP_SCHEMES:
        return False, f"{shown}: only http and https URLs can be checked"
    opener = _opener()
    last = ""
    for attempt in range(1, check.retries + 1):
        try:
            with opener.open(check.url, timeout=timeout) as resp:
                status = int(resp.status)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = str(getattr(exc, "reason", exc)).replace(check.url, shown)
            last = f"{shown}: {reason}"
            status = 0
        if 200 <= status < 300:
            return True, f"{shown} answered {status} (attempt {attempt}/{check.retries})"
        if status:
            last = f"{shown} answered {status}"
        if attempt < check.retries:
            time.sleep(pause)
    return False, f"{last} after {check.retries} attempt(s)"


def command_check(check: CommandCheck, inp: GateInputs) -> tuple[bool, str]:
    lookup = gate_lookup(inp.plan, inp.stage.name, inp.version) if inp.plan is not None else None
    try:
        if lookup is not None:
            argv = command_argv(check.run, lookup)
        else:
            argv = check.run if isinstance(check.run, list) else shlex.split(check.run)
    except (ValueError, ExpressionError) as exc:
        return False, f"cannot build the command line: {exc}"
    if not argv:
        return False, "the command is empty"
    shown = shlex.join(argv)
    if inp.dry_run:
        return True, f"`{shown}` not run (--dry-run runs no command)"
    env = {**os.environ, "CLOUDORCH_STAGE": inp.stage.name, "CLOUDORCH_VERSION": inp.version}
    try:
        proc = subprocess.run(
            argv,
            cwd=inp.plan_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=parse_duration(check.timeout),
            check=False,
        )
    except FileNotFoundError:
        return False, f"`{shown}`: command not found"
    except PermissionError:
        return False, f"`{shown}`: permission denied"
    except subprocess.TimeoutExpired:
        return False, f"`{shown}` did not finish within {check.timeout}"
    tail = (proc.stdout.strip() or proc.stderr.strip()).splitlines()[-1:] or [""]
    said = f": {tail[0][:200]}" if tail[0] else ""
    return proc.returncode == 0, f"`{shown}` exited {proc.returncode}{said}"


def health_gate(gate: Gate, inp: GateInputs) -> Verdict:
    try:
        spec = _resolved_check(gate, inp)
    except ExpressionError as exc:  # check_templates refuses these at validate; a plan may skip it
        return Verdict(gate.name, False, f"cannot resolve the check: {exc}")
    try:
        if isinstance(spec, HttpCheck):
            ok, detail = http_check(spec, inp)
        elif isinstance(spec, CommandCheck):
            ok, detail = command_check(spec, inp)
        else:
            spec = dict(spec)
            key = str(spec.get("provider") or str(gate.check).split("_", 1)[0])
            ok, detail = inp.provider(key).check_health(str(gate.check), spec)
    except ProviderError as exc:
        # the cloud could not be asked: a gate that cannot see health does not pass
        return Verdict(gate.name, False, f"could not check: {exc.message}")
    data = {"skipped": "dry run"} if inp.dry_run and isinstance(spec, CommandCheck) and ok else {}
    return Verdict(gate.name, ok, detail, data=data)


GATES: dict[str, Callable[[Gate, GateInputs], Verdict]] = {
    "policy": policy_gate,
    "approval": approval_gate,
    "soak": soak_gate,
    "window": window_gate,
    "health": health_gate,
}

#: gates an `--override NAME --reason` may waive; approvals are people and are never waived
OVERRIDABLE = frozenset({"soak", "window", "health"})


def evaluate(gates: Sequence[Gate], inp: GateInputs, overrides: Mapping[str, str] | None = None) -> list[Verdict]:
    """Every gate's verdict, in the plan's order (all are evaluated, so a refusal names each)."""
    out: list[Verdict] = []
    for gate in gates:
        verdict = GATES[gate.kind](gate, inp)
        reason = (overrides or {}).get(gate.name) or (overrides or {}).get(gate.kind)
        if not verdict.passed and reason and gate.kind in OVERRIDABLE:
            verdict.passed = True
            verdict.overridden = reason
        out.append(verdict)
    return out
