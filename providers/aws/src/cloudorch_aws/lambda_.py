"""Lambda: `aws.lambda_function`, its code zipped from a local path and compared by hash.

A directory is zipped deterministically (sorted names, fixed timestamps) so the same files give
the same CodeSha256 and an unchanged function never plans an update. Environment variables are
sensitive: masked in output and stored hashed in state.
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
import zipfile
from pathlib import Path
from typing import Any

from cloudorch.provider.contract import ErrorKind, Observed, ProviderError, ResourceProperties, prop
from cloudorch_aws.errors import PROPAGATION_HINTS
from cloudorch_aws.resource import AwsResource

GONE = ("ResourceNotFoundException",)
#: how long to wait for a freshly made role to become usable by Lambda (IAM propagation)
ROLE_PROPAGATION_SECONDS = 30.0


def zip_source(path: Path) -> bytes:
    """The deployment package for `path`: a .zip as is, a directory or single file zipped reproducibly."""
    if path.is_file() and path.suffix == ".zip":
        return path.read_bytes()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            name = f.relative_to(path).as_posix() if path.is_dir() else f.name
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, f.read_bytes())
    return buf.getvalue()


def code_sha256(package: bytes) -> str:
    """What Lambda reports as CodeSha256: base64 of the package's sha256."""
    return base64.b64encode(hashlib.sha256(package).digest()).decode()


class FunctionProperties(ResourceProperties):
    """A Lambda function deployed from a local zip file or directory."""

    name: str = prop(force_new=True, pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Function name.")
    role: str = prop(description="Execution role ARN, usually `${resources.ROLE.arn}`.")
    source: str = prop(description="Local .zip file or directory (relative to the plan file); hashed.")
    handler: str = prop(description="Entry point, e.g. `app.handler`.")
    runtime: str = prop("python3.12", description="Runtime identifier.")
    memory_size: int = prop(128, ge=128, le=10240, description="Memory in MB.")
    timeout: int = prop(3, ge=1, le=900, description="Seconds before an invocation is stopped.")
    description: str = prop("", description="Free text.")
    environment: dict[str, str] = prop(
        default_factory=dict,
        sensitive=True,
        description="Environment variables (sensitive: masked, stored hashed).",
    )
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")


class FunctionResource(AwsResource[FunctionProperties]):
    """A Lambda function; the id is its name."""

    type_name = "aws.lambda_function"
    Properties = FunctionProperties
    service = "lambda"
    description = "A Lambda function from a local zip or directory, with its role, settings and environment."
    attributes = {
        "arn": "The function ARN.",
        "name": "The function name.",
        "code_sha256": "Hash of the deployed package.",
        "version": "Latest version ($LATEST unless published).",
    }
    # new code has a new hash
    recomputed_on_update = frozenset({"code_sha256", "version"})

    def _package(self, address: str | None, props: FunctionProperties) -> bytes:
        p = Path(props.source).expanduser()
        path = p if p.is_absolute() else self.provider.context.plan_dir / p
        if not path.exists():
            raise ProviderError(f"Lambda source {path} does not exist", kind=ErrorKind.FATAL, address=address)
        return zip_source(path)

    def _config(self, props: FunctionProperties) -> dict[str, Any]:
        return {
            "Role": props.role,
            "Handler": props.handler,
            "Runtime": props.runtime,
            "MemorySize": props.memory_size,
            "Timeout": props.timeout,
            "Description": props.description,
            "Environment": {"Variables": dict(props.environment)},
        }

    def _until_role_usable(self, address: str, fn: Any) -> Any:
        """Retry `fn` while IAM has not yet propagated the role (bounded), then give up as transient."""
        deadline = time.monotonic() + ROLE_PROPAGATION_SECONDS
        while True:
            try:
                return fn()
            except ProviderError as exc:
                if not any(h in exc.message for h in PROPAGATION_HINTS) or time.monotonic() > deadline:
                    raise
                time.sleep(2.0)

    def create(self, address: str, props: FunctionProperties) -> Observed:
        package = self._package(address, props)
        got = self._until_role_usable(
            address,
            lambda: self.call(
                address,
                "create_function",
                missing=("ResourceConflictException",),
                FunctionName=props.name,
                Code={"ZipFile": package},
                Publish=False,
                Tags=self.tags_to_apply(address, props.tags),
                **self._config(props),
            ),
        )
        if got is None:  # exists: adopt only what a crashed apply of this address made
            found = self.find(address, props)
            if found is None:
                raise ProviderError(
                    f"Lambda function {props.name} exists and was not made by cloudorch for {address}",
                    address=address,
                    hint="import it or choose another name",
                )
            return self.update(address, props.name, FunctionProperties.model_validate(found.properties), props)

        def settle() -> Observed:
            self.wait(address, "function_active_v2", delay=1, max_attempts=120, FunctionName=props.name)
            return Observed(props.name, props.model_dump(mode="json"), self._attributes(got))

        return self.finish_create(address, props.name, settle)

    @staticmethod
    def _attributes(cfg: dict[str, Any]) -> dict[str, Any]:
        return {
            "arn": cfg["FunctionArn"],
            "name": cfg["FunctionName"],
            "code_sha256": cfg.get("CodeSha256"),
            "version": cfg.get("Version", "$LATEST"),
        }

    def update(self, address: str, id: str, old: FunctionProperties, new: FunctionProperties) -> Observed:
        current = self.call(address, "get_function", FunctionName=id)
        cfg = current["Configuration"]
        package = self._package(address, new)
        if code_sha256(package) != cfg.get("CodeSha256"):
            self.call(address, "update_function_code", FunctionName=id, ZipFile=package)
            self.wait(address, "function_updated_v2", delay=1, max_attempts=120, FunctionName=id)
        if self._config(old) != self._config(new) or self._observed_config(cfg) != self._config(new):
            self._until_role_usable(
                address,
                lambda: self.call(address, "update_function_configuration", FunctionName=id, **self._config(new)),
            )
            self.wait(address, "function_updated_v2", delay=1, max_attempts=120, FunctionName=id)
        tags = current.get("Tags") or {}
        arn = cfg["FunctionArn"]
        if self.observed_tags(tags, new.tags) != dict(sorted(new.tags.items())) or old.tags != new.tags:
            removed = [k for k in tags if k not in self.tags_to_apply(address, new.tags)]
            if removed:
                self.call(address, "untag_resource", Resource=arn, TagKeys=removed)
            self.call(address, "tag_resource", Resource=arn, Tags=self.tags_to_apply(address, new.tags))
        cfg = self.call(address, "get_function_configuration", FunctionName=id)
        return Observed(id, new.model_dump(mode="json"), self._attributes(cfg))

    @staticmethod
    def _observed_config(cfg: dict[str, Any]) -> dict[str, Any]:
        return {
            "Role": cfg.get("Role"),
            "Handler": cfg.get("Handler"),
            "Runtime": cfg.get("Runtime"),
            "MemorySize": cfg.get("MemorySize"),
            "Timeout": cfg.get("Timeout"),
            "Description": cfg.get("Description") or "",
            "Environment": {"Variables": dict((cfg.get("Environment") or {}).get("Variables") or {})},
        }

    def _observe(self, address: str | None, name: str, props: FunctionProperties | None) -> Observed | None:
        got = self.call(address, "get_function", FunctionName=name, missing=GONE)
        if got is None:
            return None
        cfg = got["Configuration"]
        source = props.source if props else ""
        if props is not None:
            try:
                local = code_sha256(self._package(address, props))
            except ProviderError:
                local = None
            if local != cfg.get("CodeSha256"):
                source = f"(differs: deployed CodeSha256 {cfg.get('CodeSha256')})"
        out = {
            "name": cfg["FunctionName"],
            "role": cfg.get("Role"),
            "source": source,
            "handler": cfg.get("Handler"),
            "runtime": cfg.get("Runtime"),
            "memory_size": cfg.get("MemorySize"),
            "timeout": cfg.get("Timeout"),
            "description": cfg.get("Description") or "",
            "environment": dict(sorted(((cfg.get("Environment") or {}).get("Variables") or {}).items())),
            "tags": self.observed_tags(got.get("Tags") or {}, props.tags if props else None),
        }
        return Observed(name, out, self._attributes(cfg))

    def read(self, address: str, id: str, props: FunctionProperties) -> Observed | None:
        return self._observe(address, id, props)

    def delete(self, address: str, id: str, props: FunctionProperties) -> None:
        self.call(address, "delete_function", FunctionName=id, missing=GONE)

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no Lambda function {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def find(self, address: str, props: FunctionProperties) -> Observed | None:
        got = self.call(address, "get_function", FunctionName=props.name, missing=GONE)
        if got is None or not self.owned_by(got.get("Tags") or {}, address):
            return None
        return self._observe(address, props.name, props)

    def estimate_seconds(self, props: FunctionProperties) -> float:
        return 5.0
