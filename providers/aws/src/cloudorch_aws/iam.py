"""IAM: `aws.iam_role` (trust policy, inline and managed policies, tags) and `aws.iam_policy`.

Policy documents are compared as parsed JSON, so key order and whitespace never diff. IAM is
global and eventually consistent: a role used right after its creation may be refused for a
few seconds, which `errors.error_kind` classifies as transient so the engine retries.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from cloudorch.provider.contract import ErrorKind, LookupQuery, Observed, ProviderError, ResourceProperties, prop
from cloudorch_aws.resource import AwsResource, tag_dict, tag_list

GONE = ("NoSuchEntity",)


def _document(raw: Any) -> dict[str, Any]:
    """A policy document as a dict, whether AWS gave it parsed, as JSON or URL-encoded JSON."""
    if isinstance(raw, dict):
        return raw
    text = str(raw)
    if text.lstrip().startswith("%7B") or text.lstrip().startswith("%7b"):
        text = urllib.parse.unquote(text)
    loaded = json.loads(text)
    return loaded if isinstance(loaded, dict) else {}


class RoleProperties(ResourceProperties):
    """An IAM role. Policy documents are written as mappings (YAML) and compared as JSON."""

    name: str = prop(force_new=True, pattern=r"^[\w+=,.@-]{1,64}$", description="Role name.")
    path: str = prop("/", force_new=True, description="IAM path, e.g. /service/.")
    assume_role_policy: dict[str, Any] = prop(description="Trust policy: who may assume the role.")
    description: str = prop("", description="Free text.")
    max_session_duration: int = prop(3600, ge=3600, le=43200, description="Longest session, in seconds.")
    inline_policies: dict[str, dict[str, Any]] = prop(
        default_factory=dict, description="Inline policy name -> policy document."
    )
    managed_policy_arns: list[str] = prop(
        default_factory=list, description="ARNs of managed policies to attach (a set: order does not matter)."
    )
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")

    def model_post_init(self, context: Any) -> None:
        self.managed_policy_arns = sorted(set(self.managed_policy_arns))


class RoleResource(AwsResource[RoleProperties]):
    """An IAM role; the id is its name."""

    type_name = "aws.iam_role"
    Properties = RoleProperties
    service = "iam"
    description = "An IAM role with its trust policy, inline policies, attached managed policies and tags."
    attributes = {"arn": "The role ARN.", "name": "The role name.", "unique_id": "AWS's stable id (AROA...)."}
    recomputed_on_update = frozenset()

    def create(self, address: str, props: RoleProperties) -> Observed:
        got = self.call(
            address,
            "create_role",
            missing=("EntityAlreadyExists",),
            RoleName=props.name,
            Path=props.path,
            AssumeRolePolicyDocument=json.dumps(props.assume_role_policy),
            Description=props.description,
            MaxSessionDuration=props.max_session_duration,
            Tags=tag_list(self.tags_to_apply(address, props.tags)),
        )
        if got is None:  # exists: adopt it only if a crashed apply of this address made it
            found = self.call(address, "get_role", RoleName=props.name)
            if not self.owned_by(tag_dict(found["Role"].get("Tags")), address):
                raise ProviderError(
                    f"IAM role {props.name} already exists and was not made by cloudorch for {address}",
                    address=address,
                    hint="import it (`cloudorch import`) or choose another name",
                )
            return self.update(address, props.name, self._current(address, props.name) or props, props)
        role = got["Role"]

        def settle() -> Observed:
            # put and attach are idempotent on the role that exists: retried alone
            for name, doc in props.inline_policies.items():
                self.call(
                    address,
                    "put_role_policy",
                    RoleName=props.name,
                    PolicyName=name,
                    PolicyDocument=json.dumps(doc),
                )
            for arn in props.managed_policy_arns:
                self.call(address, "attach_role_policy", RoleName=props.name, PolicyArn=arn)
            return Observed(props.name, props.model_dump(mode="json"), self._attributes(role))

        return self.finish_create(address, props.name, settle)

    @staticmethod
    def _attributes(role: dict[str, Any]) -> dict[str, Any]:
        return {"arn": role["Arn"], "name": role["RoleName"], "unique_id": role.get("RoleId")}

    def _current(self, address: str, name: str) -> RoleProperties | None:
        seen = self._observe(address, name, None)
        return None if seen is None else RoleProperties.model_validate(seen.properties)

    def update(self, address: str, id: str, old: RoleProperties, new: RoleProperties) -> Observed:
        if old.assume_role_policy != new.assume_role_policy:
            self.call(
                address,
                "update_assume_role_policy",
                RoleName=id,
                PolicyDocument=json.dumps(new.assume_role_policy),
            )
        if (old.description, old.max_session_duration) != (new.description, new.max_session_duration):
            self.call(
                address,
                "update_role",
                RoleName=id,
                Description=new.description,
                MaxSessionDuration=new.max_session_duration,
            )
        for name, doc in new.inline_policies.items():
            if old.inline_policies.get(name) != doc:
                self.call(address, "put_role_policy", RoleName=id, PolicyName=name, PolicyDocument=json.dumps(doc))
        for name in set(old.inline_policies) - set(new.inline_policies):
            self.call(address, "delete_role_policy", RoleName=id, PolicyName=name, missing=GONE)
        for arn in set(new.managed_policy_arns) - set(old.managed_policy_arns):
            self.call(address, "attach_role_policy", RoleName=id, PolicyArn=arn)
        for arn in set(old.managed_policy_arns) - set(new.managed_policy_arns):
            self.call(address, "detach_role_policy", RoleName=id, PolicyArn=arn, missing=GONE)
        if old.tags != new.tags:
            removed = [k for k in old.tags if k not in new.tags]
            if removed:
                self.call(address, "untag_role", RoleName=id, TagKeys=removed)
            self.call(address, "tag_role", RoleName=id, Tags=tag_list(self.tags_to_apply(address, new.tags)))
        role = self.call(address, "get_role", RoleName=id)["Role"]
        return Observed(id, new.model_dump(mode="json"), self._attributes(role))

    def _observe(self, address: str | None, name: str, props: RoleProperties | None) -> Observed | None:
        got = self.call(address, "get_role", RoleName=name, missing=GONE)
        if got is None:
            return None
        role = got["Role"]
        names = self.paginate(address, "list_role_policies", "PolicyNames", RoleName=name)
        inline = {
            n: _document(self.call(address, "get_role_policy", RoleName=name, PolicyName=n)["PolicyDocument"])
            for n in names
        }
        attached = self.paginate(address, "list_attached_role_policies", "AttachedPolicies", RoleName=name)
        tags = tag_dict(role.get("Tags")) or tag_dict(self.paginate(address, "list_role_tags", "Tags", RoleName=name))
        out = {
            "name": role["RoleName"],
            "path": role.get("Path", "/"),
            "assume_role_policy": _document(role.get("AssumeRolePolicyDocument", {})),
            "description": role.get("Description") or "",
            "max_session_duration": int(role.get("MaxSessionDuration", 3600)),
            "inline_policies": dict(sorted(inline.items())),
            "managed_policy_arns": sorted(p["PolicyArn"] for p in attached),
            "tags": self.observed_tags(tags, props.tags if props else None),
        }
        return Observed(name, out, self._attributes(role))

    def read(self, address: str, id: str, props: RoleProperties) -> Observed | None:
        return self._observe(address, id, props)

    def delete(self, address: str, id: str, props: RoleProperties) -> None:
        if self.call(address, "get_role", RoleName=id, missing=GONE) is None:
            return
        for p in self.paginate(address, "list_attached_role_policies", "AttachedPolicies", RoleName=id):
            self.call(address, "detach_role_policy", RoleName=id, PolicyArn=p["PolicyArn"], missing=GONE)
        for n in self.paginate(address, "list_role_policies", "PolicyNames", RoleName=id):
            self.call(address, "delete_role_policy", RoleName=id, PolicyName=n, missing=GONE)
        profiles = self.paginate(address, "list_instance_profiles_for_role", "InstanceProfiles", RoleName=id)
        for ip in profiles:
            self.call(
                address,
                "remove_role_from_instance_profile",
                InstanceProfileName=ip["InstanceProfileName"],
                RoleName=id,
                missing=GONE,
            )
        self.call(address, "delete_role", RoleName=id, missing=GONE)

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no IAM role {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        def listed() -> list[str]:
            names = [r["RoleName"] for r in self.paginate(address, "list_roles", "Roles")]
            want = query.filter.get("name")
            return [n for n in names if n == want] if isinstance(want, str) else names

        return self.lookup_listed(query, lambda name: self._observe(address, name, None), listed)

    def find(self, address: str, props: RoleProperties) -> Observed | None:
        got = self.call(address, "get_role", RoleName=props.name, missing=GONE)
        if got is None or not self.owned_by(tag_dict(got["Role"].get("Tags")), address):
            return None
        return self._observe(address, props.name, props)

    def estimate_seconds(self, props: RoleProperties) -> float:
        return 2.0


# ============================================================================ managed policies


class PolicyProperties(ResourceProperties):
    """A customer managed IAM policy; a changed document becomes its new default version."""

    name: str = prop(force_new=True, pattern=r"^[\w+=,.@-]{1,128}$", description="Policy name.")
    path: str = prop("/", force_new=True, description="IAM path.")
    description: str = prop("", force_new=True, description="Free text (AWS cannot change it later).")
    document: dict[str, Any] = prop(description="The policy document.")
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")


class PolicyResource(AwsResource[PolicyProperties]):
    """A managed IAM policy; the id is its ARN."""

    type_name = "aws.iam_policy"
    Properties = PolicyProperties
    service = "iam"
    description = "A customer managed IAM policy."
    attributes = {"arn": "The policy ARN.", "name": "The policy name.", "version": "Default version id."}
    # a new document is a new default version
    recomputed_on_update = frozenset({"version"})

    def _arn(self, props: PolicyProperties) -> str:
        return f"arn:aws:iam::{self.provider.account_id}:policy{props.path}{props.name}"

    def create(self, address: str, props: PolicyProperties) -> Observed:
        got = self.call(
            address,
            "create_policy",
            missing=("EntityAlreadyExists",),
            PolicyName=props.name,
            Path=props.path,
            Description=props.description,
            PolicyDocument=json.dumps(props.document),
            Tags=tag_list(self.tags_to_apply(address, props.tags)),
        )
        if got is None:
            found = self.find(address, props)
            if found is None:
                raise ProviderError(
                    f"IAM policy {props.name} already exists and was not made by cloudorch for {address}",
                    address=address,
                    hint="import it (`cloudorch import`) or choose another name",
                )
            current = PolicyProperties.model_validate(found.properties)
            return self.update(address, found.id, current, props)
        policy = got["Policy"]
        return Observed(policy["Arn"], props.model_dump(mode="json"), self._attributes(policy))

    @staticmethod
    def _attributes(policy: dict[str, Any]) -> dict[str, Any]:
        return {"arn": policy["Arn"], "name": policy["PolicyName"], "version": policy.get("DefaultVersionId")}

    def update(self, address: str, id: str, old: PolicyProperties, new: PolicyProperties) -> Observed:
        if old.document != new.document:
            versions = self.call(address, "list_policy_versions", PolicyArn=id)["Versions"]
            stale = sorted((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
            if len(versions) >= 5 and stale:  # AWS keeps at most five versions
                self.call(address, "delete_policy_version", PolicyArn=id, VersionId=stale[0]["VersionId"])
            self.call(
                address,
                "create_policy_version",
                PolicyArn=id,
                PolicyDocument=json.dumps(new.document),
                SetAsDefault=True,
            )
        if old.tags != new.tags:
            removed = [k for k in old.tags if k not in new.tags]
            if removed:
                self.call(address, "untag_policy", PolicyArn=id, TagKeys=removed)
            self.call(address, "tag_policy", PolicyArn=id, Tags=tag_list(self.tags_to_apply(address, new.tags)))
        policy = self.call(address, "get_policy", PolicyArn=id)["Policy"]
        return Observed(id, new.model_dump(mode="json"), self._attributes(policy))

    def _observe(self, address: str | None, arn: str, props: PolicyProperties | None) -> Observed | None:
        got = self.call(address, "get_policy", PolicyArn=arn, missing=GONE)
        if got is None:
            return None
        policy = got["Policy"]
        version = self.call(address, "get_policy_version", PolicyArn=arn, VersionId=policy["DefaultVersionId"])[
            "PolicyVersion"
        ]
        tags = tag_dict(policy.get("Tags")) or tag_dict(
            self.call(address, "list_policy_tags", PolicyArn=arn).get("Tags")
        )
        out = {
            "name": policy["PolicyName"],
            "path": policy.get("Path", "/"),
            "description": policy.get("Description") or "",
            "document": _document(version["Document"]),
            "tags": self.observed_tags(tags, props.tags if props else None),
        }
        return Observed(arn, out, self._attributes(policy))

    def read(self, address: str, id: str, props: PolicyProperties) -> Observed | None:
        return self._observe(address, id, props)

    def delete(self, address: str, id: str, props: PolicyProperties) -> None:
        got = self.call(address, "get_policy", PolicyArn=id, missing=GONE)
        if got is None:
            return
        for kind, key, detach, arg in (
            ("PolicyRoles", "RoleName", "detach_role_policy", "RoleName"),
            ("PolicyUsers", "UserName", "detach_user_policy", "UserName"),
            ("PolicyGroups", "GroupName", "detach_group_policy", "GroupName"),
        ):
            for entity in self.paginate(address, "list_entities_for_policy", kind, PolicyArn=id):
                self.call(address, detach, PolicyArn=id, missing=GONE, **{arg: entity[key]})
        for v in self.call(address, "list_policy_versions", PolicyArn=id)["Versions"]:
            if not v["IsDefaultVersion"]:
                self.call(address, "delete_policy_version", PolicyArn=id, VersionId=v["VersionId"], missing=GONE)
        self.call(address, "delete_policy", PolicyArn=id, missing=GONE)

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no IAM policy {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def find(self, address: str, props: PolicyProperties) -> Observed | None:
        seen = self._observe(address, self._arn(props), props)
        if seen is None:
            return None
        got = self.call(address, "list_policy_tags", PolicyArn=seen.id)
        return seen if self.owned_by(tag_dict(got.get("Tags")), address) else None

    def estimate_seconds(self, props: PolicyProperties) -> float:
        return 1.5
