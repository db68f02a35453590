"""The `stages:` and `release:` grammar of a plan file: stages, their `needs`, gates, verify checks.

`PlanSpec.stages` keeps the YAML as loose dicts (templates still inside); `stages_of` checks
them against the pydantic models here and turns every mistake into a `ConfigError` located at
the stage, gate or field in the plan file; `section_json_schema` gives their JSON Schema. Like
the rest of `planfile`, it never reads state, evaluates a gate or imports `cloudorch.release`
(which runs what is parsed here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloudorch.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from cloudorch.planfile.model import PlanSpec

GATE_KINDS = ("policy", "approval", "soak", "health", "window")
#: health kinds every install has; any other kind is `<provider>_<what>` and goes to that provider
BUILTIN_HEALTH = ("http", "command")

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: Any) -> float:
    """Seconds in `90`, `"45s"`, `"10m"`, `"1h30m"`, `"2d"`; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().lower().replace(" ", "")
    if not text:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise ValueError(f"{value!r} is not a duration (write e.g. 30s, 10m, 1h30m, 2d)")
    return total


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApprovalGate(_Strict):
    """`approval: {min: 2, from: [alice, bob, carol]}`; `from` may name a group of `release.groups`.

    With `signed: true` an approval counts only when signed (`release approve --sign-key KEY`)
    by a key that `allowed_signers` (OpenSSH's format, as git uses) lists for a principal in `from`.
    """

    min: int = Field(1, ge=1, description="Distinct approvers needed for this version and stage.")
    from_: list[str] | str = Field(alias="from", description="Actors allowed to approve, or a group name.")
    signed: bool = Field(
        False,
        description="Count only approvals signed with a key listed in `allowed_signers`; "
        "the approver counted is the principal listed for the key.",
    )
    allowed_signers: str | None = Field(
        None,
        description="With `signed: true`: an OpenSSH allowed_signers file, relative to the plan file, "
        "kept and reviewed in the repository.",
    )


class ApprovalSpec(NamedTuple):
    """A checked approval gate: how many distinct approvers, who may approve, and how they prove it."""

    min: int
    allowed: tuple[str, ...]
    #: None: unsigned approvals count (the actor is whoever ran `release approve`)
    allowed_signers: Path | None = None


class WindowGate(_Strict):
    """`window: {days: [mon, tue], hours: "09:00-17:00", timezone: Europe/Paris}`."""

    days: list[str] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
    hours: str = Field("00:00-24:00", description="HH:MM-HH:MM; 22:00-06:00 spans midnight.")
    timezone: str = Field("UTC", description="IANA time zone name.")


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class WindowSpec:
    """A checked `window` gate: weekdays (0 = Monday), a start and end time, an IANA time zone.

    `cloudorch.release.gates` judges a moment against it with the `change_window` policy rule's
    `Window`; an end before the start spans midnight.
    """

    days: frozenset[int]
    start: time
    end: time
    timezone: str
    text: str

    def __str__(self) -> str:
        return self.text


def parse_window(days: list[str], hours: str, timezone: str) -> WindowSpec:
    """ValueError with a readable message for a bad day, hour range or zone."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r} (use an IANA name such as Europe/Paris)") from None
    picked: set[int] = set()
    for name in days:
        key = str(name).strip().lower()[:3]
        if key not in DAYS:
            raise ValueError(f"unknown day {name!r} (use mon, tue, wed, thu, fri, sat, sun)")
        picked.add(DAYS.index(key))
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", hours)
    if m is None:
        raise ValueError(f"bad hours {hours!r} (write HH:MM-HH:MM, e.g. 09:00-17:30)")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"bad hours {hours!r}")
    end = time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2)
    text = f"{','.join(DAYS[d] for d in sorted(picked))} {hours} {timezone}"
    return WindowSpec(frozenset(picked), time(h1, m1), end, timezone, text)


class HttpCheck(_Strict):
    """`http: {url: ..., timeout: 5s, retries: 3}`: the URL must answer 2xx."""

    url: str
    timeout: float | int | str = Field("5s", description="Per attempt.")
    retries: int = Field(3, ge=1, description="Attempts before the check fails.")
    interval: float | int | str = Field("1s", description="Pause between attempts.")


class CommandCheck(_Strict):
    """`command: {run: "./smoke.sh", timeout: 60s}`: the local command must exit 0."""

    run: str | list[str] = Field(description="A shell command line, or an argv list (no shell).")
    timeout: float | int | str = Field("60s")


class StageModel(_Strict):
    """One entry of `stages:`."""

    needs: str | list[str] | None = Field(None, description="The stage(s) a version must pass first.")
    vars: dict[str, Any] = Field(default_factory=dict, description="Values for `${stage.vars.NAME}`.")
    gates: list[dict[str, Any]] = Field(default_factory=list, description="Gates a promotion into it must pass.")
    verify: list[dict[str, Any]] | dict[str, Any] = Field(
        default_factory=list, description="Health checks after a promotion's apply: a list, or {for, every, checks}."
    )
    on_failed_verification: Literal["rollback", "stop"] = Field(
        "stop", description="`rollback`: re-deploy the previous version when verification fails."
    )


@dataclass(frozen=True)
class Gate:
    """One gate of a stage, parsed: `kind` and its settings; `index` is its place in `gates:`."""

    kind: str
    spec: Any
    index: int
    #: health: the check kind (`http`, `command`, `aws_alarms`, ...)
    check: str | None = None

    @property
    def name(self) -> str:
        """How verdicts and `--override` name it: `approval`, `soak`, `health.aws_alarms`, `policy`."""
        return f"{self.kind}.{self.check}" if self.check else self.kind


@dataclass(frozen=True)
class Stage:
    name: str
    needs: tuple[str, ...]
    vars: dict[str, Any]
    gates: tuple[Gate, ...]
    verify: tuple[Gate, ...] = ()
    verify_for: float = 0.0
    verify_every: float = 10.0
    on_failed_verification: str = "stop"


@dataclass
class Stages:
    """Every stage of a plan in dependency order, plus approval groups from `release.groups`."""

    by_name: dict[str, Stage]
    order: list[str]
    groups: dict[str, list[str]] = field(default_factory=dict)

    def get(self, plan: PlanSpec, name: str, flag: str = "--stage") -> Stage:
        stage = self.by_name.get(name)
        if stage is None:
            raise ConfigError(
                f"{flag} {name}: no such stage in {plan.path}",
                hint=did_you_mean(name, self.order) or "stages: " + ", ".join(self.order),
            )
        return stage

    def first(self) -> list[str]:
        return [n for n in self.order if not self.by_name[n].needs]

    def next_of(self, name: str) -> list[str]:
        return [n for n in self.order if name in self.by_name[n].needs]


def _pydantic_error(plan: PlanSpec, base: tuple[str | int, ...], exc: ValidationError, what: str) -> ConfigError:
    err = exc.errors()[0]
    loc = tuple(str(p) if p != "from_" else "from" for p in err["loc"])
    return ConfigError(f"{what}: {'.'.join(loc) or 'value'}: {err['msg']}", location=plan.location(*base, *loc))


def _allowed_signers(plan: PlanSpec, stage: str, approval: ApprovalGate, where: tuple[str | int, ...]) -> Path | None:
    """The allowed_signers file of a `signed: true` gate, which must be a file beside the plan."""
    if not approval.signed:
        if approval.allowed_signers is not None:
            raise ConfigError(
                f"stage `{stage}`: `allowed_signers` is read only by a signed approval gate",
                location=plan.location(*where, "allowed_signers"),
                hint="add `signed: true`, or remove `allowed_signers`",
            )
        return None
    if not approval.allowed_signers:
        raise ConfigError(
            f"stage `{stage}`: a signed approval gate needs `allowed_signers`",
            location=plan.location(*where, "signed"),
            hint="e.g. `allowed_signers: .cloudorch-signers` (OpenSSH's format: `alice ssh-ed25519 AAAA...`), "
            "kept in the repository",
        )
    written = Path(approval.allowed_signers)
    folder = plan.path.parent
    path = written if written.is_absolute() else folder / written
    if not path.is_file():
        raise ConfigError(
            f"stage `{stage}`: allowed_signers file {approval.allowed_signers} not found"
            + ("" if written.is_absolute() else f" (relative to {folder})"),
            location=plan.location(*where, "allowed_signers"),
            hint="one line per key: `PRINCIPAL ssh-ed25519 AAAA...`, as `git config gpg.ssh.allowedSignersFile` uses",
        )
    return path


def _gate(plan: PlanSpec, stage: str, raw: Any, index: int, section: str, groups: dict[str, list[str]]) -> Gate:
    base: tuple[str | int, ...] = ("stages", stage, section, index)
    allowed = ("health",) if section != "gates" else GATE_KINDS
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ConfigError(
            f"stage `{stage}`: each entry of `{section}` is a mapping with one key",
            location=plan.location(*base),
            hint="one of: " + ", ".join(f"{{{k}: ...}}" for k in allowed),
        )
    ((kind, value),) = raw.items()
    if kind not in allowed:
        raise ConfigError(
            f"stage `{stage}`: unknown {section[:-1] if section == 'gates' else 'check'} `{kind}`",
            location=plan.location(*base),
            hint=did_you_mean(str(kind), list(allowed)) or "one of: " + ", ".join(allowed),
        )
    where = (*base, kind)
    if kind == "policy":
        if value in (None, "all", True):
            return Gate("policy", None, index)
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError("`policy` takes a list of policy ids, or `all`", location=plan.location(*where))
        return Gate("policy", tuple(names), index)
    if kind == "approval":
        try:
            approval = ApprovalGate.model_validate(value)
        except ValidationError as exc:
            raise _pydantic_error(plan, where, exc, f"stage `{stage}` approval gate") from None
        approvers = approval.from_
        if isinstance(approvers, str):
            if approvers not in groups:
                raise ConfigError(
                    f"stage `{stage}`: approval group `{approvers}` is not defined",
                    location=plan.location(*where, "from"),
                    hint="define it under `release: {groups: {NAME: [alice, bob]}}`, or list the actors",
                )
            approvers = groups[approvers]
        if approval.min > len(set(approvers)):
            raise ConfigError(
                f"stage `{stage}`: approval needs {approval.min} approvers but only {len(set(approvers))} may approve",
                location=plan.location(*where, "min"),
            )
        return Gate(
            "approval",
            ApprovalSpec(approval.min, tuple(dict.fromkeys(approvers)), _allowed_signers(plan, stage, approval, where)),
            index,
        )
    if kind == "soak":
        try:
            return Gate("soak", parse_duration(value), index)
        except ValueError as exc:
            raise ConfigError(f"stage `{stage}` soak: {exc}", location=plan.location(*where)) from None
    if kind == "window":
        try:
            window = WindowGate.model_validate(value)
        except ValidationError as exc:
            raise _pydantic_error(plan, where, exc, f"stage `{stage}` window gate") from None
        try:
            return Gate("window", parse_window(window.days, window.hours, window.timezone), index)
        except ValueError as exc:
            raise ConfigError(f"stage `{stage}` window gate: {exc}", location=plan.location(*where)) from None
    return _health(plan, stage, value, index, where)


def _health(plan: PlanSpec, stage: str, value: Any, index: int, where: tuple[str | int, ...]) -> Gate:
    if not isinstance(value, dict) or len(value) != 1:
        raise ConfigError(
            f"stage `{stage}`: a health gate holds one check",
            location=plan.location(*where),
            hint="e.g. {health: {http: {url: ...}}}, {health: {command: {run: ...}}}, "
            "{health: {aws_alarms: {prefix: ...}}}",
        )
    ((check, spec),) = value.items()
    check = str(check)
    models: dict[str, type[BaseModel]] = {"http": HttpCheck, "command": CommandCheck}
    model = models.get(check)
    if model is not None:
        try:
            parsed: Any = model.model_validate(spec)
        except ValidationError as exc:
            raise _pydantic_error(plan, (*where, check), exc, f"stage `{stage}` health check {check}") from None
        for name in ("timeout", "interval"):
            if hasattr(parsed, name):
                try:
                    parse_duration(getattr(parsed, name))
                except ValueError as exc:
                    raise ConfigError(
                        f"stage `{stage}` health check {check}: {name}: {exc}",
                        location=plan.location(*where, check, name),
                    ) from None
        return Gate("health", parsed, index, check)
    if "_" not in check or not isinstance(spec, dict):
        raise ConfigError(
            f"stage `{stage}`: unknown health check `{check}`",
            location=plan.location(*where, check),
            hint="built in: http, command; provider checks are named <provider>_<what>, e.g. aws_alarms: {prefix: ...}",
        )
    return Gate("health", dict(spec), index, check)


def stages_of(plan: PlanSpec) -> Stages | None:
    """The plan's stages, checked; None for a plan without `stages:`."""
    if not plan.stages:
        return None
    groups_raw = (plan.release or {}).get("groups") or {}
    if not isinstance(groups_raw, dict) or not all(
        isinstance(v, list) and all(isinstance(a, str) for a in v) for v in groups_raw.values()
    ):
        raise ConfigError(
            "`release.groups` maps a group name to a list of actors",
            location=plan.location("release", "groups"),
            hint="release: {groups: {sre: [alice, bob]}}",
        )
    groups = {str(k): list(v) for k, v in groups_raw.items()}
    by_name: dict[str, Stage] = {}
    for name, raw in plan.stages.items():
        try:
            model = StageModel.model_validate(raw if raw is not None else {})
        except ValidationError as exc:
            raise _pydantic_error(plan, ("stages", name), exc, f"stage `{name}`") from None
        needs = (model.needs,) if isinstance(model.needs, str) else tuple(model.needs or ())
        for i, need in enumerate(needs):
            if need not in plan.stages or need == name:
                raise ConfigError(
                    f"stage `{name}` needs `{need}`, which is not another stage of this plan",
                    location=plan.location("stages", name, "needs", *((i,) if isinstance(model.needs, list) else ())),
                    hint=did_you_mean(need, [s for s in plan.stages if s != name])
                    or "stages: " + ", ".join(plan.stages),
                )
        gates = tuple(_gate(plan, name, g, i, "gates", groups) for i, g in enumerate(model.gates))
        verify_raw = model.verify
        verify_for, verify_every = 0.0, 10.0
        if isinstance(verify_raw, dict):
            unknown = set(verify_raw) - {"for", "every", "checks"}
            if unknown:
                raise ConfigError(
                    f"stage `{name}` verify: unknown key `{sorted(unknown)[0]}`",
                    location=plan.location("stages", name, "verify"),
                    hint="verify: {for: 5m, every: 30s, checks: [{health: ...}]}, or just a list of checks",
                )
            try:
                verify_for = parse_duration(verify_raw.get("for", 0))
                verify_every = parse_duration(verify_raw.get("every", "10s"))
            except ValueError as exc:
                raise ConfigError(
                    f"stage `{name}` verify: {exc}", location=plan.location("stages", name, "verify")
                ) from None
            checks = verify_raw.get("checks") or []
            section = "verify"
        else:
            checks, section = verify_raw, "verify"
        if not isinstance(checks, list):
            raise ConfigError(f"stage `{name}` verify: checks must be a list", location=plan.location("stages", name))
        verify = tuple(_gate(plan, name, g, i, section, groups) for i, g in enumerate(checks))
        by_name[name] = Stage(
            name=name,
            needs=needs,
            vars=dict(model.vars),
            gates=gates,
            verify=verify,
            verify_for=verify_for,
            verify_every=max(verify_every, 0.1),
            on_failed_verification=model.on_failed_verification,
        )
    order = _order(plan, by_name)
    from cloudorch.planfile.gate_templates import check_templates  # it imports this module

    check_templates(plan, Stages(by_name, order, groups))
    return Stages(by_name, order, groups)


def _order(plan: PlanSpec, by_name: dict[str, Stage]) -> list[str]:
    from cloudorch import graph as graphs

    nodes = [(n, {"kind": "stage"}) for n in by_name]
    edges = [(need, n) for n, s in by_name.items() for need in s.needs]
    g = graphs.build(nodes, edges, locate=lambda n: plan.location("stages", n, "needs"))
    return graphs.order(g)


def section_json_schema(section: str) -> dict[str, Any]:
    """JSON Schema of the plan file's `stages:` (a mapping of `StageModel`) or `release:` section."""
    if section == "stages":
        stage = StageModel.model_json_schema()
        stage.pop("title", None)
        return {"anyOf": [{"type": "object", "additionalProperties": stage}, {"type": "null"}]}
    release = {
        "type": "object",
        "properties": {
            "version": {"description": "The version being promoted, usually `${var.version}`."},
            "groups": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
                "description": "Approval groups: name -> actors, for `approval: {from: NAME}`.",
            },
        },
        "additionalProperties": True,
    }
    return {"anyOf": [release, {"type": "null"}]}
