"""Gates: the checks a version must pass to enter a stage, each giving a `Verdict`.

`policy` reads the policy report of the promotion's changeset, `approval` and `soak` read the
ledger, `window` reads the clock, `health` runs a check: `http`, `command`, or a provider's own
(`aws_alarms` through the AWS provider's `check_health`, so the core imports no cloud SDK).
Gates only judge; they never apply or record anything.

A health check's references (`${var.*}`, `${env.*}`, `${stage.*}`, `${release.*}`) are resolved
from the check as written in the plan file: a command line is split first and each argument
substituted on its own, so a value never adds arguments. `planfile.gate_templates.check_templates`
refuses, at `validate`, a reference that cannot resolve and a URL that is not http(s).
"""

from __future__ import annotations

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

from cloudorch.errors import ProviderError
from cloudorch.planfile.expressions import ExpressionError, resolve
from cloudorch.planfile.gate_templates import (
    HTTP_SCHEMES,
    command_argv,
    gate_lookup,
    mask_url,
    raw_check,
    text_of,
)
from cloudorch.planfile.stages import (
    ApprovalSpec,
    CommandCheck,
    Gate,
    HttpCheck,
    Stage,
    WindowSpec,
    parse_duration,
)
from cloudorch.release.ledger import BECAME_CURRENT, Ledger

if TYPE_CHECKING:
    from cloudorch.planfile import PlanSpec
    from cloudorch.policy import PolicyReport
    from cloudorch.provider.contract import Provider


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

    @property
    def plan_name(self) -> str | None:
        """What a signed approval must name to count: the plan's state key (None without a plan)."""
        from cloudorch.run.session import plan_key

        return None if self.plan is None else plan_key(self.plan)

    @property
    def plan_sha256(self) -> str | None:
        """The sha256 of the plan file a signed approval must have been made against."""
        from cloudorch.release.signing import plan_sha256

        return None if self.plan is None else plan_sha256(self.plan.text)


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
    spec: ApprovalSpec = gate.spec
    need, allowed = spec.min, spec.allowed
    ignored: list[dict[str, str]] = []
    if spec.allowed_signers is None:
        got = [a for a in inp.ledger.approvals(inp.stage.name, inp.version) if a in allowed]
    else:
        got, ignored = _signed_approvers(spec, inp)
    data: dict[str, Any] = {"min": need, "approved_by": got, "allowed": list(allowed)}
    if spec.allowed_signers is not None:
        data.update(signed=True, ignored=ignored)
    skipped = "; ignored: " + ", ".join(f"{i['actor']} ({i['reason']})" for i in ignored) if ignored else ""
    kind = "signed approvals" if spec.allowed_signers is not None else "approvals"
    if len(got) >= need:
        return Verdict(gate.name, True, f"{len(got)}/{need} {kind} ({', '.join(got)}){skipped}", data=data)
    who = f" (so far: {', '.join(got)})" if got else ""
    return Verdict(
        gate.name,
        False,
        f"{len(got)}/{need} {kind} for {inp.version} into {inp.stage.name}{who}{skipped}",
        data=data,
    )


def _signed_approvers(spec: ApprovalSpec, inp: GateInputs) -> tuple[list[str], list[dict[str, str]]]:
    """Distinct verified principals among the recorded approvals, and every approval ignored with why.

    The identity counted is the principal `allowed_signers` names for the signing key: the same
    key under two actor names counts once, an unsigned or tampered approval not at all.
    """
    from cloudorch.release import signing

    assert spec.allowed_signers is not None
    got: list[str] = []
    ignored: list[dict[str, str]] = []
    for e in inp.ledger.approval_events(inp.stage.name, inp.version):
        signed = e.detail.get("signed")
        signature = str(e.detail.get("signature") or "")
        if not isinstance(signed, dict) or not signature:
            ignored.append({"actor": str(e.actor), "reason": "not signed"})
            continue
        claim = signing.Signed(
            plan=str(signed.get("plan")),
            stage=str(e.detail.get("stage")),
            version=str(e.detail.get("version")),
            plan_sha256=str(signed.get("plan_sha256")),
            at=e.at,
            approver=str(signed.get("approver")),
        )
        principal, why = signing.verified_principal(signature, claim.text(), spec.allowed_signers, spec.allowed)
        if principal is not None and principal != claim.approver:
            principal, why = None, f"signed by {principal} for {claim.approver}"
        if principal is not None and inp.plan_name is not None and claim.plan != inp.plan_name:
            principal, why = None, f"signed for plan {claim.plan}"
        if principal is not None and inp.plan_sha256 is not None and claim.plan_sha256 != inp.plan_sha256:
            principal, why = None, "signed for another revision of the plan file"
        if principal is None:
            ignored.append({"actor": str(e.actor), "reason": why})
        elif principal in got:
            if e.actor != principal:
                ignored.append({"actor": str(e.actor), "reason": f"the same key as {principal}'s approval"})
        else:
            got.append(principal)
    return got, ignored


def soaked_seconds(ledger: Ledger, stage: str, version: str, now: datetime) -> float | None:
    """How long `version`'s latest unbroken run in `stage` lasted (up to now if it still runs)."""
    from cloudorch.clock import parse_iso

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
    from zoneinfo import ZoneInfo

    from cloudorch.policy.builtin import Window

    spec: WindowSpec = gate.spec
    if Window(spec.days, spec.start, spec.end).contains(inp.now.astimezone(ZoneInfo(spec.timezone))):
        return Verdict(gate.name, True, f"{inp.now.isoformat(timespec='minutes')} is inside {gate.spec}")
    return Verdict(gate.name, False, f"{inp.now.isoformat(timespec='minutes')} is outside {gate.spec}")


def _resolved_check(gate: Gate, inp: GateInputs) -> Any:
    """The check's settings with every reference resolved for this stage and version."""
    if inp.plan is None:
        return gate.spec
    found = raw_check(inp.plan, inp.stage, gate)
    if found is None:
        return gate.spec
    raw, _ = found
    lookup = gate_lookup(inp.plan, inp.stage.name, inp.version)
    if isinstance(gate.spec, CommandCheck) and isinstance(raw, dict) and "run" in raw:
        # the argv is built per argument in command_check; keep the template here
        return gate.spec.model_copy(update={"run": raw["run"]})
    resolved = resolve(raw, lookup)
    if isinstance(gate.spec, HttpCheck) and isinstance(resolved, dict) and "url" in resolved:
        return gate.spec.model_copy(update={"url": text_of(resolved["url"])})
    if isinstance(gate.spec, dict) and isinstance(resolved, dict):
        return resolved
    return gate.spec


# --------------------------------------------------------------------------- health


class _NoRedirectToOtherSchemes(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if urllib.parse.urlsplit(newurl).scheme.lower() not in HTTP_SCHEMES:
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
    if urllib.parse.urlsplit(check.url).scheme.lower() not in HTTP_SCHEMES:
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
