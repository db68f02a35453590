"""KMS: `aws.kms_key` and `aws.kms_alias`.

A key is never deleted at once: `delete` schedules its deletion after `deletion_window_in_days`,
and a key pending deletion reads as gone (it cannot be used, and a new apply makes a new key).
Keys have no name, so `find` looks for the `cloudorch:address` tag; an alias *is* a name, so it
is found by it. Settings a user leaves unset (`enable_key_rotation`, `policy`) are not read, which
keeps a refresh at two calls per key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import field_validator, model_validator

from cloudorch.provider.contract import (
    RECOMPUTED,
    ErrorKind,
    LookupQuery,
    Observed,
    ProviderError,
    ReadRequest,
    ResourceProperties,
    prop,
)
from cloudorch_aws.resource import AwsResource, tag_dict, tag_list

GONE = ("NotFoundException",)
#: key states in which a key counts as deleted: it can never be used again unless cancelled
DELETED_STATES = frozenset({"PendingDeletion", "PendingReplicaDeletion"})


def same_key(asked: str | None, seen: str | None) -> bool:
    """Whether two ways of naming a KMS key name the same one: a key id, its ARN, an alias or the
    alias's ARN (AWS answers with whichever form it likes; the user wrote one of them)."""
    if asked is None or seen is None:
        return asked == seen
    return asked == seen or seen.endswith("/" + asked) or asked.endswith("/" + seen) or (
        asked.split(":")[-1] == seen.split(":")[-1]
    )


def key_as_asked(asked: str | None, seen: str | None) -> str | None:
    """The key as the user wrote it when AWS reports the same key in another form."""
    return asked if same_key(asked, seen) else seen


# ============================================================================ key


class KeyProperties(ResourceProperties):
    """A customer managed KMS key."""

    description: str = prop("", max_length=8192, description="Free text shown in the console.")
    key_usage: Literal["ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC"] = prop(
        "ENCRYPT_DECRYPT", force_new=True, description="What the key is for (fixed at create)."
    )
    key_spec: str = prop(
        "SYMMETRIC_DEFAULT",
        force_new=True,
        pattern=r"^(SYMMETRIC_DEFAULT|RSA_(2048|3072|4096)|ECC_(NIST_P(256|384|521)|SECG_P256K1)|HMAC_(224|256|384|512)|SM2)$",
        description="Key material type, e.g. SYMMETRIC_DEFAULT, RSA_2048, HMAC_256 (fixed at create).",
    )
    enabled: bool = prop(True, description="Whether the key can be used.")
    enable_key_rotation: bool | None = prop(
        None, description="Rotate the key material yearly (symmetric keys only); None leaves it unmanaged."
    )
    policy: dict[str, Any] | None = prop(
        None, description="The key policy document; None keeps the policy AWS gives a new key, unmanaged."
    )
    deletion_window_in_days: int = prop(
        30,
        ge=7,
        le=30,
        description="Days between a destroy and the key's real deletion (AWS allows 7-30); only used on destroy.",
    )
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")

    @model_validator(mode="after")
    def _rotation_needs_symmetric(self) -> KeyProperties:
        if self.enable_key_rotation and self.key_spec != "SYMMETRIC_DEFAULT":
            raise ValueError("enable_key_rotation needs key_spec SYMMETRIC_DEFAULT (AWS rotates only symmetric keys)")
        return self


class KeyResource(AwsResource[KeyProperties]):
    """A KMS key; the id is its key id (a UUID)."""

    type_name = "aws.kms_key"
    Properties = KeyProperties
    service = "kms"
    description = "A customer managed KMS key; destroy schedules its deletion after a waiting period."
    attributes = {"key_id": "The key id (a UUID).", "arn": "The key ARN."}
    # nothing a key reports changes on an update: the id and ARN are the key's for life
    recomputed_on_update = frozenset()

    def create(self, address: str, props: KeyProperties) -> Observed:
        kwargs: dict[str, Any] = {}
        if props.policy is not None:
            kwargs["Policy"] = json.dumps(props.policy)
        got = self.call(
            address,
            "create_key",
            Description=props.description,
            KeyUsage=props.key_usage,
            KeySpec=props.key_spec,
            Tags=tag_list(self.tags_to_apply(address, props.tags), "TagKey", "TagValue"),
            **kwargs,
        )
        meta = got["KeyMetadata"]
        key_id = str(meta["KeyId"])

        def settle() -> Observed:
            # idempotent steps on the key that exists: retried alone, never by a second create
            self._settings(address, key_id, None, props)
            if props.enabled and props.enable_key_rotation is None and props.policy is None:
                # CreateKey answered with everything a read would say: no read back (one call per key)
                return self._created(key_id, meta, props)
            seen = self.read(address, key_id, props)
            if seen is None:
                vanished = f"KMS key {key_id} vanished after create"
                raise ProviderError(vanished, kind=ErrorKind.TRANSIENT, address=address)
            return seen

        return self.finish_create(address, key_id, settle)

    @staticmethod
    def _created(key_id: str, meta: Mapping[str, Any], props: KeyProperties) -> Observed:
        out = props.model_dump(mode="json")
        out["key_spec"] = meta.get("KeySpec") or props.key_spec
        return Observed(key_id, out, {"key_id": key_id, "arn": meta["Arn"]})

    def _settings(self, address: str, key_id: str, old: KeyProperties | None, new: KeyProperties) -> None:
        if old is not None and old.description != new.description:
            self.call(address, "update_key_description", KeyId=key_id, Description=new.description)
        # at create the policy went with CreateKey
        if new.policy is not None and old is not None and old.policy != new.policy:
            self.call(address, "put_key_policy", KeyId=key_id, PolicyName="default", Policy=json.dumps(new.policy))
        if new.enable_key_rotation is not None and (old is None or old.enable_key_rotation != new.enable_key_rotation):
            if new.enable_key_rotation:
                self.call(address, "enable_key_rotation", KeyId=key_id)
            elif old is not None:  # a new key does not rotate
                self.call(address, "disable_key_rotation", KeyId=key_id)
        if (old is None and not new.enabled) or (old is not None and old.enabled != new.enabled):
            self.call(address, "enable_key" if new.enabled else "disable_key", KeyId=key_id)

    def update(self, address: str, id: str, old: KeyProperties, new: KeyProperties) -> Observed:
        self._settings(address, id, old, new)
        if old.tags != new.tags:
            removed = [k for k in old.tags if k not in new.tags]
            if removed:
                self.call(address, "untag_resource", KeyId=id, TagKeys=removed)
            tags = tag_list(self.tags_to_apply(address, new.tags), "TagKey", "TagValue")
            self.call(address, "tag_resource", KeyId=id, Tags=tags)
        seen = self.read(address, id, new)
        if seen is None:
            raise ProviderError(f"KMS key {id} is gone", kind=ErrorKind.FATAL, address=address)
        return seen

    def _metadata(self, address: str | None, key_id: str) -> dict[str, Any] | None:
        got = self.call(address, "describe_key", KeyId=key_id, missing=GONE)
        if got is None:
            return None
        meta: dict[str, Any] = got["KeyMetadata"]
        return None if meta.get("KeyState") in DELETED_STATES else meta

    def _observe(
        self, address: str | None, key_id: str, props: KeyProperties | None, meta: Mapping[str, Any] | None = None
    ) -> Observed | None:
        meta = meta if meta is not None else self._metadata(address, key_id)
        if meta is None:
            return None
        key_id = str(meta["KeyId"])
        tags = self.call(address, "list_resource_tags", KeyId=key_id, missing=GONE)
        if tags is None:
            return None
        out: dict[str, Any] = {
            "description": meta.get("Description") or "",
            "key_usage": meta.get("KeyUsage", "ENCRYPT_DECRYPT"),
            "key_spec": meta.get("KeySpec") or meta.get("CustomerMasterKeySpec") or "SYMMETRIC_DEFAULT",
            "enabled": bool(meta.get("Enabled", True)),
            "enable_key_rotation": None,
            "policy": None,
            "tags": self.observed_tags(tag_dict(tags.get("Tags"), "TagKey", "TagValue"), props.tags if props else None),
        }
        if props is not None:
            out["deletion_window_in_days"] = props.deletion_window_in_days  # AWS keeps it only once scheduled
        rotates = out["key_spec"] == "SYMMETRIC_DEFAULT"
        if (props is None and rotates) or (props is not None and props.enable_key_rotation is not None):
            got = self.call(address, "get_key_rotation_status", KeyId=key_id, missing=GONE)
            out["enable_key_rotation"] = bool((got or {}).get("KeyRotationEnabled", False))
        if props is not None and props.policy is not None:
            got = self.call(address, "get_key_policy", KeyId=key_id, PolicyName="default", missing=GONE)
            out["policy"] = json.loads((got or {}).get("Policy") or "null")
        return Observed(key_id, out, {"key_id": key_id, "arn": meta["Arn"]})

    def read(self, address: str, id: str, props: KeyProperties) -> Observed | None:
        # KMS lists keys without their state or tags: `read_many` reads each key in parallel
        return self._observe(address, id, props)

    def delete(self, address: str, id: str, props: KeyProperties) -> None:
        # a key already pending deletion (or gone) is deleted as far as cloudorch is concerned
        try:
            self.call(address, "schedule_key_deletion", KeyId=id, PendingWindowInDays=props.deletion_window_in_days,
                      missing=GONE)  # fmt: skip
        except ProviderError:
            if self._metadata(address, id) is not None:
                raise

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(
                f"no usable KMS key {id}",
                kind=ErrorKind.FATAL,
                address=address,
                hint="give the key id or ARN of a key that is not pending deletion",
            )
        return seen

    def _listed(self, address: str | None) -> list[str]:
        return [str(k["KeyId"]) for k in self.paginate(address, "list_keys", "Keys")]

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        return self.lookup_listed(query, lambda i: self._observe(address, i, None), lambda: self._listed(address))

    def find(self, address: str, props: KeyProperties) -> Observed | None:
        found = self.find_all(address, props)
        return found[0] if found else None

    def find_all(self, address: str, props: KeyProperties) -> list[Observed]:
        """Keys carrying this address's tag (KMS has no tag filter: every key's tags are read)."""

        def tagged(key_id: str) -> Observed | None:
            tags = self.call(address, "list_resource_tags", KeyId=key_id, missing=(*GONE, "AccessDeniedException"))
            if tags is None or not self.owned_by(tag_dict(tags.get("Tags"), "TagKey", "TagValue"), address):
                return None
            return self._observe(address, key_id, props)

        return [o for o in self.parallel(tagged, self._listed(address)) if o is not None]

    def estimate_seconds(self, props: KeyProperties) -> float:
        return 1.0


# ============================================================================ alias


class AliasProperties(ResourceProperties):
    """A friendly name for a KMS key."""

    name: str = prop(
        force_new=True,
        pattern=r"^alias/[A-Za-z0-9/_-]{1,250}$",
        description="The alias, starting with `alias/` (names under `alias/aws/` are AWS's own).",
    )
    target_key_id: str = prop(description="Key id or ARN the alias points to, usually `${resources.KEY.key_id}`.")

    @field_validator("name")
    @classmethod
    def _not_aws(cls, value: str) -> str:
        if value.startswith("alias/aws/"):
            raise ValueError("alias names under alias/aws/ are reserved for AWS managed keys")
        return value


class AliasResource(AwsResource[AliasProperties]):
    """A KMS alias; the id is its name (`alias/...`)."""

    type_name = "aws.kms_alias"
    Properties = AliasProperties
    service = "kms"
    taggable = False
    description = "A KMS alias pointing at a key; retargeting it is an update in place."
    attributes = {
        "name": "The alias name.",
        "arn": "The alias ARN.",
        "target_key_arn": "ARN of the key it points to.",
    }
    # retargeting changes the key ARN it points to (unknown while the new target is); the
    # alias's own name and ARN stay
    recomputed_on_update = frozenset()

    def plan_update(self, prior: Observed, desired: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(prior.attributes)
        if desired.get("target_key_id") != prior.properties.get("target_key_id"):
            out["target_key_arn"] = RECOMPUTED
        return out

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        name = desired.get("name")
        return {"name": name} if isinstance(name, str) else {}

    @staticmethod
    def _attributes(name: str, key_arn: str) -> dict[str, Any]:
        # arn:aws:kms:REGION:ACCOUNT:key/ID -> arn:aws:kms:REGION:ACCOUNT:alias/NAME
        prefix = key_arn.rsplit(":", 1)[0]
        return {"name": name, "arn": f"{prefix}:{name}", "target_key_arn": key_arn}

    def create(self, address: str, props: AliasProperties) -> Observed:
        try:
            self.call(address, "create_alias", AliasName=props.name, TargetKeyId=props.target_key_id)
        except ProviderError as exc:
            if "AlreadyExists" in exc.message:
                exc.hint = f"the alias {props.name} exists already: import it or choose another name"
            raise

        def settle() -> Observed:
            seen = self.read(address, props.name, props)
            if seen is None:
                raise ProviderError(f"alias {props.name} vanished after create", kind=ErrorKind.TRANSIENT,
                                    address=address)  # fmt: skip
            return seen

        return self.finish_create(address, props.name, settle)

    def update(self, address: str, id: str, old: AliasProperties, new: AliasProperties) -> Observed:
        self.call(address, "update_alias", AliasName=id, TargetKeyId=new.target_key_id)
        seen = self.read(address, id, new)
        if seen is None:
            raise ProviderError(f"alias {id} is gone", kind=ErrorKind.FATAL, address=address)
        return seen

    def _from(self, name: str, meta: Mapping[str, Any], props: AliasProperties | None) -> Observed:
        target = str(meta["KeyId"])
        asked = props.target_key_id if props else None
        known = same_key(asked, target) or same_key(asked, meta["Arn"])
        out = {"name": name, "target_key_id": asked if known else target}
        return Observed(name, out, self._attributes(name, str(meta["Arn"])))

    def _observe(self, address: str | None, name: str, props: AliasProperties | None) -> Observed | None:
        # DescribeKey on an alias answers with the key it points to: one call per alias
        got = self.call(address, "describe_key", KeyId=name, missing=GONE)
        return None if got is None else self._from(name, got["KeyMetadata"], props)

    def read(self, address: str, id: str, props: AliasProperties) -> Observed | None:
        return self._observe(address, id, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        if len(requests) < 2:
            return [self.read(r.address, r.id, r.properties) for r in requests]  # type: ignore[arg-type]
        # one listing of every alias answers them all (its page holds up to 100)
        aliases = {
            a["AliasName"]: a
            for a in self.paginate(None, "list_aliases", "Aliases", PaginationConfig={"PageSize": 100})
            if a.get("TargetKeyId")
        }
        out: list[Observed | None] = []
        for r in requests:
            a = aliases.get(r.id)
            if a is None:
                out.append(None)
                continue
            key_arn = str(a["AliasArn"]).rsplit(":", 1)[0] + ":key/" + str(a["TargetKeyId"])
            out.append(self._from(r.id, {"KeyId": a["TargetKeyId"], "Arn": key_arn}, r.properties))  # type: ignore[arg-type]
        return out

    def delete(self, address: str, id: str, props: AliasProperties) -> None:
        self.call(address, "delete_alias", AliasName=id, missing=GONE)

    def import_(self, address: str, id: str) -> Observed:
        name = id if id.startswith("alias/") else id.split(":", 5)[-1]
        seen = self._observe(address, name, None)
        if seen is None:
            raise ProviderError(f"no KMS alias {name}", kind=ErrorKind.FATAL, address=address)
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        def listed() -> list[str]:
            aliases = self.paginate(address, "list_aliases", "Aliases")
            return [str(a["AliasName"]) for a in aliases if a.get("TargetKeyId")]

        return self.lookup_listed(query, lambda i: self._observe(address, i, None), listed)

    def find(self, address: str, props: AliasProperties) -> Observed | None:
        # an alias is its name: the one a crashed create made is the one with this name
        return self._observe(address, props.name, props)

    def estimate_seconds(self, props: AliasProperties) -> float:
        return 0.5

