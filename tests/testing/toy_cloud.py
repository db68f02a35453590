"""A toy provider for the conformance kit's own tests: a "cloud" that is a folder of JSON files.

`toy.item` is a correct type; `toy.dup`, `toy.rekey` and `toy.leak` are each broken in one way the
kit must catch. `SEAM` is its fault seam: every mutating call (put, patch, remove) goes through it,
so a test can fail one once, lose its response, or (through `TOY_KILL_AFTER`) SIGKILL the process
right after it. tests/testing/test_conformance_kit.py installs this module as a real plugin
distribution (a dist-info folder), so the registry finds it by its entry point.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from cloudorch.provider.contract import (
    ErrorKind,
    Observed,
    Provider,
    ProviderError,
    ResourceProperties,
    ResourceType,
    prop,
)

T = TypeVar("T")
MUTATING = frozenset({"put", "patch", "remove"})


class Seam:
    """The toy cloud's fault seam (`cloudorch.testing.conformance.FaultSeam`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.target: int | None = None
        self.lost = False
        self.fired = False

    @contextmanager
    def counting(self) -> Iterator[Callable[[], int]]:
        with self._lock:
            self.count = 0
        yield lambda: self.count

    @contextmanager
    def failing(self, call: int, *, lost: bool, rng: random.Random) -> Iterator[Callable[[], bool]]:
        with self._lock:
            self.count, self.target, self.lost, self.fired = 0, call, lost, False
        try:
            yield lambda: self.fired
        finally:
            self.target = None

    def crash_env(self, call: int) -> Mapping[str, str]:
        return {"TOY_KILL_AFTER": str(call)}

    def call(self, op: str, fn: Callable[[], T]) -> T:
        if op not in MUTATING:
            return fn()
        with self._lock:
            self.count += 1
            n = self.count
            fire = n == self.target
            self.fired = self.fired or fire
        if fire and not self.lost:
            raise ProviderError(f"toy {op}: 503 (injected)", kind=ErrorKind.TRANSIENT, retry_after=0.001)
        out = fn()
        if os.environ.get("TOY_KILL_AFTER") == str(n):
            os.kill(os.getpid(), signal.SIGKILL)
        if fire:
            raise ProviderError(f"toy {op}: read timed out (injected)", kind=ErrorKind.TRANSIENT, retry_after=0.001)
        return out


SEAM = Seam()


class Cloud:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, id: str) -> Path:
        return self.root / f"{id}.json"

    def put(self, id: str, doc: dict[str, Any]) -> None:
        SEAM.call("put", lambda: self._path(id).write_text(json.dumps(doc)))

    def patch(self, id: str, changes: dict[str, Any]) -> None:
        def run() -> None:
            doc = json.loads(self._path(id).read_text())
            self._path(id).write_text(json.dumps({**doc, **changes}))

        SEAM.call("patch", run)

    def remove(self, id: str) -> None:
        SEAM.call("remove", lambda: self._path(id).unlink(missing_ok=True))

    def get(self, id: str) -> dict[str, Any] | None:
        try:
            doc: dict[str, Any] = json.loads(self._path(id).read_text())
        except FileNotFoundError:
            return None
        return doc

    def list(self) -> dict[str, dict[str, Any]]:
        return {p.stem: json.loads(p.read_text()) for p in sorted(self.root.glob("*.json"))}


def cloud() -> Cloud:
    return Cloud(Path(os.environ["TOY_CLOUD"]))


def census(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    """Objects of this address and name, counted straight from the folder."""
    return sum(d.get("address") == address and d.get("name") == props["name"] for d in cloud().list().values())


class ItemProps(ResourceProperties):
    name: str = prop(description="The name.", force_new=True)
    size: int = prop(1, description="The size.")
    secret: str | None = prop(None, description="A secret.", sensitive=True)


class Item(ResourceType[ItemProps]):
    type_name = "toy.item"
    Properties = ItemProps
    description = "A correct toy object."

    def _seen(self, id: str, doc: dict[str, Any]) -> Observed:
        return Observed(id, {"name": doc["name"], "size": doc.get("size")}, {"id": id})

    def create(self, address: str, props: ItemProps) -> Observed:
        c = cloud()
        found = self.find(address, props)  # a retried or recovered create adopts what it made
        id = found.id if found is not None else uuid.uuid4().hex
        if found is None:
            c.put(id, {"address": address, "name": props.name})
        c.patch(id, {"size": props.size, "secret": props.secret})
        doc = c.get(id)
        assert doc is not None
        return self._seen(id, doc)

    def read(self, address: str, id: str, props: ItemProps) -> Observed | None:
        doc = cloud().get(id)
        return None if doc is None else self._seen(id, doc)

    def update(self, address: str, id: str, old: ItemProps, new: ItemProps) -> Observed:
        cloud().patch(id, {"size": new.size, "secret": new.secret})
        seen = self.read(address, id, new)
        assert seen is not None
        return seen

    def delete(self, address: str, id: str, props: ItemProps) -> None:
        cloud().remove(id)

    def find(self, address: str, props: ItemProps) -> Observed | None:
        for id, doc in cloud().list().items():
            if doc.get("address") == address and doc.get("name") == props.name:
                return self._seen(id, doc)
        return None

    def import_(self, address: str, id: str) -> Observed:
        doc = cloud().get(id)
        if doc is None:
            raise ProviderError(f"no toy object {id}", address=address)
        return self._seen(id, doc)


class Duplicating(Item):
    """Broken: create makes a new object every time it is called, and `find` never sees what a
    call whose answer was lost made (it looks the wrong way), so a retry makes a second."""

    type_name = "toy.dup"

    def create(self, address: str, props: ItemProps) -> Observed:
        id = uuid.uuid4().hex
        cloud().put(id, {"address": address, "name": props.name, "size": props.size, "secret": props.secret})
        return self._seen(id, {"name": props.name, "size": props.size})

    def find(self, address: str, props: ItemProps) -> Observed | None:
        return None


class Rekeying(Item):
    """Broken: an in-place update gives the object a new id."""

    type_name = "toy.rekey"

    def update(self, address: str, id: str, old: ItemProps, new: ItemProps) -> Observed:
        c = cloud()
        doc = c.get(id) or {}
        new_id = uuid.uuid4().hex
        c.put(new_id, {**doc, "size": new.size, "secret": new.secret})
        c.remove(id)
        return self._seen(new_id, {**doc, "size": new.size})


class Leaking(Item):
    """Broken: read hands the secret back in clear, as an attribute."""

    type_name = "toy.leak"

    def read(self, address: str, id: str, props: ItemProps) -> Observed | None:
        doc = cloud().get(id)
        if doc is None:
            return None
        return Observed(id, {"name": doc["name"], "size": doc.get("size")}, {"id": id, "secret": doc.get("secret")})


class ToyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToyProvider(Provider):
    name = "toy"
    package = "cloudorch-toy"
    contract = ">=2.0,<3"
    Config = ToyConfig
    resource_types = (Item, Duplicating, Rekeying, Leaking)
