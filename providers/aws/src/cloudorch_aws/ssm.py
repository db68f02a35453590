"""SSM Parameter Store: `aws.ssm_parameter`, a String, StringList or SecureString parameter.

`value` is always sensitive (masked, stored hashed); a plain String that other resources should
read in clear goes in `insecure_value` instead (a SecureString cannot). An update overwrites the
parameter, which gives it a new `version`; a change of tags alone does not. Parameters are
refreshed in bulk: `GetParameters` answers 10 names per call and `DescribeParameters` 50, and
tags cost one call per parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

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
from cloudorch_aws.secretsmanager import value_changed

GONE = ("ParameterNotFound",)
#: the default key AWS encrypts a SecureString with when no `key_id` is given
DEFAULT_KEY = "alias/aws/ssm"
#: properties PutParameter writes: changing any of them makes a new version
VERSIONED = ("value", "insecure_value", "type", "description", "key_id", "tier", "allowed_pattern")
GET_BATCH = 10
DESCRIBE_BATCH = 50


class ParameterProperties(ResourceProperties):
    """An SSM parameter."""

    name: str = prop(
        force_new=True,
        pattern=r"^/?[A-Za-z0-9_.\-/]{1,2047}$",
        description="Parameter name; a path such as `/app/db/url` groups parameters.",
    )
    type: Literal["String", "StringList", "SecureString"] = prop(
        "String", force_new=True, description="String, StringList (comma-separated) or SecureString (encrypted)."
    )
    value: str | None = prop(
        None, sensitive=True, description="The value (sensitive: masked, stored hashed). Set this or insecure_value."
    )
    insecure_value: str | None = prop(
        None,
        description="The value of a String or StringList, kept in clear so other resources can reference it.",
    )
    description: str = prop("", max_length=1024, description="Free text.")
    key_id: str | None = prop(
        None,
        description="SecureString only: KMS key (id, ARN or alias, e.g. `${resources.KEY.arn}`); "
        "None: the aws/ssm key.",
    )
    tier: Literal["Standard", "Advanced", "Intelligent-Tiering"] = prop(
        "Standard", description="Standard (4 KB), Advanced (8 KB, charged), or Intelligent-Tiering."
    )
    allowed_pattern: str | None = prop(None, description="A regular expression every value must match.")
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")

    @model_validator(mode="after")
    def _one_value(self) -> ParameterProperties:
        if (self.value is None) == (self.insecure_value is None):
            raise ValueError("set exactly one of value and insecure_value")
        if self.type == "SecureString" and self.insecure_value is not None:
            raise ValueError("a SecureString's value is secret: use value, not insecure_value")
        if self.key_id is not None and self.type != "SecureString":
            raise ValueError("key_id applies only to type SecureString")
        return self

    def the_value(self) -> str:
        return self.value if self.value is not None else str(self.insecure_value)


class ParameterResource(AwsResource[ParameterProperties]):
    """An SSM parameter; the id is its name."""

    type_name = "aws.ssm_parameter"
    Properties = ParameterProperties
    service = "ssm"
    description = "An SSM Parameter Store parameter (String, StringList or SecureString)."
    attributes = {
        "arn": "The parameter ARN.",
        "name": "The parameter name.",
        "version": "The version, raised by every write of the parameter.",
    }
    # an overwrite raises the version (see plan_update: a tags-only update does not)
    recomputed_on_update = frozenset({"version"})

    def plan_update(self, prior: Observed, desired: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(prior.attributes)
        if any(value_changed(prior, desired, k) for k in VERSIONED):
            out["version"] = RECOMPUTED
        return out

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        name = desired.get("name")
        return {"name": name, "version": 1} if isinstance(name, str) else {}

    def _put(self, address: str, props: ParameterProperties, *, create: bool) -> None:
        kwargs: dict[str, Any] = {}
        if props.type == "SecureString":
            kwargs["KeyId"] = props.key_id or DEFAULT_KEY
        if props.allowed_pattern is not None:
            kwargs["AllowedPattern"] = props.allowed_pattern
        if create:
            kwargs["Tags"] = tag_list(self.tags_to_apply(address, props.tags))  # AWS refuses tags on an overwrite
        else:
            kwargs["Overwrite"] = True
        self.call(
            address,
            "put_parameter",
            Name=props.name,
            Value=props.the_value(),
            Type=props.type,
            Description=props.description,
            Tier=props.tier,
            **kwargs,
        )

    def create(self, address: str, props: ParameterProperties) -> Observed:
        try:
            self._put(address, props, create=True)
        except ProviderError as exc:
            if "ParameterAlreadyExists" in exc.message:
                exc.hint = f"a parameter named {props.name} exists: import it or choose another name"
            raise

        def settle() -> Observed:
            # the ARN and version, without decrypting: the rest is what PutParameter was given
            got = self.call(address, "get_parameter", Name=props.name, missing=GONE)
            if got is None:
                raise ProviderError(f"parameter {props.name} vanished after create", kind=ErrorKind.TRANSIENT,
                                    address=address)  # fmt: skip
            param = got["Parameter"]
            attrs = {"arn": param.get("ARN") or "", "name": props.name, "version": param.get("Version")}
            return Observed(props.name, props.model_dump(mode="json"), attrs)

        return self.finish_create(address, props.name, settle)

    def update(self, address: str, id: str, old: ParameterProperties, new: ParameterProperties) -> Observed:
        if any(getattr(old, k) != getattr(new, k) for k in VERSIONED):
            self._put(address, new, create=False)
        if old.tags != new.tags:
            removed = [k for k in old.tags if k not in new.tags]
            if removed:
                self.call(address, "remove_tags_from_resource", ResourceType="Parameter", ResourceId=id,
                          TagKeys=removed)  # fmt: skip
            self.call(address, "add_tags_to_resource", ResourceType="Parameter", ResourceId=id,
                      Tags=tag_list(self.tags_to_apply(address, new.tags)))  # fmt: skip
        seen = self.read(address, id, new)
        if seen is None:
            raise ProviderError(f"parameter {id} is gone", kind=ErrorKind.FATAL, address=address)
        return seen

    def _from(
        self,
        param: Mapping[str, Any],
        meta: Mapping[str, Any] | None,
        tags: Mapping[str, str],
        props: ParameterProperties | None,
    ) -> Observed:
        value = param.get("Value")
        kind = param.get("Type", "String")
        plain = props.insecure_value is not None if props is not None else kind != "SecureString"
        meta = meta or {}
        key = meta.get("KeyId") if kind == "SecureString" else None
        asked_key = props.key_id if props is not None else None
        out: dict[str, Any] = {
            "name": param["Name"],
            "type": kind,
            "value": None if plain else value,
            "insecure_value": value if plain else None,
            "description": meta.get("Description") or "",
            "key_id": None if asked_key is None and key == DEFAULT_KEY else key_as_asked(asked_key, key),
            "tier": meta.get("Tier") or "Standard",
            "allowed_pattern": meta.get("AllowedPattern"),
            "tags": self.observed_tags(tags, props.tags if props else None),
        }
        arn = param.get("ARN") or ""
        return Observed(str(param["Name"]), out, {"arn": arn, "name": param["Name"], "version": param.get("Version")})

    def _tags(self, address: str | None, name: str) -> dict[str, str] | None:
        got = self.call(address, "list_tags_for_resource", ResourceType="Parameter", ResourceId=name,
                        missing=(*GONE, "InvalidResourceId"))  # fmt: skip
        return None if got is None else tag_dict(got.get("TagList"))

    def _observe(self, address: str | None, name: str, props: ParameterProperties | None) -> Observed | None:
        got = self.call(address, "get_parameter", Name=name, WithDecryption=True, missing=GONE)
        if got is None:
            return None
        described = self.call(
            address,
            "describe_parameters",
            ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}],
        ).get("Parameters", [])
        tags = self._tags(address, name)
        if tags is None:
            return None
        return self._from(got["Parameter"], described[0] if described else None, tags, props)

    def read(self, address: str, id: str, props: ParameterProperties) -> Observed | None:
        return self._observe(address, id, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        if len(requests) < 2:
            return [self.read(r.address, r.id, r.properties) for r in requests]  # type: ignore[arg-type]
        names = list(dict.fromkeys(r.id for r in requests))

        def values(chunk: list[str]) -> list[dict[str, Any]]:
            got = self.call(None, "get_parameters", Names=chunk, WithDecryption=True)
            return list(got.get("Parameters", []))

        def metas(chunk: list[str]) -> list[dict[str, Any]]:
            return self.paginate(
                None,
                "describe_parameters",
                "Parameters",
                ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": chunk}],
            )

        params = {
            p["Name"]: p for got in self.parallel(values, _chunks(names, GET_BATCH)) for p in got
        }
        found = [n for n in names if n in params]
        described = {
            p["Name"]: p for got in self.parallel(metas, _chunks(found, DESCRIBE_BATCH)) for p in got
        }

        def one(r: ReadRequest) -> Observed | None:
            if r.id not in params:
                return None
            tags = self._tags(r.address, r.id)
            if tags is None:
                return None
            return self._from(params[r.id], described.get(r.id), tags, r.properties)  # type: ignore[arg-type]

        return self.parallel(one, list(requests))

    def delete(self, address: str, id: str, props: ParameterProperties) -> None:
        self.call(address, "delete_parameter", Name=id, missing=GONE)

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no SSM parameter {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        def listed() -> list[str]:
            filters: list[dict[str, Any]] = []
            if isinstance(query.filter.get("name"), str):
                filters.append({"Key": "Name", "Option": "Equals", "Values": [query.filter["name"]]})
            got = self.paginate(address, "describe_parameters", "Parameters", ParameterFilters=filters)
            return [str(p["Name"]) for p in got]

        def observe(name: str) -> Observed | None:
            # a data source learns what a parameter is, not a secret value
            seen = self._observe(address, name, None)
            if seen is None or seen.properties.get("value") is None:
                return seen
            return Observed(seen.id, {**seen.properties, "value": None}, seen.attributes)

        return self.lookup_listed(query, observe, listed)

    def find(self, address: str, props: ParameterProperties) -> Observed | None:
        tags = self._tags(address, props.name)
        if tags is None or not self.owned_by(tags, address):
            return None
        return self._observe(address, props.name, props)

    def estimate_seconds(self, props: ParameterProperties) -> float:
        return 0.3


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
