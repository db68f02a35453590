"""ECR: `aws.ecr_repository`, a private image repository.

Destroying a repository that still holds images fails unless `force_delete` is set (then the
images go with it). Repositories are refreshed in bulk: one paginated `DescribeRepositories`
(1000 a page) and one `ListTagsForResource` per repository.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import model_validator

from cloudorch.provider.contract import (
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

GONE = ("RepositoryNotFoundException",)


class RepositoryProperties(ResourceProperties):
    """A private ECR repository."""

    name: str = prop(
        force_new=True,
        pattern=r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$",
        min_length=2,
        max_length=256,
        description="Repository name (lower case; `/` makes namespaces, e.g. `team/web`).",
    )
    image_tag_mutability: Literal["MUTABLE", "IMMUTABLE"] = prop(
        "MUTABLE", description="IMMUTABLE refuses to push a tag that exists already."
    )
    scan_on_push: bool = prop(False, description="Scan each image for vulnerabilities when it is pushed.")
    encryption_type: Literal["AES256", "KMS"] = prop(
        "AES256", force_new=True, description="AES256 (S3-managed keys) or KMS (fixed at create)."
    )
    kms_key: str | None = prop(
        None, force_new=True, description="KMS key ARN when encryption_type is KMS; None: the aws/ecr key."
    )
    force_delete: bool = prop(
        False, description="Destroy the repository even if it holds images (they are deleted); only used on destroy."
    )
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")

    @model_validator(mode="after")
    def _kms(self) -> RepositoryProperties:
        if self.kms_key is not None and self.encryption_type != "KMS":
            raise ValueError("kms_key needs encryption_type KMS")
        return self


class RepositoryResource(AwsResource[RepositoryProperties]):
    """An ECR repository; the id is its name."""

    type_name = "aws.ecr_repository"
    Properties = RepositoryProperties
    service = "ecr"
    description = "A private ECR image repository (tag mutability, scan on push, encryption)."
    attributes = {
        "arn": "The repository ARN.",
        "name": "The repository name.",
        "registry_id": "The account id of the registry.",
        "repository_url": "Where to push and pull: ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME.",
    }
    # all four follow from the name and the account, which an update keeps
    recomputed_on_update = frozenset()

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        name = desired.get("name")
        return {"name": name} if isinstance(name, str) else {}

    def create(self, address: str, props: RepositoryProperties) -> Observed:
        encryption: dict[str, Any] = {"encryptionType": props.encryption_type}
        if props.kms_key:
            encryption["kmsKey"] = props.kms_key
        try:
            got = self.call(
                address,
                "create_repository",
                repositoryName=props.name,
                imageTagMutability=props.image_tag_mutability,
                imageScanningConfiguration={"scanOnPush": props.scan_on_push},
                encryptionConfiguration=encryption,
                tags=tag_list(self.tags_to_apply(address, props.tags)),
            )
        except ProviderError as exc:
            if "AlreadyExists" in exc.message:
                exc.hint = f"a repository named {props.name} exists: import it or choose another name"
            raise
        # CreateRepository answers with the whole repository, and its tags are those just given
        return self._from(got["repository"], self.tags_to_apply(address, props.tags), props)

    def update(self, address: str, id: str, old: RepositoryProperties, new: RepositoryProperties) -> Observed:
        if old.image_tag_mutability != new.image_tag_mutability:
            self.call(address, "put_image_tag_mutability", repositoryName=id,
                      imageTagMutability=new.image_tag_mutability)  # fmt: skip
        if old.scan_on_push != new.scan_on_push:
            self.call(address, "put_image_scanning_configuration", repositoryName=id,
                      imageScanningConfiguration={"scanOnPush": new.scan_on_push})  # fmt: skip
        repo = self._repository(address, id)
        if repo is None:
            raise ProviderError(f"repository {id} is gone", kind=ErrorKind.FATAL, address=address)
        if old.tags != new.tags:
            arn = repo["repositoryArn"]
            removed = [k for k in old.tags if k not in new.tags]
            if removed:
                self.call(address, "untag_resource", resourceArn=arn, tagKeys=removed)
            self.call(address, "tag_resource", resourceArn=arn, tags=tag_list(self.tags_to_apply(address, new.tags)))
        seen = self._with_tags(address, repo, new)
        if seen is None:
            raise ProviderError(f"repository {id} is gone", kind=ErrorKind.FATAL, address=address)
        return seen

    def _from(self, repo: Mapping[str, Any], tags: Mapping[str, str], props: RepositoryProperties | None) -> Observed:
        enc = repo.get("encryptionConfiguration") or {}
        out: dict[str, Any] = {
            "name": repo["repositoryName"],
            "image_tag_mutability": repo.get("imageTagMutability", "MUTABLE"),
            "scan_on_push": bool((repo.get("imageScanningConfiguration") or {}).get("scanOnPush", False)),
            "encryption_type": enc.get("encryptionType", "AES256"),
            "kms_key": key_as_asked(props.kms_key if props else None, enc.get("kmsKey"))
            if props is None or props.kms_key is not None
            else None,
            "tags": self.observed_tags(tags, props.tags if props else None),
        }
        if props is not None:
            out["force_delete"] = props.force_delete  # a destroy-time setting
        attrs = {
            "arn": repo["repositoryArn"],
            "name": repo["repositoryName"],
            "registry_id": repo.get("registryId"),
            "repository_url": repo.get("repositoryUri"),
        }
        return Observed(str(repo["repositoryName"]), out, attrs)

    def _with_tags(
        self, address: str | None, repo: Mapping[str, Any], props: RepositoryProperties | None
    ) -> Observed | None:
        got = self.call(address, "list_tags_for_resource", resourceArn=repo["repositoryArn"], missing=GONE)
        return None if got is None else self._from(repo, tag_dict(got.get("tags")), props)

    def _repository(self, address: str | None, name: str) -> dict[str, Any] | None:
        got = self.call(address, "describe_repositories", repositoryNames=[name], missing=GONE)
        repos = (got or {}).get("repositories", [])
        return dict(repos[0]) if repos else None

    def _observe(self, address: str | None, name: str, props: RepositoryProperties | None) -> Observed | None:
        repo = self._repository(address, name)
        return None if repo is None else self._with_tags(address, repo, props)

    def read(self, address: str, id: str, props: RepositoryProperties) -> Observed | None:
        return self._observe(address, id, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        return self.read_listed(
            requests,
            lambda: {
                r["repositoryName"]: r
                for r in self.paginate(
                    None, "describe_repositories", "repositories", PaginationConfig={"PageSize": 1000}
                )
            },
            lambda r, repo: self._with_tags(r.address, repo, r.properties),  # type: ignore[arg-type]
        )

    def delete(self, address: str, id: str, props: RepositoryProperties) -> None:
        try:
            self.call(address, "delete_repository", repositoryName=id, force=props.force_delete, missing=GONE)
        except ProviderError as exc:
            if "RepositoryNotEmpty" in exc.message:
                exc.hint = "it still holds images: delete them, or set force_delete: true and apply before destroying"
            raise

    def import_(self, address: str, id: str) -> Observed:
        name = id.split(":repository/", 1)[-1].split(".amazonaws.com/", 1)[-1]
        seen = self._observe(address, name, None)
        if seen is None:
            raise ProviderError(f"no ECR repository {name}", kind=ErrorKind.FATAL, address=address)
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        def listed() -> list[str]:
            if isinstance(query.filter.get("name"), str):
                return [query.filter["name"]]
            return [str(r["repositoryName"]) for r in self.paginate(address, "describe_repositories", "repositories")]

        return self.lookup_listed(query, lambda i: self._observe(address, i, None), listed)

    def find(self, address: str, props: RepositoryProperties) -> Observed | None:
        repo = self._repository(address, props.name)
        if repo is None:
            return None
        got = self.call(address, "list_tags_for_resource", resourceArn=repo["repositoryArn"], missing=GONE)
        if got is None or not self.owned_by(tag_dict(got.get("tags")), address):
            return None
        return self._from(repo, tag_dict(got.get("tags")), props)

    def estimate_seconds(self, props: RepositoryProperties) -> float:
        return 0.5
