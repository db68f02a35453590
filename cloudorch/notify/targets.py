"""Who hears of which events: the plan's `notifications:` entries, `--notify URL` and
`CLOUDORCH_NOTIFY` (whitespace-separated URLs), checked with located errors.

An `https://` URL is a webhook (signed JSON, `delivery.py`); `http://` is allowed only to the
loopback interface (local receivers and tests). Every other scheme goes through apprise, in the
optional extra `cloudorch[notify]`. URLs carry secrets (tokens in paths, passwords, keys in the
query): only `Target.display`, masked, is ever shown or written to the run history.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cloudorch.errors import ConfigError, Location, did_you_mean
from cloudorch.notify.events import EVENTS

NOTIFY_ENV = "CLOUDORCH_NOTIFY"
#: the HMAC secret of webhooks given by --notify or CLOUDORCH_NOTIFY
NOTIFY_SECRET_ENV = "CLOUDORCH_NOTIFY_SECRET"
WEBHOOK_SCHEMES = ("https", "http")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
ENTRY_KEYS = ("url", "on", "stages", "secret_env")

Locate = Callable[..., Location]


@dataclass(frozen=True)
class Target:
    url: str
    #: events it hears of; None: every event
    on: frozenset[str] | None = None
    #: stages it hears of; None: every stage (and runs without one)
    stages: frozenset[str] | None = None
    #: the environment variable holding the webhook's HMAC secret
    secret_env: str | None = None
    #: where it was configured: `notifications[0]`, `--notify`, `CLOUDORCH_NOTIFY`
    origin: str = "notifications"

    @property
    def kind(self) -> str:
        return "webhook" if scheme_of(self.url) in WEBHOOK_SCHEMES else "apprise"

    @property
    def id(self) -> str:
        """Stable across runs without showing the URL: the outbox finds its target again by it
        (the URL and how it is signed: the same URL signed and unsigned are two targets)."""
        return hashlib.sha256(f"{self.url}\0{self.secret_env or ''}".encode()).hexdigest()[:16]

    @property
    def display(self) -> str:
        return mask_url(self.url)

    def wants(self, event: str, stage: str | None) -> bool:
        if self.on is not None and event not in self.on:
            return False
        return self.stages is None or (stage is not None and stage in self.stages)


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def mask_url(url: str) -> str:
    """`scheme://host/***`: only the scheme and, for webhooks, the host and port are kept.

    Apprise URLs keep tokens in the host and path (`slack://TokenA/TokenB/TokenC`), webhooks in
    the path and query, mail URLs a password: all of that is secret until proven otherwise.
    """
    scheme = scheme_of(url)
    if not scheme:
        return "***"
    if scheme not in WEBHOOK_SCHEMES:
        return f"{scheme}://***"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return f"{scheme}://***"
    if ":" in host:
        host = f"[{host}]"
    rest = "/***" if (parts.path.strip("/") or parts.query) else ""
    return f"{scheme}://{host}{port}{rest}"


def mask_text(text: str, targets: Sequence[Target]) -> str:
    """`text` with every target URL (and its parts that could be secret) masked."""
    for t in targets:
        text = text.replace(t.url, t.display)
        for piece in _secret_pieces(t.url):
            text = text.replace(piece, "***")
    return text


def _secret_pieces(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    pieces = [parts.password or "", parts.query]
    pieces += [seg for seg in parts.path.split("/") if len(seg) >= 6]
    if scheme_of(url) not in WEBHOOK_SCHEMES:
        pieces.append(parts.netloc)
    return sorted({p for p in pieces if len(p) >= 6}, key=len, reverse=True)


def apprise_installed() -> bool:
    try:
        return importlib.util.find_spec("apprise") is not None
    except (ImportError, ValueError):
        return False


def parse_entries(
    entries: Any, *, locate: Locate, stages: Sequence[str] | None = None, check: bool = True
) -> list[Target]:
    """The plan's `notifications:` list as targets; ConfigError (with the field's location) on a
    malformed entry, an unknown event or stage, or an apprise scheme without apprise installed."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ConfigError(
            "notifications: expected a list of {url, on, stages, secret_env}", location=locate("notifications")
        )
    out: list[Target] = []
    for i, entry in enumerate(entries):
        where = ("notifications", i)
        if not isinstance(entry, dict):
            raise ConfigError("a notification is a mapping with `url` and `on`", location=locate(*where))
        # YAML 1.1 reads an unquoted `on:` key as the boolean true
        entry = {("on" if k is True else k): v for k, v in entry.items()}
        unknown = [k for k in entry if k not in ENTRY_KEYS]
        if unknown:
            raise ConfigError(
                f"notifications[{i}]: unknown key `{unknown[0]}`",
                location=locate(*where, unknown[0]),
                hint=did_you_mean(str(unknown[0]), list(ENTRY_KEYS)) or "keys: " + ", ".join(ENTRY_KEYS),
            )
        url = entry.get("url")
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(f"notifications[{i}]: `url` must be a non-empty string", location=locate(*where, "url"))
        on = _names(entry.get("on"), f"notifications[{i}].on", locate(*where, "on"))
        for name in on or ():
            if name not in EVENTS:
                raise ConfigError(
                    f"notifications[{i}].on: unknown event `{name}`",
                    location=locate(*where, "on"),
                    hint=did_you_mean(name, list(EVENTS)) or "events: " + ", ".join(EVENTS),
                )
        only = _names(entry.get("stages"), f"notifications[{i}].stages", locate(*where, "stages"))
        if only is not None and stages is not None:
            for name in only:
                if name not in stages:
                    raise ConfigError(
                        f"notifications[{i}].stages: no stage `{name}` in this plan",
                        location=locate(*where, "stages"),
                        hint=did_you_mean(name, list(stages)) or "stages: " + (", ".join(stages) or "none"),
                    )
        secret_env = entry.get("secret_env")
        if secret_env is not None and (not isinstance(secret_env, str) or not secret_env):
            raise ConfigError(
                f"notifications[{i}].secret_env: the name of an environment variable",
                location=locate(*where, "secret_env"),
            )
        target = Target(
            url.strip(),
            frozenset(on) if on is not None else None,
            frozenset(only) if only is not None else None,
            secret_env,
            origin=f"notifications[{i}]",
        )
        if check:
            check_url(target, locate(*where, "url"))
        out.append(target)
    return out


def ad_hoc(urls: Sequence[str], env: Mapping[str, str], *, check: bool = True) -> list[Target]:
    """Targets of `--notify URL` (every event) and `CLOUDORCH_NOTIFY`, signed with
    `CLOUDORCH_NOTIFY_SECRET` when that is set."""
    secret = NOTIFY_SECRET_ENV if env.get(NOTIFY_SECRET_ENV) else None
    out = [Target(u.strip(), secret_env=secret, origin="--notify") for u in urls if u.strip()]
    out += [Target(u, secret_env=secret, origin=NOTIFY_ENV) for u in env.get(NOTIFY_ENV, "").split()]
    if check:
        for t in out:
            check_url(t, Location(t.origin))
    return out


def check_url(target: Target, where: Location) -> None:
    url = target.url
    scheme = scheme_of(url)
    shown = target.display
    if not scheme:
        raise ConfigError(
            f"{target.origin}: {shown} is not a URL",
            location=where,
            hint="write https://host/path for a webhook, or an apprise URL such as slack://... or mailtos://...",
        )
    if scheme in WEBHOOK_SCHEMES:
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            host = ""
        if not host:
            raise ConfigError(f"{target.origin}: {shown} names no host", location=where)
        if scheme == "http" and host not in LOOPBACK:
            raise ConfigError(
                f"{target.origin}: {shown}: webhooks go over https (plain http only to this machine)",
                location=where,
                hint="use https://; the payload names your plan, stages and failures",
            )
        return
    if not apprise_installed():
        raise ConfigError(
            f"{target.origin}: {shown} needs apprise, which is not installed",
            location=where,
            hint="pip install 'cloudorch[notify]' (apprise delivers slack://, mailto://, msteams:// and the rest); "
            "plain https:// webhooks need nothing more",
        )
    import apprise

    if apprise.Apprise.instantiate(url) is None:
        raise ConfigError(
            f"{target.origin}: apprise does not understand {shown}",
            location=where,
            hint="see https://github.com/caronc/apprise/wiki for the URL of each service",
        )


def _names(value: Any, what: str, where: Location) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{what}: expected a list of names", location=where)
    return list(value)


def entries_json_schema() -> dict[str, Any]:
    """The JSON Schema of the plan's `notifications:` list (part of `cloudorch schema`)."""
    names = {"type": "array", "items": {"type": "string"}}
    return {
        "anyOf": [
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["url"],
                    "properties": {
                        "url": {
                            "type": "string",
                            "description": "https:// webhook (signed JSON), or an apprise URL (slack://, mailtos://, "
                            "msteams://, pagerduty://, ...; needs `cloudorch[notify]`).",
                        },
                        "on": {
                            "type": "array",
                            "items": {"enum": list(EVENTS)},
                            "description": "Events to send; every event when omitted.",
                        },
                        "stages": {**names, "description": "Only runs on these stages; every run when omitted."},
                        "secret_env": {
                            "type": "string",
                            "description": "Environment variable holding the webhook's HMAC-SHA256 secret.",
                        },
                    },
                },
            },
            {"type": "null"},
        ]
    }
