"""The `core` provider: built-in resource types with local or no effects (core.null, core.file, core.wait).

A peer of the cloud plugins: it implements `cloudorch.provider.contract` and is found through
its `cloudorch.providers` entry point in the root pyproject.toml, like any other provider, so
the registry knows nothing about it. It serves demos, tests and benchmarks.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cloudorch.provider.contract import (
    RECOMPUTED,
    ErrorKind,
    Observed,
    Provider,
    ProviderError,
    ReadRequest,
    ResourceProperties,
    ResourceType,
    prop,
)


class CoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_concurrency: int | None = Field(None, ge=1, description="Most operations of this provider at once.")


class NullProperties(ResourceProperties):
    values: dict[str, Any] = prop(
        default_factory=dict, description="Any mapping; each key is exposed as an attribute."
    )
    triggers: dict[str, Any] = prop(
        default_factory=dict, force_new=True, description="A change to any value replaces the resource."
    )
    fail_on_create: bool = prop(False, description="Make create fail (to test failure paths).")
    fail_on_update: bool = prop(False, description="Make update fail (to test failure paths).")
    fail_on_delete: bool = prop(False, description="Make delete fail (to test failure paths).")


def _fail(op: str, address: str) -> ProviderError:
    return ProviderError(
        f"{op} of {address} failed (fail_on_{op} is set)", kind=ErrorKind.FATAL, address=address
    )


class NullResource(ResourceType[NullProperties]):
    """Holds values and nothing else, like Terraform's `terraform_data`."""

    type_name = "core.null"
    Properties = NullProperties
    description = "A resource with no effect: holds `values` as attributes; `triggers` force replacement."
    attributes = {"id": "A random id chosen at create.", "values": "The values mapping."}
    recomputed_on_update = frozenset()

    def plan_update(self, prior: Observed, desired: Mapping[str, Any]) -> dict[str, Any]:
        # every attribute is the new `values` or the id, which an update keeps
        return {**self.plan_create(desired), "id": prior.id}

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        values = desired.get("values")
        if not isinstance(values, dict):
            return {"values": values}
        out = {**values, "values": values}
        out.pop("id", None)  # the id is chosen at create, even when `values` has one
        return out

    def _observed(self, id: str, props: NullProperties) -> Observed:
        # the fields as they are: a refresh of many thousands of these is the hot path of a
        # no-change plan, and model_dump copies what nobody changes
        return Observed(
            id=id,
            properties={name: getattr(props, name) for name in NullProperties.model_fields},
            attributes={**props.values, "id": id, "values": props.values},
        )

    def create(self, address: str, props: NullProperties) -> Observed:
        if props.fail_on_create:
            raise _fail("create", address)
        return self._observed(uuid.uuid4().hex, props)

    def read(self, address: str, id: str, props: NullProperties) -> Observed | None:
        return self._observed(id, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        return [self._observed(r.id, r.properties) for r in requests]  # type: ignore[arg-type]

    def update(self, address: str, id: str, old: NullProperties, new: NullProperties) -> Observed:
        if new.fail_on_update:
            raise _fail("update", address)
        return self._observed(id, new)

    def delete(self, address: str, id: str, props: NullProperties) -> None:
        if props.fail_on_delete:
            raise _fail("delete", address)

    def import_(self, address: str, id: str) -> Observed:
        return self._observed(id, NullProperties())

    def estimate_seconds(self, props: NullProperties) -> float:
        return 0.0


class FileProperties(ResourceProperties):
    path: str = prop(description="File path; relative paths are relative to the plan file.", force_new=True)
    content: str = prop("", description="The file's text content.")
    mode: str | None = prop(
        None,
        description="Octal permission bits such as '0644'; unset leaves the default.",
        pattern=r"^0?[0-7]{3}$",
    )


class FileResource(ResourceType[FileProperties]):
    """A local file: a real, visible effect, so drift can be shown by editing it."""

    type_name = "core.file"
    Properties = FileProperties
    description = "A local text file with the given content and mode."
    attributes = {"id": "The absolute path.", "sha256": "Hash of the content.", "size": "Bytes."}
    recomputed_on_update = frozenset({"sha256", "size"})

    def plan_update(self, prior: Observed, desired: Mapping[str, Any]) -> dict[str, Any]:
        # the path forces replacement, so the id stays; the hash and size follow the content
        return {**prior.attributes, "sha256": RECOMPUTED, "size": RECOMPUTED, **self.plan_create(desired)}

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        import hashlib

        content = desired.get("content")
        if not isinstance(content, str):
            return {}
        data = content.encode("utf-8")
        return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}

    def _path(self, props: FileProperties) -> Path:
        p = Path(props.path).expanduser()
        return p if p.is_absolute() else (self.provider.context.plan_dir / p)

    def _observe(self, path: Path, want_mode: bool) -> Observed | None:
        import hashlib

        try:
            data = path.read_bytes()
            st = path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ProviderError(f"cannot read {path}: {exc.strerror}", kind=ErrorKind.FATAL) from exc
        text = data.decode("utf-8", errors="replace")
        props: dict[str, Any] = {"path": str(path), "content": text}
        if want_mode:
            props["mode"] = f"0{st.st_mode & 0o777:o}"
        return Observed(
            id=str(path.resolve()),
            properties=props,
            attributes={
                "id": str(path.resolve()),
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
            },
        )

    def _write(self, address: str, props: FileProperties) -> Observed:
        path = self._path(props)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.cloudorch-tmp")
            tmp.write_text(props.content, encoding="utf-8")
            if props.mode:
                os.chmod(tmp, int(props.mode, 8))
            os.replace(tmp, path)
        except OSError as exc:
            raise ProviderError(
                f"cannot write {path}: {exc.strerror}", kind=ErrorKind.FATAL, address=address, cause=exc
            ) from exc
        seen = self._observe(path, props.mode is not None)
        assert seen is not None
        # report the path as the user wrote it, so a relative path does not diff against absolute
        return Observed(seen.id, {**seen.properties, "path": props.path}, seen.attributes)

    def create(self, address: str, props: FileProperties) -> Observed:
        return self._write(address, props)

    def update(self, address: str, id: str, old: FileProperties, new: FileProperties) -> Observed:
        return self._write(address, new)

    def read(self, address: str, id: str, props: FileProperties) -> Observed | None:
        seen = self._observe(self._path(props), props.mode is not None)
        if seen is None:
            return None
        return Observed(seen.id, {**seen.properties, "path": props.path}, seen.attributes)

    def delete(self, address: str, id: str, props: FileProperties) -> None:
        try:
            self._path(props).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ProviderError(
                f"cannot delete {props.path}: {exc.strerror}", address=address, cause=exc
            ) from exc

    def find(self, address: str, props: FileProperties) -> Observed | None:
        return self.read(address, "", props)

    def import_(self, address: str, id: str) -> Observed:
        path = Path(id).expanduser()
        if not path.is_absolute():
            path = self.provider.context.plan_dir / path
        seen = self._observe(path, True)
        if seen is None:
            raise ProviderError(f"no file at {id}", kind=ErrorKind.FATAL, address=address)
        # record the path the way a plan file writes it (relative to the plan) when it can be
        try:
            shown = str(path.resolve().relative_to(self.provider.context.plan_dir.resolve()))
        except ValueError:
            shown = str(path)
        return Observed(seen.id, {**seen.properties, "path": shown}, seen.attributes)

    def estimate_seconds(self, props: FileProperties) -> float:
        return 0.001


class WaitProperties(ResourceProperties):
    seconds: float = prop(
        ge=0, description="Sleep this long on create, update and delete (simulates cloud latency)."
    )


class WaitResource(ResourceType[WaitProperties]):
    """Sleeps; used by benchmarks and tests to stand in for slow cloud calls."""

    type_name = "core.wait"
    Properties = WaitProperties
    description = "Sleeps `seconds` on create, update and delete."
    attributes = {"id": "A random id chosen at create."}
    recomputed_on_update = frozenset()

    def create(self, address: str, props: WaitProperties) -> Observed:
        time.sleep(props.seconds)
        id = uuid.uuid4().hex
        return Observed(id, props.model_dump(), {"id": id})

    def read(self, address: str, id: str, props: WaitProperties) -> Observed | None:
        return Observed(id, props.model_dump(), {"id": id})

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        return [Observed(r.id, r.properties.model_dump(), {"id": r.id}) for r in requests]

    def update(self, address: str, id: str, old: WaitProperties, new: WaitProperties) -> Observed:
        time.sleep(new.seconds)
        return Observed(id, new.model_dump(), {"id": id})

    def delete(self, address: str, id: str, props: WaitProperties) -> None:
        time.sleep(props.seconds)

    def estimate_seconds(self, props: WaitProperties) -> float:
        return props.seconds


class CoreProvider(Provider):
    """Built-in types with local or no effects: for demos, tests and benchmarks."""

    name = "core"
    package = "cloudorch"
    contract = ">=2.1,<3"
    Config = CoreConfig
    resource_types = (NullResource, FileResource, WaitResource)
    # core operations are local; let the global --parallelism bound them
    default_concurrency = 1024
