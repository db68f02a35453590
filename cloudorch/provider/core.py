"""The `core` provider: built-in resource types with local or no effects (core.null, core.file, core.wait).

A peer of the cloud plugins: it implements `cloudorch.provider.contract` and is found through
its `cloudorch.providers` entry point in the root pyproject.toml, like any other provider, so
the registry knows nothing about it. It serves demos, tests and benchmarks.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import secrets
import stat
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

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
    root: str | None = Field(
        None,
        description="The folder core.file paths are relative to and confined to (default: the plan's folder); "
        "a relative root is relative to the plan's folder.",
    )


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


_NULL_FIELDS = tuple(NullProperties.model_fields)  # read once: `model_fields` is a property, per call


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
    state_only = True  # `read` answers from the properties it is given: it reads nothing

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
            properties={name: getattr(props, name) for name in _NULL_FIELDS},
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


def _sweep_temp_files(dfd: int, name: str) -> None:
    """Remove what a write of `name` killed half-way left: its temp files (`.NAME.<16 hex>.cloudorch-tmp`).

    Their names are unpredictable, so a later write never replaces them; unlink removes a link
    planted under such a name without following it.
    """
    prefix, suffix = f".{name}.", ".cloudorch-tmp"
    for entry in os.listdir(dfd):
        middle = entry[len(prefix) : -len(suffix)]
        if entry.startswith(prefix) and entry.endswith(suffix) and len(middle) == 16 and all(
            ch in "0123456789abcdef" for ch in middle
        ):
            with suppress(FileNotFoundError):
                os.unlink(entry, dir_fd=dfd)


class FileProperties(ResourceProperties):
    path: str = prop(
        description="A relative file path inside the plan's folder (or inside `providers.core.root` when set); "
        "absolute paths, `~` and `..` leading out are refused, and so is a folder that links outside.",
        force_new=True,
    )
    content: str = prop("", description="The file's text content.")
    mode: str | None = prop(
        None,
        description="Octal permission bits such as '0644'; unset leaves the default.",
        pattern=r"^0?[0-7]{3}$",
    )

    @field_validator("path")
    @classmethod
    def _confined(cls, value: str) -> str:
        """What the text alone shows: a path that cannot stay inside its folder, whatever the folder."""
        why = lexical_escape(value)
        if why is not None:
            raise PydanticCustomError("path_outside", why)
        return value


def lexical_escape(path: str) -> str | None:
    """Why `path`, as written, could lead out of the folder it is relative to (None: it cannot)."""
    if not path or not path.strip():
        return "the path is empty"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        return "the path holds a control character"
    if path.startswith("~"):
        return f"{path!r} starts with `~`: paths are relative to the plan's folder, never a home folder"
    if PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute() or PureWindowsPath(path).drive:
        return f"{path!r} is absolute: write it relative to the plan's folder (or set `providers.core.root`)"
    depth = 0
    for part in path.replace("\\", "/").split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return f"{path!r} leads out of its folder through `..`"
        elif part not in ("", "."):
            depth += 1
    if depth == 0:
        return f"{path!r} names the folder itself, not a file in it"
    return None


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

        written = desired.get("path")
        if isinstance(written, str):
            # a folder planted as a link (git keeps links) is refused when planned, not first at apply
            self._folder("", written, create=False)
        content = desired.get("content")
        if not isinstance(content, str):
            return {}
        data = content.encode("utf-8")
        return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}

    def _base(self) -> Path:
        """The real folder every core.file path is confined to: `root` when configured, else the plan's."""
        root = getattr(self.provider.config, "root", None)
        plan_dir = self.provider.context.plan_dir
        base = plan_dir if not root else (plan_dir / Path(root).expanduser())
        return Path(os.path.realpath(base))

    def _path(self, props: FileProperties) -> Path:
        return self._base() / props.path

    def _refuse(self, address: str, path: object, why: str) -> ProviderError:
        return ProviderError(
            f"core.file {path}: {why}",
            kind=ErrorKind.FATAL,
            address=address or None,
        )

    def _folder(self, address: str, written: str, *, create: bool) -> tuple[Path, str]:
        """(real parent folder, file name) of a confined path, with every existing folder on the way
        resolved: one that is a link leading outside the base is refused, before anything is made."""
        why = lexical_escape(written)
        if why is not None:
            raise self._refuse(address, written, why)
        base = self._base()
        # lexically normal first (no `..` left, as it cannot lead out): the kernel never walks a
        # `..` through a link, and the last part is always a file name
        parts = posixpath.normpath(written.replace("\\", "/")).split("/")
        real = Path(os.path.realpath(base.joinpath(*parts[:-1])))
        if real != base and base not in real.parents:
            raise self._refuse(
                address, written, f"its folder leads outside {base} (through a symbolic link); refused"
            )
        if create:
            real.mkdir(parents=True, exist_ok=True)
            # a folder made concurrently could be a link: judge what now exists, once more
            again = Path(os.path.realpath(real))
            if again != base and base not in again.parents:
                raise self._refuse(address, written, f"its folder leads outside {base}; refused")
        return real, parts[-1]

    @contextmanager
    def _dir(self, folder: Path) -> Iterator[int]:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            yield fd
        finally:
            os.close(fd)

    def _observe(self, address: str, written: str, want_mode: bool) -> Observed | None:
        try:
            folder, name = self._folder(address, written, create=False)
        except FileNotFoundError:
            return None
        path = folder / name
        try:
            with self._dir(folder) as dfd:
                # O_NOFOLLOW: a link planted at the file is refused, never read through;
                # O_NONBLOCK: a planted FIFO cannot hang the read
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if os.path.islink(path):
                raise self._refuse(
                    address, written, "is a symbolic link; cloudorch does not follow links in managed files"
                ) from exc
            raise ProviderError(f"cannot read {path}: {exc.strerror}", kind=ErrorKind.FATAL) from exc
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise self._refuse(address, written, "is not a regular file")
            data = fh.read()
        text = data.decode("utf-8", errors="replace")
        props: dict[str, Any] = {"path": str(path), "content": text}
        if want_mode:
            props["mode"] = f"0{st.st_mode & 0o777:o}"
        return Observed(
            id=str(path),
            properties=props,
            attributes={
                "id": str(path),
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
            },
        )

    def _write(self, address: str, props: FileProperties) -> Observed:
        path = self._path(props)
        try:
            folder, name = self._folder(address, props.path, create=True)
            path = folder / name
            with self._dir(folder) as dfd:
                _sweep_temp_files(dfd, name)
                # an unpredictable name, created here or not at all, never through a link
                tmp = f".{name}.{secrets.token_hex(8)}.cloudorch-tmp"
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                fd = os.open(tmp, flags, 0o600 if props.mode else 0o666, dir_fd=dfd)
                try:
                    with os.fdopen(fd, "wb") as fh:
                        if props.mode:
                            os.fchmod(fh.fileno(), int(props.mode, 8))
                        fh.write(props.content.encode("utf-8"))
                    # rename replaces whatever is at the name (a planted link too) without following it
                    os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
                except BaseException:
                    with suppress(OSError):
                        os.unlink(tmp, dir_fd=dfd)
                    raise
        except OSError as exc:
            raise ProviderError(
                f"cannot write {path}: {exc.strerror}", kind=ErrorKind.FATAL, address=address, cause=exc
            ) from exc
        seen = self._observe(address, props.path, props.mode is not None)
        assert seen is not None
        # report the path as the user wrote it, so a relative path does not diff against absolute
        return Observed(seen.id, {**seen.properties, "path": props.path}, seen.attributes)

    def create(self, address: str, props: FileProperties) -> Observed:
        return self._write(address, props)

    def update(self, address: str, id: str, old: FileProperties, new: FileProperties) -> Observed:
        return self._write(address, new)

    def read(self, address: str, id: str, props: FileProperties) -> Observed | None:
        seen = self._observe(address, props.path, props.mode is not None)
        if seen is None:
            return None
        return Observed(seen.id, {**seen.properties, "path": props.path}, seen.attributes)

    def delete(self, address: str, id: str, props: FileProperties) -> None:
        try:
            folder, name = self._folder(address, props.path, create=False)
            with self._dir(folder) as dfd:
                _sweep_temp_files(dfd, name)
                os.unlink(name, dir_fd=dfd)  # a link is removed, never followed
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ProviderError(
                f"cannot delete {props.path}: {exc.strerror}", address=address, cause=exc
            ) from exc

    def find(self, address: str, props: FileProperties) -> Observed | None:
        return self.read(address, "", props)

    def import_(self, address: str, id: str) -> Observed:
        base = self._base()
        given = Path(id)
        if given.is_absolute():
            # an id is the absolute path `state show` printed: it must name a file inside the base
            try:
                written = str(Path(os.path.normpath(given)).relative_to(base))
            except ValueError:
                raise self._refuse(address, id, f"is outside {base}; core.file manages files inside it only") from None
        else:
            written = id
        seen = self._observe(address, written, True)
        if seen is None:
            raise ProviderError(f"no file at {id}", kind=ErrorKind.FATAL, address=address)
        return Observed(seen.id, {**seen.properties, "path": written}, seen.attributes)

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
