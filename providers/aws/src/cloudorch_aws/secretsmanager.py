"""Secrets Manager: `aws.secretsmanager_secret`, a secret and its current value (sensitive).

A new value is put as a new version of the same secret, in place. Destroy schedules deletion
after `recovery_window_in_days` (0: at once, without recovery); a secret pending deletion reads
as gone. Secrets are refreshed in bulk: one `ListSecrets` listing (tags, description, key) and
one `BatchGetSecretValue` per 20 secrets whose value the plan manages.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import model_validator

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
from cloudorch_aws.kms import key_as_asked
from cloudorch_aws.resource import AwsResource, tag_dict, tag_list

GONE = ("ResourceNotFoundException",)
#: what Secrets Manager says of a secret already scheduled for deletion
PENDING_DELETION = ("marked deleted", "scheduled for deletion", "marked for deletion")
#: BatchGetSecretValue answers at most this many secrets per call
BATCH = 20


def value_changed(prior: Observed, desired: Mapping[str, Any], key: str) -> bool:
    """Whether `desired[key]` differs from the value the object has. A refreshed object reports its
    value in clear; state keeps only a hash (a mapping), so without a refresh it counts as changed,
    as does a value the plan does not know yet."""
    if key not in desired:
        return False
    have = prior.properties.get(key)
    if isinstance(have, Mapping):
        return True
    return bool(desired[key] != have)


class SecretProperties(ResourceProperties):
    """A Secrets Manager secret with a string value."""

    name: str = prop(
        force_new=True,
        pattern=r"^[A-Za-z0-9/_+=.@-]{1,512}$",
        description="Secret name (letters, digits and /_+=.@-).",
    )
    description: str = prop("", max_length=2048, description="Free text.")
    secret_string: str | None = prop(
        None,
        sensitive=True,
        description="The current value (sensitive: masked, stored hashed); a change puts a new version. "
        "None leaves the value unmanaged.",
    )
    kms_key_id: str | None = prop(
        None, description="KMS key (id, ARN or alias) encrypting the value; None: the aws/secretsmanager key."
    )
    recovery_window_in_days: int = prop(
        30,
        description="Days a destroyed secret can still be restored (7-30), or 0 to delete it at once "
        "without recovery; only used on destroy.",
    )
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")

    @model_validator(mode="after")
    def _window(self) -> SecretProperties:
        if self.recovery_window_in_days != 0 and not 7 <= self.recovery_window_in_days <= 30:
            raise ValueError("recovery_window_in_days must be 0 (delete at once) or between 7 and 30")
        return self


class SecretResource(AwsResource[SecretProperties]):
    """A secret; the id is its ARN (AWS adds a random suffix to the name)."""

    type_name = "aws.secretsmanager_secret"
    Properties = SecretProperties
    service = "secretsmanager"
    description = "A Secrets Manager secret; its value is sensitive and a new value is a new version."
    attributes = {
        "arn": "The secret ARN.",
        "name": "The secret name.",
        "version_id": "Id of the version holding the current value.",
    }
    # a new value is a new version; the ARN and name stay (see plan_update)
    recomputed_on_update = frozenset({"version_id"})

    def plan_update(self, prior: Observed, desired: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(prior.attributes)
        if value_changed(prior, desired, "secret_string") and desired.get("secret_string") is not None:
            out["version_id"] = RECOMPUTED
        return out

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        name = desired.get("name")
        return {"name": name} if isinstance(name, str) else {}

    @staticmethod
    def _token(address: str, name: str) -> str:
        # deterministic: a create repeated after a lost answer makes no second version
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"cloudorch:{address}:{name}"))

    def create(self, address: str, props: SecretProperties) -> Observed:
        kwargs: dict[str, Any] = {}
        if props.secret_string is not None:
            kwargs["SecretString"] = props.secret_string
        if props.kms_key_id:
            kwargs["KmsKeyId"] = props.kms_key_id
        try:
            got = self.call(
                address,
                "create_secret",
                Name=props.name,
                Description=props.description,
                ClientRequestToken=self._token(address, props.name),
                Tags=tag_list(self.tags_to_apply(address, props.tags)),
                **kwargs,
            )
        except ProviderError as exc:
            if "ResourceExists" in exc.message:
                exc.hint = (
                    f"a secret named {props.name} exists (perhaps scheduled for deletion): import it, restore "
                    "and import it, or choose another name"
                )
            raise
        arn = str(got["ARN"])
        # CreateSecret answered with the ARN and the version: what a read would add is what was asked
        attrs = {"arn": arn, "name": got.get("Name", props.name), "version_id": got.get("VersionId")}
        return Observed(arn, props.model_dump(mode="json"), attrs)


    def update(self, address: str, id: str, old: SecretProperties, new: SecretProperties) -> Observed:
        if old.description != new.description or old.kms_key_id != new.kms_key_id:
            kwargs: dict[str, Any] = {"Description": new.description}
            if new.kms_key_id != old.kms_key_id:
                kwargs["KmsKeyId"] = new.kms_key_id or "alias/aws/secretsmanager"
            self.call(address, "update_secret", SecretId=id, **kwargs)
        if new.secret_string is not None and new.secret_string != old.secret_string:
            self.call(address, "put_secret_value", SecretId=id, SecretString=new.secret_string)
        if old.tags != new.tags:
            removed = [k for k in old.tags if k not in new.tags]
            if removed:
                self.call(address, "untag_resource", SecretId=id, TagKeys=removed)
            self.call(address, "tag_resource", SecretId=id, Tags=tag_list(self.tags_to_apply(address, new.tags)))
        seen = self.read(address, id, new)
        if seen is None:
            raise ProviderError(f"secret {id} is gone", kind=ErrorKind.FATAL, address=address)
        return seen

    def _from(
        self, desc: Mapping[str, Any], value: Mapping[str, Any] | None, props: SecretProperties | None
    ) -> Observed | None:
        if desc.get("DeletedDate"):
            return None  # pending deletion: as good as gone (it cannot be read or changed)
        out: dict[str, Any] = {
            "name": desc["Name"],
            "description": desc.get("Description") or "",
            "kms_key_id": key_as_asked(props.kms_key_id if props else None, desc.get("KmsKeyId")),
            "tags": self.observed_tags(tag_dict(desc.get("Tags")), props.tags if props else None),
        }
        if props is not None:
            out["recovery_window_in_days"] = props.recovery_window_in_days  # a destroy-time setting
        versions = desc.get("VersionIdsToStages") or desc.get("SecretVersionsToStages") or {}
        current = next((v for v, stages in versions.items() if "AWSCURRENT" in stages), None)
        if value is not None:
            out["secret_string"] = value.get("SecretString")
            current = value.get("VersionId", current)
        return Observed(str(desc["ARN"]), out, {"arn": desc["ARN"], "name": desc["Name"], "version_id": current})

    def _observe(
        self, address: str | None, id: str, props: SecretProperties | None, *, with_value: bool = True
    ) -> Observed | None:
        desc = self.call(address, "describe_secret", SecretId=id, missing=GONE)
        if desc is None or desc.get("DeletedDate"):
            return None
        value = None
        if with_value and (props is None or props.secret_string is not None):
            value = self.call(address, "get_secret_value", SecretId=id, missing=GONE)
            if value is None:
                return None
        return self._from(desc, value, props)

    def read(self, address: str, id: str, props: SecretProperties) -> Observed | None:
        return self._observe(address, id, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        if len(requests) < 2:
            return [self.read(r.address, r.id, r.properties) for r in requests]  # type: ignore[arg-type]
        listed = {s["ARN"]: s for s in self.paginate(None, "list_secrets", "SecretList", MaxResults=100)}
        wanted = [r.id for r in requests if r.id in listed and r.properties.secret_string is not None]  # type: ignore[attr-defined]
        chunks = [wanted[i : i + BATCH] for i in range(0, len(wanted), BATCH)]
        values: dict[str, Mapping[str, Any]] = {}
        for got in self.parallel(lambda ids: self.call(None, "batch_get_secret_value", SecretIdList=ids), chunks):
            values.update({v["ARN"]: v for v in got.get("SecretValues", [])})

        def one(r: ReadRequest) -> Observed | None:
            desc = listed.get(r.id)
            if desc is None:
                return None
            props: SecretProperties = r.properties  # type: ignore[assignment]
            if props.secret_string is not None and r.id not in values:
                return self._observe(r.address, r.id, props)  # the batch reported an error for it
            return self._from(desc, values.get(r.id), props)

        return self.parallel(one, list(requests))

    def delete(self, address: str, id: str, props: SecretProperties) -> None:
        window = props.recovery_window_in_days
        kwargs: dict[str, Any] = {"RecoveryWindowInDays": window}
        if window == 0:
            kwargs = {"ForceDeleteWithoutRecovery": True}
        try:
            self.call(address, "delete_secret", SecretId=id, missing=GONE, **kwargs)
        except ProviderError as exc:
            if not any(p in exc.message for p in PENDING_DELETION):
                raise

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no Secrets Manager secret {id} (or it is pending deletion)", kind=ErrorKind.FATAL,
                                address=address)  # fmt: skip
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        def listed() -> list[str]:
            kwargs: dict[str, Any] = {}
            if isinstance(query.filter.get("name"), str):
                kwargs["Filters"] = [{"Key": "name", "Values": [query.filter["name"]]}]
            return [str(s["ARN"]) for s in self.paginate(address, "list_secrets", "SecretList", **kwargs)]

        # a data source reads what a secret is, not its value: its value stays in the cloud
        return self.lookup_listed(query, lambda i: self._observe(address, i, None, with_value=False), listed)

    def find(self, address: str, props: SecretProperties) -> Observed | None:
        desc = self.call(address, "describe_secret", SecretId=props.name, missing=GONE)
        if desc is None or desc.get("DeletedDate") or not self.owned_by(tag_dict(desc.get("Tags")), address):
            return None
        return self._observe(address, str(desc["ARN"]), props)

    def estimate_seconds(self, props: SecretProperties) -> float:
        return 0.5

