"""Built-in policy rules, configured in YAML: required_tags, allowed_locations, deny_public_access,
allowed_resource_types, naming, max_changes, change_window, protect.

Each rule reads only the policy `input` document (see `document.py`), so the same code runs at
plan, apply and drift. Rules never raise for a bad resource: they return violation messages; a
bad rule *configuration* is a `PolicyLoadError` at load time.
"""

from __future__ import annotations

import fnmatch
import re
from abc import ABC
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloudorch.changes import Action
from cloudorch.policy.document import is_unknown, judged_changes
from cloudorch.policy.model import PolicyInfo, PolicyLoadError

#: what a rule returns per subject: (address or None for the changeset, message, details)
Finding = tuple[str | None, str, dict[str, Any]]

CLOUD_TYPES = ("aws.*", "azure.*", "gcp.*")


def _glob_regex(patterns: Iterable[str], *, ignore_case: bool = False) -> re.Pattern[str] | None:
    pats = list(patterns)
    if not pats:
        return None
    flags = re.IGNORECASE if ignore_case else 0
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in pats), flags)


def _str_list(value: Any, *, where: str, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(v, str | int) for v in value):
        return tuple(str(v) for v in value)
    raise PolicyLoadError(f"{where}: `{what}` must be a string or a list of strings, not {value!r}")


@dataclass
class Match:
    """Which resources and stages a built-in rule applies to (`match:` in its entry)."""

    types: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    _type_re: re.Pattern[str] | None = field(default=None, repr=False)
    _addr_re: re.Pattern[str] | None = field(default=None, repr=False)
    _type_cache: dict[str, bool] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._type_re = _glob_regex(self.types)
        self._addr_re = _glob_regex(self.addresses)

    @classmethod
    def parse(cls, raw: Any, *, where: str, default_types: Sequence[str] = ()) -> Match:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise PolicyLoadError(f"{where}: `match` must be a mapping with type / address / stage")
        unknown = set(raw) - {"type", "address", "stage"}
        if unknown:
            raise PolicyLoadError(
                f"{where}: unknown key(s) in `match`: {', '.join(sorted(unknown))}",
                hint="`match` takes type (globs), address (globs) and stage (names)",
            )
        types = _str_list(raw.get("type"), where=where, what="match.type") or tuple(default_types)
        return cls(
            types=types,
            addresses=_str_list(raw.get("address"), where=where, what="match.address"),
            stages=_str_list(raw.get("stage"), where=where, what="match.stage"),
        )

    def stage_ok(self, stage: str | None) -> bool:
        return not self.stages or (stage is not None and stage in self.stages)

    def applies(self, change: Mapping[str, Any]) -> bool:
        if self._type_re is not None:
            t = change["type"]
            hit = self._type_cache.get(t)
            if hit is None:
                hit = self._type_cache[t] = self._type_re.match(t) is not None
            if not hit:
                return False
        return self._addr_re is None or self._addr_re.match(change["address"]) is not None


class BuiltinRule(ABC):
    """A configured built-in rule. Subclasses declare `name`, `options` and implement `check`."""

    name: ClassVar[str]
    description: ClassVar[str]
    options: ClassVar[frozenset[str]] = frozenset()
    required: ClassVar[frozenset[str]] = frozenset()
    #: `resource` rules judge each change alone (and are re-run per resource at apply);
    #: `changeset` rules judge the whole changeset
    scope: ClassVar[str] = "resource"
    default_types: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        info: PolicyInfo,
        match: Match,
        opts: Mapping[str, Any],
        *,
        where: str,
        provider_configs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.info = info
        self.match = match
        self.where = where
        self.provider_configs = dict(provider_configs or {})
        unknown = set(opts) - self.options
        if unknown:
            raise PolicyLoadError(
                f"{where}: unknown option(s) for rule {self.name}: {', '.join(sorted(unknown))}",
                hint=f"{self.name} takes: {', '.join(sorted(self.options)) or 'no options'}",
            )
        missing = self.required - set(opts)
        if missing:
            raise PolicyLoadError(f"{where}: rule {self.name} needs option(s): {', '.join(sorted(missing))}")
        self.configure(opts)

    def configure(self, opts: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Read and validate options; raise PolicyLoadError naming `self.where`."""

    def subjects(self, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The changes this rule judges: by default the creates/updates/replaces it matches."""
        return [c for c in judged_changes(doc) if self.match.applies(c)]

    def check(self, change: Mapping[str, Any], doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """Messages (with details) for one change; used by `resource` rules."""
        return []

    def check_changeset(self, subjects: Sequence[Mapping[str, Any]], doc: Mapping[str, Any]) -> list[Finding]:
        """Findings for the whole changeset; `changeset` rules override this."""
        out: list[Finding] = []
        for c in subjects:
            out.extend((c["address"], msg, details) for msg, details in self.check(c, doc))
        return out

    def _err(self, msg: str, hint: str | None = None) -> PolicyLoadError:
        return PolicyLoadError(f"{self.where}: {msg}", hint=hint)

    def provider_config(self, change: Mapping[str, Any], doc: Mapping[str, Any]) -> Mapping[str, Any]:
        key = change.get("provider") or str(change["type"]).split(".", 1)[0]
        from_doc = (doc.get("providers") or {}).get(key)
        if from_doc:
            return dict(from_doc)
        return self.provider_configs.get(key, {})


def _regex(value: Any, *, where: str) -> re.Pattern[str]:
    try:
        return re.compile(str(value))
    except re.error as exc:
        raise PolicyLoadError(f"{where}: invalid regular expression {value!r}: {exc}") from exc


class RequiredTags(BuiltinRule):
    name = "required_tags"
    description = "Resources carry the required tags (labels on GCP), optionally matching value patterns."
    options = frozenset({"keys", "values"})
    default_types = CLOUD_TYPES

    def configure(self, opts: Mapping[str, Any]) -> None:
        self.keys = _str_list(opts.get("keys"), where=self.where, what="keys")
        raw_values = opts.get("values") or {}
        if not isinstance(raw_values, Mapping):
            raise self._err("`values` must map tag keys to regular expressions")
        self.values = {str(k): _regex(v, where=self.where) for k, v in raw_values.items()}
        self.all_keys = tuple(dict.fromkeys([*self.keys, *self.values]))
        if not self.all_keys:
            raise self._err("required_tags needs `keys` (and optionally `values`)")

    def check(self, change: Mapping[str, Any], doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        after = change.get("after") or {}
        field_name = "labels" if "labels" in after and "tags" not in after else "tags"
        if is_unknown(change, field_name) and not any(
            u.startswith(field_name + ".") for u in change.get("after_unknown") or ()
        ):
            return []  # the whole mapping is known only after apply
        cfg = self.provider_config(change, doc)
        tags: dict[str, Any] = {**(cfg.get("default_tags") or {}), **(cfg.get("default_labels") or {})}
        own = after.get(field_name)
        if isinstance(own, Mapping):
            tags.update(own)
        missing = [k for k in self.all_keys if k not in tags and not is_unknown(change, f"{field_name}.{k}")]
        out: list[tuple[str, dict[str, Any]]] = []
        if missing:
            out.append((f"missing required {field_name}: {', '.join(missing)}", {"missing": missing}))
        for key, pattern in self.values.items():
            if key in tags and pattern.fullmatch(str(tags[key])) is None:
                out.append(
                    (
                        f"{field_name[:-1]} {key}={tags[key]!r} does not match {pattern.pattern!r}",
                        {"key": key, "value": tags[key], "pattern": pattern.pattern},
                    )
                )
        return out


class AllowedLocations(BuiltinRule):
    name = "allowed_locations"
    description = "Resources live only in allowed regions / locations (per cloud or for all)."
    options = frozenset({"locations", "aws", "azure", "gcp"})
    default_types = CLOUD_TYPES

    def configure(self, opts: Mapping[str, Any]) -> None:
        self.allowed: dict[str, tuple[str, ...]] = {}
        for key in ("locations", "aws", "azure", "gcp"):
            if key in opts:
                self.allowed[key] = _str_list(opts[key], where=self.where, what=key)
        if not self.allowed:
            raise self._err("allowed_locations needs `locations` or a list per cloud (aws, azure, gcp)")
        self.regex = {k: _glob_regex(v, ignore_case=True) for k, v in self.allowed.items()}

    def check(self, change: Mapping[str, Any], doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        cloud = str(change["type"]).split(".", 1)[0]
        key = cloud if cloud in self.allowed else "locations"
        if key not in self.allowed:
            return []
        after = change.get("after") or {}
        location: Any = None
        for prop in ("region", "location"):
            if is_unknown(change, prop):
                return []
            if after.get(prop) is not None:
                location = after[prop]
                break
        if location is None:
            cfg = self.provider_config(change, doc)
            location = cfg.get("region") or cfg.get("location")
        if location is None:
            return []
        regex = self.regex[key]
        if regex is not None and regex.match(str(location)):
            return []
        allowed = ", ".join(self.allowed[key]) or "(none)"
        return [(f"location {location!r} is not allowed (allowed: {allowed})", {"location": location})]


PUBLIC_ACLS = frozenset({"public-read", "public-read-write", "authenticated-read"})
PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})
S3_BLOCK_FLAGS = ("block_public_acls", "ignore_public_acls", "block_public_policy", "restrict_public_buckets")


def _contains_public_member(value: Any) -> bool:
    if isinstance(value, str):
        return value in PUBLIC_MEMBERS or value.split(":", 1)[-1] in PUBLIC_MEMBERS
    if isinstance(value, Mapping):
        return any(_contains_public_member(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_contains_public_member(v) for v in value)
    return False


class DenyPublicAccess(BuiltinRule):
    name = "deny_public_access"
    description = (
        "No public storage: S3 public access block off or public ACLs, GCS allUsers / "
        "allAuthenticatedUsers, Azure blob public access."
    )
    default_types = CLOUD_TYPES

    def check(self, change: Mapping[str, Any], doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        after = change.get("after") or {}
        out: list[tuple[str, dict[str, Any]]] = []
        acl = after.get("acl")
        if isinstance(acl, str) and acl in PUBLIC_ACLS:
            out.append((f"ACL {acl!r} makes it public", {"property": "acl"}))
        block = after.get("public_access_block")
        if block is False:
            out.append(("the S3 public access block is off", {"property": "public_access_block"}))
        elif isinstance(block, Mapping):
            off = [f for f in S3_BLOCK_FLAGS if block.get(f) is False]
            if off:
                out.append(
                    (f"the S3 public access block is off: {', '.join(off)}", {"property": "public_access_block"})
                )
        off_flat = [f for f in S3_BLOCK_FLAGS if after.get(f) is False]
        if off_flat:
            out.append((f"public access is allowed: {', '.join(off_flat)} is false", {"property": off_flat[0]}))
        for prop in ("allow_blob_public_access", "allow_nested_items_to_be_public", "public", "publicly_accessible"):
            if after.get(prop) is True:
                out.append((f"{prop} is true", {"property": prop}))
        for prop in ("public_access", "container_access_type"):
            if after.get(prop) in ("blob", "container"):
                out.append((f"{prop} is {after[prop]!r}: blobs are public", {"property": prop}))
        for prop in ("iam", "iam_bindings", "bindings", "members", "acl", "acls", "default_object_acl"):
            if prop in after and _contains_public_member(after[prop]):
                out.append((f"{prop} grants access to allUsers / allAuthenticatedUsers", {"property": prop}))
        return out


class AllowedResourceTypes(BuiltinRule):
    name = "allowed_resource_types"
    description = "Only resource types on the allow-list may be created or changed."
    options = frozenset({"types"})
    required = frozenset({"types"})

    def configure(self, opts: Mapping[str, Any]) -> None:
        self.types = _str_list(opts.get("types"), where=self.where, what="types")
        self.regex = _glob_regex(self.types)

    def check(self, change: Mapping[str, Any], doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        if self.regex is not None and self.regex.match(change["type"]):
            return []
        return [(f"resource type {change['type']} is not allowed (allowed: {', '.join(self.types)})", {})]


class Naming(BuiltinRule):
    name = "naming"
    description = "Names match a regular expression (one for all, or one per resource type glob)."
    options = frozenset({"pattern", "patterns", "property"})

    def configure(self, opts: Mapping[str, Any]) -> None:
        self.property = str(opts.get("property", "name"))
        self.patterns: list[tuple[re.Pattern[str], re.Pattern[str], str]] = []
        raw = opts.get("patterns") or {}
        if not isinstance(raw, Mapping):
            raise self._err("`patterns` must map resource type globs to regular expressions")
        for type_glob, rx in raw.items():
            glob = _glob_regex([str(type_glob)])
            assert glob is not None
            self.patterns.append((glob, _regex(rx, where=self.where), str(type_glob)))
        if "pattern" in opts:
            self.patterns.append((re.compile(".*"), _regex(opts["pattern"], where=self.where), "*"))
        if not self.patterns:
            raise self._err("naming needs `pattern` or `patterns`")

    def check(self, change: Mapping[str, Any], doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        value = (change.get("after") or {}).get(self.property)
        if value is None or is_unknown(change, self.property):
            return []
        for glob, rx, _ in self.patterns:
            if glob.match(change["type"]):
                if rx.fullmatch(str(value)) is None:
                    return [
                        (
                            f"{self.property} {value!r} does not match {rx.pattern!r}",
                            {"property": self.property, "value": value, "pattern": rx.pattern},
                        )
                    ]
                return []
        return []


class MaxChanges(BuiltinRule):
    name = "max_changes"
    description = "At most N changes of the given actions (default: deletes and replaces) in one apply."
    options = frozenset({"max", "actions", "limits"})
    scope = "changeset"

    def configure(self, opts: Mapping[str, Any]) -> None:
        valid = {a.value for a in Action}
        self.limits: list[tuple[tuple[str, ...], int]] = []
        if "max" in opts:
            actions = _str_list(opts.get("actions") or ["delete", "replace"], where=self.where, what="actions")
            self.limits.append((actions, self._int(opts["max"], "max")))
        limits = opts.get("limits") or {}
        if not isinstance(limits, Mapping):
            raise self._err("`limits` must map actions to numbers, e.g. {delete: 5}")
        for action, n in limits.items():
            self.limits.append(((str(action),), self._int(n, f"limits.{action}")))
        for actions, _ in self.limits:
            bad = set(actions) - valid
            if bad:
                raise self._err(f"unknown action(s) {', '.join(sorted(bad))}", hint=f"use {', '.join(sorted(valid))}")
        if not self.limits:
            raise self._err("max_changes needs `max` (with optional `actions`) or `limits`")

    def _int(self, value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._err(f"`{what}` must be a whole number >= 0, not {value!r}")
        return value

    def subjects(self, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [c for c in doc["changeset"]["changes"] if self.match.applies(c)]

    def check_changeset(self, subjects: Sequence[Mapping[str, Any]], doc: Mapping[str, Any]) -> list[Finding]:
        out: list[Finding] = []
        for actions, limit in self.limits:
            hits = [c["address"] for c in subjects if c["action"] in actions]
            if len(hits) > limit:
                what = " or ".join(f"{a}s" for a in actions)
                out.append(
                    (
                        None,
                        f"{len(hits)} {what} in one apply; at most {limit} allowed",
                        {"actions": list(actions), "count": len(hits), "max": limit, "addresses": hits[:50]},
                    )
                )
        return out


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Window:
    days: frozenset[int]
    start: time
    end: time

    def contains(self, moment: datetime) -> bool:
        t = moment.time().replace(tzinfo=None)
        day = moment.weekday()
        if self.start <= self.end:
            return day in self.days and self.start <= t < self.end
        # an overnight window (22:00-06:00) belongs to the day it starts on
        return (day in self.days and t >= self.start) or ((day - 1) % 7 in self.days and t < self.end)

    def __str__(self) -> str:
        days = ",".join(DAYS[d] for d in sorted(self.days))
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M}"


class ChangeWindow(BuiltinRule):
    name = "change_window"
    description = "Changes only inside allowed days and hours, in a time zone (restrict per stage with match)."
    options = frozenset({"windows", "timezone"})
    required = frozenset({"windows"})
    scope = "changeset"

    def configure(self, opts: Mapping[str, Any]) -> None:
        tz_name = str(opts.get("timezone", "UTC"))
        try:
            self.tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise self._err(
                f"unknown time zone {tz_name!r}", hint="use an IANA name such as Europe/Paris"
            ) from exc
        raw = opts.get("windows")
        if not isinstance(raw, list) or not raw:
            raise self._err("`windows` must be a list of {days: [mon, ...], hours: 'HH:MM-HH:MM'}")
        self.windows = [self._window(w) for w in raw]

    def _window(self, raw: Any) -> Window:
        if not isinstance(raw, Mapping) or set(raw) - {"days", "hours"}:
            raise self._err(f"bad window {raw!r}", hint="a window is {days: [mon, tue], hours: '09:00-17:00'}")
        names = _str_list(raw.get("days") or list(DAYS), where=self.where, what="days")
        days: set[int] = set()
        for name in names:
            key = name.strip().lower()[:3]
            if key not in DAYS:
                raise self._err(f"unknown day {name!r}", hint="use mon, tue, wed, thu, fri, sat, sun")
            days.add(DAYS.index(key))
        hours = str(raw.get("hours", "00:00-24:00"))
        m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", hours)
        if m is None:
            raise self._err(f"bad hours {hours!r}", hint="write hours as HH:MM-HH:MM, e.g. 09:00-17:30")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
            raise self._err(f"bad hours {hours!r}")
        end = time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2)
        return Window(frozenset(days), time(h1, m1), end)

    def subjects(self, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [
            c for c in doc["changeset"]["changes"] if c["action"] != Action.NOOP.value and self.match.applies(c)
        ]

    def check_changeset(self, subjects: Sequence[Mapping[str, Any]], doc: Mapping[str, Any]) -> list[Finding]:
        if not subjects or doc.get("when") == "drift":
            return []
        moment = datetime.fromisoformat(str(doc["time"])).astimezone(self.tz)
        if any(w.contains(moment) for w in self.windows):
            return []
        allowed = "; ".join(str(w) for w in self.windows)
        return [
            (
                None,
                f"{len(subjects)} change(s) at {moment:%a %H:%M} {self.tz.key}, outside the change window "
                f"({allowed})",
                {"time": moment.isoformat(), "windows": [str(w) for w in self.windows]},
            )
        ]


class Protect(BuiltinRule):
    name = "protect"
    description = "Protected addresses may never be deleted or replaced."
    options = frozenset({"addresses"})

    def configure(self, opts: Mapping[str, Any]) -> None:
        self.addresses = _str_list(opts.get("addresses"), where=self.where, what="addresses")
        self.regex = _glob_regex(self.addresses)
        if self.regex is None and not self.match.addresses:
            raise self._err("protect needs `addresses` (globs) or `match.address`")

    def subjects(self, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [
            c
            for c in doc["changeset"]["changes"]
            if self.match.applies(c) and (self.regex is None or self.regex.match(c["address"]))
        ]

    def check(self, change: Mapping[str, Any], doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        if change["action"] in (Action.DELETE.value, Action.REPLACE.value):
            return [(f"{change['address']} is protected and may not be {change['action']}d", {})]
        return []


RULES: dict[str, type[BuiltinRule]] = {
    cls.name: cls
    for cls in (
        RequiredTags,
        AllowedLocations,
        DenyPublicAccess,
        AllowedResourceTypes,
        Naming,
        MaxChanges,
        ChangeWindow,
        Protect,
    )
}
