"""S3: `aws.s3_bucket` and `aws.s3_object`.

Buckets are refreshed in bulk (one `ListBuckets`, then one `GetBucketTagging` per bucket plus
one call per other setting the user manages). An object's content is compared through a
sha256 kept in its metadata, so a changed local `source` file plans an update without
downloading anything.
"""

from __future__ import annotations

import hashlib
import mimetypes
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
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
from cloudorch_aws.resource import AwsResource, Shape, tag_dict, tag_list

NO_BUCKET = ("NoSuchBucket", "404", "NotFound")
NO_OBJECT = (*NO_BUCKET, "NoSuchKey")
#: metadata key holding the sha256 of the content cloudorch uploaded (stripped on read)
CONTENT_HASH_KEY = "cloudorch-sha256"


class Encryption(Shape):
    sse_algorithm: Literal["AES256", "aws:kms", "aws:kms:dsse"] = prop(
        "AES256", description="Default server-side encryption of new objects."
    )
    kms_key_id: str | None = prop(None, description="KMS key id or ARN for aws:kms; None: the AWS managed key.")
    bucket_key_enabled: bool = prop(False, description="Use an S3 Bucket Key to cut KMS request costs.")


class PublicAccessBlock(Shape):
    block_public_acls: bool = prop(True, description="Reject requests that add public ACLs.")
    ignore_public_acls: bool = prop(True, description="Ignore public ACLs on the bucket and its objects.")
    block_public_policy: bool = prop(True, description="Reject bucket policies that grant public access.")
    restrict_public_buckets: bool = prop(True, description="Only AWS principals may use public policies.")


class LifecycleRule(Shape):
    id: str = prop(description="Rule name, unique in the bucket.")
    prefix: str = prop("", description="Only objects whose key starts with this; empty: every object.")
    enabled: bool = prop(True, description="Whether the rule is applied.")
    expiration_days: int | None = prop(None, ge=1, description="Expire current versions after this many days.")
    noncurrent_version_expiration_days: int | None = prop(
        None, ge=1, description="Delete noncurrent versions this many days after they stop being current."
    )
    abort_incomplete_multipart_upload_days: int | None = prop(
        None, ge=1, description="Abort multipart uploads left incomplete this many days."
    )


class BucketProperties(ResourceProperties):
    """An S3 bucket. Settings left unset (None) are not managed: cloudorch neither reads nor changes them."""

    name: str = prop(
        force_new=True,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="Globally unique bucket name (3-63 lowercase letters, digits, dots, hyphens).",
    )
    versioning: bool | None = prop(None, description="Keep every version of every object.")
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")
    encryption: Encryption | None = prop(None, description="Default server-side encryption.")
    public_access_block: PublicAccessBlock | None = prop(None, description="Block public access settings.")
    lifecycle_rules: list[LifecycleRule] | None = prop(
        None, description="Lifecycle rules (order does not matter); [] removes every rule."
    )
    force_destroy: bool = prop(
        False,
        description="On delete, first delete every object and version (otherwise a non-empty bucket fails).",
    )

    @model_validator(mode="after")
    def _sort_rules(self) -> BucketProperties:
        if self.lifecycle_rules is not None:
            self.lifecycle_rules = sorted(self.lifecycle_rules, key=lambda r: r.id)
        return self


def _lifecycle_to_aws(rules: Sequence[LifecycleRule]) -> list[dict[str, Any]]:
    out = []
    for r in rules:
        rule: dict[str, Any] = {
            "ID": r.id,
            "Filter": {"Prefix": r.prefix},
            "Status": "Enabled" if r.enabled else "Disabled",
        }
        if r.expiration_days:
            rule["Expiration"] = {"Days": r.expiration_days}
        if r.noncurrent_version_expiration_days:
            rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": r.noncurrent_version_expiration_days}
        if r.abort_incomplete_multipart_upload_days:
            rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": r.abort_incomplete_multipart_upload_days}
        out.append(rule)
    return out


def _lifecycle_from_aws(rules: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rules:
        flt = r.get("Filter") or {}
        prefix = flt.get("Prefix", r.get("Prefix", "")) if isinstance(flt, dict) else ""
        out.append(
            LifecycleRule(
                id=r.get("ID", ""),
                prefix=prefix or "",
                enabled=r.get("Status") == "Enabled",
                expiration_days=(r.get("Expiration") or {}).get("Days"),
                noncurrent_version_expiration_days=(r.get("NoncurrentVersionExpiration") or {}).get("NoncurrentDays"),
                abort_incomplete_multipart_upload_days=(r.get("AbortIncompleteMultipartUpload") or {}).get(
                    "DaysAfterInitiation"
                ),
            ).model_dump(mode="json")
        )
    return sorted(out, key=lambda r: str(r["id"]))


class BucketResource(AwsResource[BucketProperties]):
    """An S3 bucket with its versioning, encryption, public access block, lifecycle and tags."""

    type_name = "aws.s3_bucket"
    Properties = BucketProperties
    service = "s3"
    description = "An S3 bucket: versioning, tags, encryption, public access block, lifecycle rules."
    attributes = {
        "arn": "arn:aws:s3:::NAME",
        "name": "The bucket name.",
        "region": "Region the bucket lives in.",
        "domain_name": "NAME.s3.amazonaws.com",
    }
    recomputed_on_update = frozenset()

    def _attributes(self, name: str) -> dict[str, Any]:
        return {
            "arn": f"arn:aws:s3:::{name}",
            "name": name,
            "region": self.provider.region,
            "domain_name": f"{name}.s3.amazonaws.com",
        }

    # -------------------------------------------------------------- create / update

    def create(self, address: str, props: BucketProperties) -> Observed:
        kwargs: dict[str, Any] = {"Bucket": props.name}
        if self.provider.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.provider.region}
        if self.call(address, "create_bucket", missing=("BucketAlreadyOwnedByYou",), **kwargs) is None:
            # ours already (a crashed apply made it): adopt it unless another address claims it
            tags = self._raw_tags(address, props.name) or {}
            if tags.get("cloudorch:address") not in (
                None,
                self.tags_to_apply(address, {})["cloudorch:address"],
            ):
                raise ProviderError(
                    f"bucket {props.name} already exists and belongs to {tags['cloudorch:address']}",
                    kind=ErrorKind.FATAL,
                    address=address,
                    hint="choose another name, or import it into that address",
                )

        def settle() -> Observed:
            # tags and settings are idempotent puts on the bucket that exists: retried alone
            self._put_tags(address, props.name, props.tags)
            self._configure(address, None, props)
            return Observed(props.name, props.model_dump(mode="json"), self._attributes(props.name))

        return self.finish_create(address, props.name, settle)

    def update(self, address: str, id: str, old: BucketProperties, new: BucketProperties) -> Observed:
        if old.tags != new.tags:
            self._put_tags(address, id, new.tags)
        self._configure(address, old, new)
        return Observed(id, new.model_dump(mode="json"), self._attributes(id))

    def _put_tags(self, address: str, name: str, tags: dict[str, str]) -> None:
        self.call(
            address,
            "put_bucket_tagging",
            Bucket=name,
            Tagging={"TagSet": tag_list(self.tags_to_apply(address, tags))},
        )

    def _configure(self, address: str, old: BucketProperties | None, new: BucketProperties) -> None:
        name = new.name

        def changed(field: str) -> bool:
            value = getattr(new, field)
            return value is not None and (old is None or getattr(old, field) != value)

        if changed("versioning"):
            status = "Enabled" if new.versioning else "Suspended"
            self.call(address, "put_bucket_versioning", Bucket=name, VersioningConfiguration={"Status": status})
        if changed("encryption"):
            enc = new.encryption
            assert enc is not None
            default: dict[str, Any] = {"SSEAlgorithm": enc.sse_algorithm}
            if enc.kms_key_id:
                default["KMSMasterKeyID"] = enc.kms_key_id
            self.call(
                address,
                "put_bucket_encryption",
                Bucket=name,
                ServerSideEncryptionConfiguration={
                    "Rules": [
                        {
                            "ApplyServerSideEncryptionByDefault": default,
                            "BucketKeyEnabled": enc.bucket_key_enabled,
                        }
                    ]
                },
            )
        if changed("public_access_block"):
            pab = new.public_access_block
            assert pab is not None
            self.call(
                address,
                "put_public_access_block",
                Bucket=name,
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": pab.block_public_acls,
                    "IgnorePublicAcls": pab.ignore_public_acls,
                    "BlockPublicPolicy": pab.block_public_policy,
                    "RestrictPublicBuckets": pab.restrict_public_buckets,
                },
            )
        if changed("lifecycle_rules"):
            if new.lifecycle_rules:
                self.call(
                    address,
                    "put_bucket_lifecycle_configuration",
                    Bucket=name,
                    LifecycleConfiguration={"Rules": _lifecycle_to_aws(new.lifecycle_rules)},
                )
            elif old is not None:
                self.call(address, "delete_bucket_lifecycle", Bucket=name)

    # -------------------------------------------------------------- read

    def _raw_tags(self, address: str | None, name: str) -> dict[str, str] | None:
        """The bucket's tags; None when the bucket is gone."""
        try:
            got = self.client.get_bucket_tagging(Bucket=name)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code == "NoSuchTagSet":
                return {}
            if code in NO_BUCKET:
                return None
            raise self.provider.classify(exc, address) from exc
        return tag_dict(got.get("TagSet"))

    def _observe(self, address: str | None, name: str, props: BucketProperties | None) -> Observed | None:
        """Read what `props` manages (everything when None, for import)."""
        raw = self._raw_tags(address, name)
        if raw is None:
            return None
        out: dict[str, Any] = {
            "name": name,
            "tags": self.observed_tags(raw, props.tags if props else None),
            "force_destroy": props.force_destroy if props else False,
            "versioning": None,
            "encryption": None,
            "public_access_block": None,
            "lifecycle_rules": None,
        }
        if props is None or props.versioning is not None:
            got = self.call(address, "get_bucket_versioning", Bucket=name)
            out["versioning"] = got.get("Status") == "Enabled"
        if props is None or props.encryption is not None:
            got = self.call(
                address,
                "get_bucket_encryption",
                Bucket=name,
                missing=("ServerSideEncryptionConfigurationNotFoundError",),
            )
            rules = (got or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
            if rules:
                default = rules[0].get("ApplyServerSideEncryptionByDefault", {})
                out["encryption"] = Encryption(
                    sse_algorithm=default.get("SSEAlgorithm", "AES256"),
                    kms_key_id=default.get("KMSMasterKeyID"),
                    bucket_key_enabled=bool(rules[0].get("BucketKeyEnabled", False)),
                ).model_dump(mode="json")
        if props is None or props.public_access_block is not None:
            got = self.call(
                address,
                "get_public_access_block",
                Bucket=name,
                missing=("NoSuchPublicAccessBlockConfiguration",),
            )
            cfg = (got or {}).get("PublicAccessBlockConfiguration", {})
            out["public_access_block"] = PublicAccessBlock(
                block_public_acls=bool(cfg.get("BlockPublicAcls", False)),
                ignore_public_acls=bool(cfg.get("IgnorePublicAcls", False)),
                block_public_policy=bool(cfg.get("BlockPublicPolicy", False)),
                restrict_public_buckets=bool(cfg.get("RestrictPublicBuckets", False)),
            ).model_dump(mode="json")
        if props is None or props.lifecycle_rules is not None:
            got = self.call(
                address,
                "get_bucket_lifecycle_configuration",
                Bucket=name,
                missing=("NoSuchLifecycleConfiguration",),
            )
            out["lifecycle_rules"] = _lifecycle_from_aws((got or {}).get("Rules", []))
        return Observed(name, out, self._attributes(name))

    def read(self, address: str, id: str, props: BucketProperties) -> Observed | None:
        return self._observe(address, id, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        if len(requests) < 2:
            return [self.read(r.address, r.id, r.properties) for r in requests]  # type: ignore[arg-type]
        # one ListBuckets tells which are gone without a call each
        existing = {b["Name"] for b in self.paginate(None, "list_buckets", "Buckets")}

        def one(r: ReadRequest) -> Observed | None:
            if r.id not in existing:
                return None
            return self._observe(r.address, r.id, r.properties)  # type: ignore[arg-type]

        return self.parallel(one, list(requests))

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no S3 bucket named {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        def listed() -> list[str]:
            names = [b["Name"] for b in self.paginate(address, "list_buckets", "Buckets")]
            want = query.filter.get("name")
            return [n for n in names if n == want] if isinstance(want, str) else names

        return self.lookup_listed(query, lambda name: self._observe(address, name, None), listed)

    def find(self, address: str, props: BucketProperties) -> Observed | None:
        raw = self._raw_tags(address, props.name)
        if raw is None or not (self.owned_by(raw, address) or not raw):
            return None
        return self._observe(address, props.name, props)

    # -------------------------------------------------------------- delete

    def delete(self, address: str, id: str, props: BucketProperties) -> None:
        if props.force_destroy:
            self._empty(address, id)
        got = self.call(address, "delete_bucket", Bucket=id, missing=NO_BUCKET)
        if got is None:
            return
        self.wait(address, "bucket_not_exists", delay=1, max_attempts=60, Bucket=id)

    def _empty(self, address: str, name: str) -> None:
        try:
            pages = self.client.get_paginator("list_object_versions").paginate(Bucket=name)
            for page in pages:
                keys = [
                    {"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                ]
                if keys:
                    self.client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in NO_BUCKET:
                return
            raise self.provider.classify(exc, address) from exc

    def estimate_seconds(self, props: BucketProperties) -> float:
        return 1.0


# ============================================================================ objects


class ObjectProperties(ResourceProperties):
    """An S3 object whose body is `content` (text) or `source` (a local file, hashed)."""

    bucket: str = prop(force_new=True, description="Bucket name, usually `${resources.B.name}`.")
    key: str = prop(force_new=True, min_length=1, description="Object key.")
    content: str | None = prop(None, description="The body as text; exactly one of content and source.")
    source: str | None = prop(
        None, description="Path of a local file to upload (relative to the plan file); its hash is compared."
    )
    content_type: str | None = prop(None, description="Content-Type; None: guessed from the key.")
    metadata: dict[str, str] = prop(default_factory=dict, description="User metadata (x-amz-meta-*).")
    tags: dict[str, str] = prop(default_factory=dict, description="Object tags (at most 10 with the address tag).")

    @model_validator(mode="after")
    def _one_body(self) -> ObjectProperties:
        if (self.content is None) == (self.source is None):
            raise ValueError("set exactly one of `content` and `source`")
        return self


class ObjectResource(AwsResource[ObjectProperties]):
    """One S3 object; `etag` and `version_id` are attributes."""

    type_name = "aws.s3_object"
    Properties = ObjectProperties
    service = "s3"
    description = "An S3 object from inline content or a local file."
    attributes = {
        "etag": "The object's ETag (without quotes).",
        "version_id": "Version id when the bucket is versioned, else None.",
        "arn": "arn:aws:s3:::BUCKET/KEY",
        "url": "s3://BUCKET/KEY",
    }
    # a put makes a new body (and version)
    recomputed_on_update = frozenset({"etag", "version_id"})

    def _body(self, address: str, props: ObjectProperties) -> bytes:
        if props.content is not None:
            return props.content.encode("utf-8")
        path = self._path(props.source or "")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ProviderError(
                f"cannot read source {path}: {exc.strerror}", kind=ErrorKind.FATAL, address=address, cause=exc
            ) from exc

    def _path(self, source: str) -> Path:
        p = Path(source).expanduser()
        return p if p.is_absolute() else self.provider.context.plan_dir / p

    def _local_hash(self, props: ObjectProperties) -> str | None:
        if props.content is not None:
            return hashlib.sha256(props.content.encode("utf-8")).hexdigest()
        try:
            return hashlib.sha256(self._path(props.source or "").read_bytes()).hexdigest()
        except OSError:
            return None

    @staticmethod
    def _content_type(props: ObjectProperties) -> str:
        if props.content_type:
            return props.content_type
        guessed, _ = mimetypes.guess_type(props.key)
        return guessed or ("text/plain" if props.content is not None else "binary/octet-stream")

    def _attributes(self, bucket: str, key: str, etag: str, version_id: str | None) -> dict[str, Any]:
        return {
            "etag": etag.strip('"'),
            "version_id": None if version_id in (None, "null") else version_id,
            "arn": f"arn:aws:s3:::{bucket}/{key}",
            "url": f"s3://{bucket}/{key}",
        }

    def _put(self, address: str, props: ObjectProperties) -> Observed:
        body = self._body(address, props)
        tags = self.tags_to_apply(address, props.tags)
        got = self.call(
            address,
            "put_object",
            Bucket=props.bucket,
            Key=props.key,
            Body=body,
            ContentType=self._content_type(props),
            Metadata={**props.metadata, CONTENT_HASH_KEY: hashlib.sha256(body).hexdigest()},
            Tagging=urllib.parse.urlencode(tags),
        )
        return Observed(
            f"{props.bucket}/{props.key}",
            props.model_dump(mode="json"),
            self._attributes(props.bucket, props.key, got.get("ETag", ""), got.get("VersionId")),
        )

    def create(self, address: str, props: ObjectProperties) -> Observed:
        return self._put(address, props)

    def update(self, address: str, id: str, old: ObjectProperties, new: ObjectProperties) -> Observed:
        body_same = (
            old.model_dump(exclude={"tags"}) == new.model_dump(exclude={"tags"})
            and self._local_hash(new) == self._local_hash(old)
            and new.source is None  # a source file may have changed since `old` was applied
        )
        if not body_same:
            return self._put(address, new)
        self.call(
            address,
            "put_object_tagging",
            Bucket=new.bucket,
            Key=new.key,
            Tagging={"TagSet": tag_list(self.tags_to_apply(address, new.tags))},
        )
        seen = self.read(address, id, new)
        if seen is None:
            return self._put(address, new)
        return seen

    def _split(self, id: str) -> tuple[str, str]:
        bucket, _, key = id.partition("/")
        return bucket, key

    def read(self, address: str, id: str, props: ObjectProperties | None) -> Observed | None:
        bucket, key = self._split(id)
        head = self.call(address, "head_object", Bucket=bucket, Key=key, missing=NO_OBJECT)
        if head is None:
            return None
        tags = self.call(address, "get_object_tagging", Bucket=bucket, Key=key, missing=NO_OBJECT)
        if tags is None:
            return None
        metadata = dict(head.get("Metadata") or {})
        remote_hash = metadata.pop(CONTENT_HASH_KEY, None)
        etag = str(head.get("ETag", "")).strip('"')
        out: dict[str, Any] = {
            "bucket": bucket,
            "key": key,
            "metadata": dict(sorted(metadata.items())),
            "tags": self.observed_tags(tag_dict(tags.get("TagSet")), props.tags if props else None),
        }
        if props is None:  # import: fetch the body
            body = self.call(address, "get_object", Bucket=bucket, Key=key)["Body"].read()
            out["content"] = body.decode("utf-8", errors="replace")
            out["content_type"] = head.get("ContentType")
        else:
            local = self._local_hash(props)
            same = local is not None and (
                local == remote_hash
                or (
                    remote_hash is None
                    and props.content is not None
                    and hashlib.md5(props.content.encode()).hexdigest() == etag
                )
            )
            changed = f"(differs: remote sha256 {remote_hash or etag})"
            if props.content is not None:
                out["content"] = props.content if same else changed
                out["source"] = None
            else:
                out["source"] = props.source if same else changed
                out["content"] = None
            out["content_type"] = head.get("ContentType") if props.content_type else None
        return Observed(id, out, self._attributes(bucket, key, etag, head.get("VersionId")))

    def delete(self, address: str, id: str, props: ObjectProperties) -> None:
        bucket, key = self._split(id)
        self.call(address, "delete_object", Bucket=bucket, Key=key, missing=NO_OBJECT)

    def import_(self, address: str, id: str) -> Observed:
        seen = self.read(address, id, None)
        if seen is None:
            raise ProviderError(f"no S3 object {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def find(self, address: str, props: ObjectProperties) -> Observed | None:
        return self.read(address, f"{props.bucket}/{props.key}", props)

    def estimate_seconds(self, props: ObjectProperties) -> float:
        return 0.3
