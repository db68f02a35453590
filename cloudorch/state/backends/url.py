"""Backend addresses and options: parse a `--backend` URL and validate a plan's `backend:` block.

Owns the URL grammar (`s3://bucket/prefix`, `gs://bucket/prefix`, `azblob://account/container/prefix`,
`file://path`) and the per-scheme option models, so every mistake is a located ConfigError.
It never opens a connection or imports an SDK.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cloudorch.errors import ConfigError, Location, did_you_mean

SCHEMES_HINT = "schemes: s3://bucket/prefix, gs://bucket/prefix, azblob://account/container/prefix, file://path"

#: Builds the location of a field inside the `backend:` block (None: the option came from a flag).
Locate = Callable[..., Location]


@dataclass(frozen=True)
class BackendURL:
    """A parsed backend address. `bucket` is the S3/GCS bucket or the Azure account; `container`
    is Azure's container; `prefix` has no leading or trailing slash ("" for the bucket root)."""

    scheme: Literal["s3", "gs", "azblob", "file"]
    bucket: str
    container: str
    prefix: str
    text: str

    def object_name(self, key: str, suffix: str) -> str:
        """`prefix/key.suffix`: where the document for state key `key` lives."""
        return f"{self.prefix}/{key}{suffix}" if self.prefix else f"{key}{suffix}"


_PREFIX_HINT = "write the prefix as plain path segments: s3://bucket/team/app (no `.`, `..`, `?`, `#`)"
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_AZ_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_AZ_CONTAINER = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


def parse_backend_url(text: str, where: Location | None = None) -> BackendURL:
    """Parse `text` or raise a ConfigError naming `where` (the plan's `backend.url`, or the flag)."""

    def bad(why: str, hint: str = SCHEMES_HINT) -> ConfigError:
        return ConfigError(f"backend {text!r}: {why}", hint=hint, location=where)

    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise bad("a backend address cannot hold control characters (a newline, a tab, an escape)", hint=_PREFIX_HINT)
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise bad("expected a URL such as s3://bucket/prefix or file://path")
    if scheme == "file":
        if not rest:
            raise bad("file:// needs a directory, e.g. file://.cloudorch or file:///srv/state")
        return BackendURL("file", "", "", rest, text)
    if scheme == "gcs":
        raise bad("unknown scheme gcs://", hint="Google Cloud Storage is gs://bucket/prefix")
    if scheme not in ("s3", "gs", "azblob"):
        guess = did_you_mean(scheme, ["s3", "gs", "azblob", "file"])
        raise bad(f"unknown scheme {scheme}://", hint=f"{guess} " + SCHEMES_HINT if guess else SCHEMES_HINT)
    # object names are built from the prefix: `.`/`..` segments would climb out of it in tools
    # that normalise paths, and `?`/`#` are read as a query or fragment by URL-based clients
    for bad_char in ("?", "#"):
        if bad_char in rest:
            raise bad(f"{bad_char!r} is not allowed in a bucket, container or prefix", hint=_PREFIX_HINT)
    if any(p in (".", "..") for p in rest.split("/")):
        raise bad("a prefix cannot hold `.` or `..` segments", hint=_PREFIX_HINT)
    parts = [p for p in rest.split("/") if p]
    if rest.startswith("/") or not parts:
        raise bad(f"{scheme}:// needs a bucket name right after it")
    if scheme == "azblob":
        if len(parts) < 2:
            raise bad("azblob:// needs an account and a container: azblob://account/container/prefix")
        account, container = parts[0], parts[1]
        if not _AZ_ACCOUNT.match(account):
            raise bad(f"{account!r} is not a storage account name", hint="3-24 lowercase letters and digits")
        if not _AZ_CONTAINER.match(container):
            raise bad(f"{container!r} is not a container name", hint="3-63 lowercase letters, digits and single '-'")
        return BackendURL("azblob", account, container, "/".join(parts[2:]), text)
    bucket = parts[0]
    pattern = _S3_BUCKET if scheme == "s3" else _GCS_BUCKET
    if not pattern.match(bucket):
        raise bad(
            f"{bucket!r} is not a valid bucket name",
            hint="3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit",
        )
    return BackendURL(scheme, bucket, "", "/".join(parts[1:]), text)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- options


class EncryptionOptions(BaseModel):
    """`backend.encryption`: client-side AES-256-GCM of the whole state document."""

    model_config = ConfigDict(extra="forbid")

    key_env: str | None = Field(None, description="Environment variable holding the key (base64 or hex of 32 bytes).")
    key_file: str | None = Field(None, description="File holding the key (base64 or hex text, or 32 raw bytes).")
    old_keys: list[OldKey] = Field(
        default_factory=list,
        description="Keys of earlier rotations: tried when reading versions written before `state rekey`.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> EncryptionOptions:
        if (self.key_env is None) == (self.key_file is None):
            raise ValueError("set exactly one of key_env and key_file")
        return self


class OldKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_env: str | None = None
    key_file: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> OldKey:
        if (self.key_env is None) == (self.key_file is None):
            raise ValueError("set exactly one of key_env and key_file")
        return self


EncryptionOptions.model_rebuild()


class CommonOptions(BaseModel):
    """Options every backend understands."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, description="s3://, gs://, azblob:// or file:// address of the state.")
    encryption: EncryptionOptions | None = Field(None, description="Client-side encryption of state documents.")
    lease_seconds: float = Field(
        60.0, gt=0, le=3600, description="Lock lease; a holder that stops renewing loses the lock after this."
    )
    history_limit: int = Field(20, ge=1, description="How many versions `state history` lists.")


class S3Options(CommonOptions):
    endpoint: str | None = Field(
        None, description="S3 endpoint (MinIO, LocalStack, moto); $AWS_ENDPOINT_URL works too."
    )
    region: str | None = Field(None, description="The bucket's region; default: the profile's, then us-east-1.")
    profile: str | None = Field(None, description="Named profile from ~/.aws/config.")
    kms_key_id: str | None = Field(None, description="Server-side encryption with this KMS key (SSE-KMS).")
    lock_table: str | None = Field(
        None, description="DynamoDB table (hash key `LockID`, string) to hold the lock instead of a lock object."
    )


class GcsOptions(CommonOptions):
    endpoint: str | None = Field(None, description="Storage endpoint (an emulator); $STORAGE_EMULATOR_HOST works too.")
    project: str | None = Field(None, description="Project for the client; default: the credentials' project.")
    kms_key_name: str | None = Field(None, description="Cloud KMS key for server-side encryption of new objects.")


class AzureOptions(CommonOptions):
    connection_string: str | None = Field(
        None, description="Storage connection string; $AZURE_STORAGE_CONNECTION_STRING works too."
    )
    account_url: str | None = Field(
        None, description="Blob endpoint (default https://ACCOUNT.blob.core.windows.net), with DefaultAzureCredential."
    )


class FileOptions(CommonOptions):
    pass


OPTIONS_BY_SCHEME: dict[str, type[CommonOptions]] = {
    "s3": S3Options,
    "gs": GcsOptions,
    "azblob": AzureOptions,
    "file": FileOptions,
}


def parse_options(scheme: str, block: Mapping[str, Any], locate: Locate | None) -> CommonOptions:
    """Validate the `backend:` block for `scheme`; errors name the field and its file:line."""
    model = OPTIONS_BY_SCHEME[scheme]
    try:
        return model.model_validate(dict(block))
    except ValidationError as exc:
        err = exc.errors()[0]
        path = [str(p) for p in err["loc"]]
        where = locate(*path) if locate is not None else Location("backend", field="backend." + ".".join(path))
        hint = f"options for {scheme}:// backends: " + ", ".join(sorted(model.model_fields))
        if err["type"] == "extra_forbidden" and len(path) == 1:
            guess = did_you_mean(path[0], list(model.model_fields))
            known_elsewhere = [s for s, m in OPTIONS_BY_SCHEME.items() if path[0] in m.model_fields]
            if known_elsewhere:
                elsewhere = f"`{path[0]}` is an option of {', '.join(s + '://' for s in known_elsewhere)} backends"
                hint = f"{guess} ({elsewhere})" if guess else f"{elsewhere}; {hint}"
            elif guess:
                hint = guess
            raise ConfigError(f"backend.{path[0]}: unknown option", hint=hint, location=where) from exc
        raise ConfigError(f"backend.{'.'.join(path)}: {err['msg']}", hint=hint, location=where) from exc


def check_backend_block(url: str | None, block: Mapping[str, Any], locate: Locate | None) -> CommonOptions:
    """Validate a backend address and its options without opening anything (`cloudorch validate`)."""
    target = url or block.get("url")
    if not target:
        return parse_options("file", block, locate)
    where = Location("--backend") if url else (locate("url") if locate is not None else None)
    return parse_options(parse_backend_url(str(target), where).scheme, block, locate)
