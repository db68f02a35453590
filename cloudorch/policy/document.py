"""The policy `input` document: what every policy, built-in or Rego, is evaluated against.

It is built from a changeset (plan, apply), from one change whose values became known (apply),
or from a state's live resources (drift). The shape is documented in `build_input` and in
cloudorch/policy/README.md; it is a public contract for users' Rego policies, so extend it,
never rename in it. Nothing here evaluates a policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from cloudorch.changes import Action, Change, ChangeSet
from cloudorch.policy.actor import current_actor
from cloudorch.state.model import State

#: actions whose `after` properties policies judge (a delete leaves nothing to judge; a no-op was
#: judged when it was made, and drift re-judges live resources through `build_state_input`)
JUDGED_ACTIONS = frozenset({Action.CREATE.value, Action.UPDATE.value, Action.REPLACE.value})

#: provider-config keys that policies may read; others (credentials, endpoints) are never exposed
PROVIDER_KEYS = ("region", "location", "project", "subscription_id", "default_tags", "default_labels")


def _strip_unknown(props: dict[str, Any], unknown: Iterable[str]) -> dict[str, Any]:
    """A copy of `props` without the values known only after apply (they hold `${...}` text)."""
    out = dict(props)
    for path in unknown:
        head, _, rest = path.partition(".")
        if not rest:
            out.pop(head, None)
        elif isinstance(out.get(head), dict):
            out[head] = _strip_unknown(out[head], [rest])
    return out


def change_document(change: Change) -> dict[str, Any]:
    """One entry of `input.changeset.changes`."""
    after = change.after
    if after is not None and change.after_unknown:
        after = _strip_unknown(after, change.after_unknown)
    return {
        "address": change.address,
        "type": change.type,
        "provider": change.provider,
        "action": change.action.value,
        "before": change.before,
        "after": after,
        "after_unknown": list(change.after_unknown),
        "diff": [d.path for d in change.diff],
        "moved_from": change.moved_from,
        "importing": change.importing,
    }


def _provider_view(provider_configs: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {
        key: {k: cfg[k] for k in PROVIDER_KEYS if k in cfg} for key, cfg in (provider_configs or {}).items()
    }


def _now(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).isoformat(timespec="seconds")


def build_input(
    changeset: ChangeSet,
    *,
    stage: str | None = None,
    release: Mapping[str, Any] | None = None,
    provider_configs: Mapping[str, Mapping[str, Any]] | None = None,
    user: str | None = None,
    now: datetime | None = None,
    when: str = "plan",
) -> dict[str, Any]:
    """Build the `input` document policies see for a changeset.

    Shape (every key is always present; values may be null)::

        {
          "when": "plan" | "apply" | "drift",
          "changeset": {
            "changes": [{
              "address": "prod.site",         # stable resource name
              "type": "aws.s3_bucket",
              "provider": "aws" | "aws.us",   # provider block key
              "action": "create" | "update" | "replace" | "delete" | "no-op",
              "before": {...} | null,         # properties now; null for a create
              "after": {...} | null,          # properties wanted; null for a delete. Values known
                                              # only after apply are LEFT OUT (as in Terraform's plan JSON)
              "after_unknown": ["name", "tags.owner"],  # paths known only after apply
              "diff": ["versioning", "tags.owner"],     # property paths that change
              "moved_from": "old_site" | null,  # the address a `moved:` entry renames it from
              "importing": "bucket-name" | null # the id an `imports:` entry adopts here
            }],
            "counts": {"create": 1, "update": 0, "replace": 0, "delete": 0, "no-op": 0},
            "moves": [{"from": "old_site", "to": "site"}],    # addresses renamed in state
            "imports": [{"to": "site", "id": "bucket-name"}]  # objects adopted into state
          },
          "resources": {"prod.site": {...}},  # resulting properties per address (deletes left out)
          "providers": {"aws": {"region": "eu-west-1", "default_tags": {...}}},
          "stage": "prod" | null,
          "release": {"version": "1.2.0", ...} | null,
          "user": "alice",                    # CLOUDORCH_ACTOR, CI variables, or the OS user
          "time": "2026-11-26T14:00:00+00:00",
          "plan": {"name": "shop", "file": "plans/shop.yaml"}
        }

    `provider_configs` maps provider block keys to their configuration; only location-like
    keys and default tags are copied in (never credentials).
    """
    changes = [change_document(c) for c in changeset.changes]
    resources: dict[str, Any] = {}
    for c in changes:
        if c["action"] != Action.DELETE.value:
            resources[c["address"]] = c["after"] if c["after"] is not None else c["before"]
    return {
        "when": when,
        "changeset": {
            "changes": changes,
            "counts": changeset.counts(),
            "moves": [dict(m) for m in changeset.moves],
            "imports": [{"to": i["to"], "id": i["id"]} for i in changeset.imports],
        },
        "resources": resources,
        "providers": _provider_view(provider_configs),
        "stage": stage,
        "release": dict(release) if release is not None else None,
        "user": user if user is not None else current_actor().name,
        "time": _now(now),
        "plan": {"name": changeset.plan_name, "file": changeset.plan_file},
    }


def build_change_input(change: Change, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `input` for re-checking one change at apply, once its unknown values are known.

    `base` is the document the plan was checked with; its stage, release, user, time, plan and
    providers are kept, so a policy sees the same context as at plan time.
    """
    entry = change_document(change)
    counts = {a.value: 0 for a in Action}
    counts[entry["action"]] = 1
    base = base or {}
    return {
        "when": "apply",
        "changeset": {"changes": [entry], "counts": counts},
        "resources": {} if entry["after"] is None else {entry["address"]: entry["after"]},
        "providers": base.get("providers", {}),
        "stage": base.get("stage"),
        "release": base.get("release"),
        "user": base.get("user") if base.get("user") is not None else current_actor().name,
        "time": base.get("time") or _now(None),
        "plan": base.get("plan") or {"name": "", "file": ""},
    }


def build_state_input(
    state: State,
    *,
    stage: str | None = None,
    release: Mapping[str, Any] | None = None,
    provider_configs: Mapping[str, Mapping[str, Any]] | None = None,
    plan_file: str = "",
    user: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The `input` for `drift`: every live resource appears as a no-op change with before == after.

    Pass a `State` whose resources were refreshed from the cloud. Sensitive values are in it as
    `{"$sensitive": "sha256:..."}` markers only.
    """
    changes = []
    resources: dict[str, Any] = {}
    for rec in state.resources.values():
        changes.append(
            {
                "address": rec.address,
                "type": rec.type,
                "provider": rec.provider,
                "action": Action.NOOP.value,
                "before": rec.properties,
                "after": rec.properties,
                "after_unknown": [],
                "diff": [],
            }
        )
        resources[rec.address] = rec.properties
    counts = {a.value: 0 for a in Action}
    counts[Action.NOOP.value] = len(changes)
    return {
        "when": "drift",
        "changeset": {"changes": changes, "counts": counts},
        "resources": resources,
        "providers": _provider_view(provider_configs),
        "stage": stage,
        "release": dict(release) if release is not None else None,
        "user": user if user is not None else current_actor().name,
        "time": _now(now),
        "plan": {"name": state.plan_name, "file": plan_file},
    }


def judged_changes(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The changes whose resulting properties policies judge: creates, updates, replaces; at drift, all."""
    changes: list[dict[str, Any]] = doc["changeset"]["changes"]
    if doc.get("when") == "drift":
        return [c for c in changes if c["action"] != Action.DELETE.value]
    return [c for c in changes if c["action"] in JUDGED_ACTIONS]


def is_unknown(change: Mapping[str, Any], path: str) -> bool:
    """Whether `path` (or a parent or child of it) is known only after apply."""
    for u in change.get("after_unknown") or ():
        if u == path or u.startswith(path + ".") or path.startswith(u + "."):
            return True
    return False
