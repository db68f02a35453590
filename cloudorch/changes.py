"""Changesets: what `plan` computed and `apply` carries out.

A `ChangeSet` is an ordered list of `Change`s (create / update / replace / delete / no-op per
address) plus what it was made against (state lineage and serial, a hash of the plan file and
variables) so that a saved changeset refuses to apply when the world moved, and a digest over all
of it so that an edited one is refused too; saved files are private (0600, no symlink followed).
It holds data only; computing it is the planner's job, carrying it out the applier's.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from cloudorch import __version__
from cloudorch.errors import ConfigError, StalePlanError
from cloudorch.state.durable import fsync_dir

CHANGESET_FORMAT = 1

#: how a value that will only be known after apply is shown
KNOWN_AFTER_APPLY = "(known after apply)"
#: how a sensitive value is shown
SENSITIVE = "(sensitive)"


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    NOOP = "no-op"

    @property
    def symbol(self) -> str:
        return {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "no-op": " "}[self.value]


class PropertyDiff(BaseModel):
    """One property that differs between state (or the cloud) and the plan file."""

    path: str = Field(description="Property name, dotted for nested values: `tags.owner`.")
    before: Any = Field(None, description="Value now (masked when sensitive).")
    after: Any = Field(None, description="Value wanted; an unresolved `${...}` string when unknown.")
    unknown: bool = Field(False, description="The new value is known only after apply.")
    sensitive: bool = False
    force_new: bool = Field(False, description="Changing it replaces the resource.")


class Change(BaseModel):
    """What will happen to one address."""

    address: str = Field(description="`name` or `name[key]`, prefixed `stage.` inside release stages.")
    type: str = Field(description="Resource type, e.g. `aws.s3_bucket`.")
    provider: str = Field(description="Provider block key: `aws` or an alias such as `aws.west`.")
    action: Action
    id: str | None = Field(None, description="Cloud id from state; None for a create.")
    before: dict[str, Any] | None = Field(None, description="Properties now; None for a create.")
    after: dict[str, Any] | None = Field(
        None,
        description="Properties wanted; None for a delete. Values listed in `after_unknown` hold the "
        "unresolved `${...}` expression and are resolved at apply time.",
    )
    after_unknown: list[str] = Field(
        default_factory=list, description="Property paths known only after apply."
    )
    diff: list[PropertyDiff] = Field(default_factory=list)
    reasons: list[str] = Field(
        default_factory=list, description="Why: force-new property, --replace, gone, ..."
    )
    depends_on: list[str] = Field(default_factory=list, description="Addresses this change waits for.")
    sensitive: list[str] = Field(default_factory=list, description="Property names whose values are masked.")
    create_before_destroy: bool = False
    drift: bool = Field(False, description="The difference comes from a change made outside cloudorch.")
    deposed: str | None = Field(
        None,
        description="For a delete: the key of the deposed (superseded, not yet deleted) object it deletes; "
        "None for the address's current object.",
    )
    tainted: bool = Field(False, description="A replace of an object whose create did not finish.")
    moved_from: str | None = Field(
        None, description="The address state held this object at before a `moved:` entry renamed it."
    )
    importing: str | None = Field(
        None, description="The cloud id an `imports:` entry adopts at this address (read, never created)."
    )

    @property
    def is_change(self) -> bool:
        return self.action is not Action.NOOP

    @property
    def op_key(self) -> str:
        """Identifies the operation: the address, or the address and deposed key for a deposed delete."""
        return self.address if self.deposed is None else f"{self.address} (deposed {self.deposed})"

    @property
    def label(self) -> str:
        """The action as shown: `delete (deposed)` and `replace (tainted)` say why."""
        if self.deposed is not None:
            return f"{self.action.value} (deposed)"
        if self.tainted:
            return f"{self.action.value} (tainted)"
        if self.importing is not None:
            return "import" if self.action is Action.NOOP else f"import, {self.action.value}"
        if self.moved_from is not None and self.action is Action.NOOP:
            return "move"
        return self.action.value


class ChangeSet(BaseModel):
    """The result of `plan`; saved with `plan -o FILE` and applied with `apply FILE`."""

    format_version: int = CHANGESET_FORMAT
    cloudorch_version: str = __version__
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    plan_name: str
    plan_file: str = Field(description="Path of the plan file, as given on the command line.")
    plan_hash: str = Field(description="sha256 of the plan file text and the variable values.")
    state_key: str = Field("default", description="Which state document (plan name, stage).")
    state_lineage: str | None = Field(
        None, description="Lineage of the state planned against; None if empty."
    )
    state_serial: int = Field(0, description="Serial of the state planned against.")
    destroy: bool = False
    variables: dict[str, Any] = Field(default_factory=dict, description="Variable values (sensitive masked).")
    changes: list[Change] = Field(default_factory=list)
    outputs: dict[str, Any] = Field(
        default_factory=dict, description="Output expressions, resolved at apply."
    )
    policy_results: list[dict[str, Any]] = Field(default_factory=list, description="Filled by policy checks.")
    refreshed: bool = True
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="The --var and --var-file inputs, so `apply FILE` reloads the same plan and variables.",
    )
    moves: list[dict[str, str]] = Field(
        default_factory=list,
        description="Addresses `moved:` renames in state (`from`, `to`), with no cloud call.",
    )
    imports: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Objects `imports:` adopts: `to`, `id`, and the state `record` read at plan.",
    )
    data: dict[str, Any] = Field(
        default_factory=dict, description="The values `data:` entries read at plan (null: optional, not found)."
    )
    notes: list[str] = Field(default_factory=list, description="Things worth knowing that change nothing.")
    digest: str | None = Field(
        None,
        description="sha256 over the canonical JSON of every other field (changes, inputs, state lineage "
        "and serial...), set by `save`; `load` refuses a saved plan whose content no longer matches it. "
        "Tamper evidence against edits, not a signature: anyone who can write the file can recompute it.",
    )

    def masked(self) -> ChangeSet:
        """This changeset as people and machines may see it: every sensitive value masked.

        The one function every rendering, `--json` document, policy input and saved plan goes
        through. The changeset itself keeps real values in memory, for the applier.
        """
        return self.model_copy(update={"changes": [mask_change(c) for c in self.changes]})

    def counts(self) -> dict[str, int]:
        out = {a.value: 0 for a in Action}
        for c in self.changes:
            out[c.action] += 1  # a StrEnum member finds its value's key (`.value` is slow, per change)
        return out

    @property
    def has_changes(self) -> bool:
        noop = Action.NOOP
        return any(c.action is not noop for c in self.changes) or bool(self.moves) or bool(self.imports)

    def by_address(self) -> dict[str, Change]:
        """The change of each address's current object (deposed deletes are not listed)."""
        return {c.address: c for c in self.changes if c.deposed is None}

    def compute_digest(self) -> str:
        """The digest `save` records: over the JSON document this changeset saves as, minus `digest`."""
        return _digest(json.loads(self.model_dump_json(exclude={"digest"})))

    def save(self, path: Path) -> None:
        """Write the changeset with its digest, readable by its owner only (0600).

        The temp file is created with O_EXCL|O_NOFOLLOW, so a symlink planted in its place is
        never followed; the rename then replaces `path` itself (a symlink at `path` is replaced,
        not written through)."""
        # sensitive values are never written: `apply FILE` takes them from the plan file and the
        # variables given again (see `cloudorch.run.apply.plan_saved`)
        doc = self.masked()
        self.digest = doc.digest = doc.compute_digest()
        data = doc.model_dump_json(indent=1).encode()
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(tmp, flags, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"could not write the saved plan {path}: {exc.strerror or exc}",
                hint="check that its directory exists and is writable by you",
            ) from exc
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(path.parent)

    @classmethod
    def load(cls, path: Path) -> ChangeSet:
        """Read a saved changeset; refuse it unless its digest matches its content."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"saved plan {path} does not exist") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"{path} is not a saved cloudorch plan: {exc}",
                hint="make one with `cloudorch plan PLAN_FILE -o FILE`",
            ) from exc
        if not isinstance(raw, dict) or raw.get("format_version") != CHANGESET_FORMAT:
            raise StalePlanError(
                f"{path} was saved by another version of cloudorch (format {raw.get('format_version')!r})"
                if isinstance(raw, dict)
                else f"{path} is not a saved cloudorch plan",
                hint="run `cloudorch plan -o FILE` again",
            )
        recorded = raw.get("digest")
        if not isinstance(recorded, str) or not recorded:
            raise StalePlanError(
                f"saved plan {path} carries no digest, so its changes cannot be checked",
                hint="make it again with `cloudorch plan PLAN_FILE -o FILE` and apply that file",
            )
        try:
            cs = cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"{path} is not a valid saved plan: {exc.errors()[0]['msg']}") from exc
        # over the document as written, every key: a saved plan from an older cloudorch whose model
        # has gained defaulted fields since still checks, and no edit goes unseen
        if _digest({k: v for k, v in raw.items() if k != "digest"}) != recorded:
            raise StalePlanError(
                f"saved plan {path} was changed after it was saved (its digest does not match its content); "
                "refusing to apply it",
                hint="do not edit saved plans: run `cloudorch plan PLAN_FILE -o FILE` again and review the new plan",
            )
        return cs

    @staticmethod
    def looks_saved(path: Path) -> bool:
        """A saved changeset is JSON; a plan file is YAML (cheap sniff for `apply FILE`)."""
        try:
            with open(path, "rb") as fh:
                head = fh.read(64).lstrip()
        except OSError:
            return False
        return head.startswith(b"{") and b'"format_version"' in head


def _mask_value(value: Any) -> Any:
    return None if value is None else SENSITIVE


def mask_change(c: Change) -> Change:
    """A change with the values of its sensitive properties (`c.sensitive`) replaced by `SENSITIVE`."""
    if not c.sensitive:
        return c
    sens = set(c.sensitive)

    def props(values: dict[str, Any] | None) -> dict[str, Any] | None:
        if values is None:
            return None
        return {k: (_mask_value(v) if k in sens else v) for k, v in values.items()}

    diff = [
        d.model_copy(update={"before": _mask_value(d.before), "after": _mask_value(d.after), "sensitive": True})
        if d.sensitive or d.path.split(".", 1)[0] in sens
        else d
        for d in c.diff
    ]
    return c.model_copy(update={"before": props(c.before), "after": props(c.after), "diff": diff})


def mask_values(value: Any, secrets: set[str]) -> Any:
    """`value` with every string containing one of `secrets` replaced by `SENSITIVE` (recursively).

    For text built outside the changeset (outputs, messages) that may embed a secret value."""
    if not secrets:
        return value
    if isinstance(value, str):
        return SENSITIVE if any(s in value for s in secrets) else value
    if isinstance(value, dict):
        return {k: mask_values(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_values(v, secrets) for v in value]
    return value


def redact_text(text: str, secrets: set[str] | frozenset[str], *, shortest: int = 6) -> str:
    """`text` with every secret of `shortest` characters or more replaced by `SENSITIVE`, also as
    it appears escaped inside JSON or XML (a report in any format)."""
    from xml.sax.saxutils import escape as xml_escape

    for secret in sorted((s for s in secrets if len(s) >= shortest), key=len, reverse=True):
        for form in {secret, json.dumps(secret)[1:-1], xml_escape(secret, {'"': "&quot;"})}:
            if form in text:
                text = text.replace(form, SENSITIVE)
    return text


def _digest(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
