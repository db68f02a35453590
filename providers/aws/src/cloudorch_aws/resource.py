"""The shared base of AWS resource types: wrapped SDK calls, tagging, and parallel reads.

Every AWS call of a resource type goes through `AwsResource.call`, so every failure reaches the
engine as a classified `ProviderError` naming the address and the operation. Tag handling
(`default_tags`, the `cloudorch:address` tag, stripping both on read) lives here so that each
service module reports tags in exactly the shape the user wrote them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from cloudorch.provider.contract import LookupQuery, Observed, ReadRequest, ResourceType, matches_filter
from cloudorch_aws.errors import error_code

if TYPE_CHECKING:
    from cloudorch_aws.provider import AwsProvider

P = TypeVar("P", bound=BaseModel)
T = TypeVar("T")
R = TypeVar("R")

#: the tag every taggable object gets on create, so `find` can recover it after a crash
ADDRESS_TAG = "cloudorch:address"


def address_tag_value(address: str) -> str:
    """The address as an AWS tag value: AWS allows only letters, digits, spaces and `_.:/=+-@`."""
    return re.sub(r"[^\w .:/=+\-@]", "_", address)[:256]


def tag_list(tags: Mapping[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in sorted(tags.items())]


def tag_dict(items: Iterable[Mapping[str, Any]] | None, key: str = "Key", value: str = "Value") -> dict[str, str]:
    return {str(t[key]): str(t.get(value, "")) for t in items or ()}


class AwsResource(ResourceType[P]):
    """Base of every `aws.*` type: `call` wraps boto3 and classifies its errors."""

    #: boto3 service name of the client this type uses
    service: ClassVar[str]
    #: whether objects of this type carry tags (and so `cloudorch:address`)
    taggable: ClassVar[bool] = True

    if TYPE_CHECKING:
        provider: AwsProvider

    @property
    def client(self) -> Any:
        return self.provider.client(self.service)

    def call(self, address: str | None, op: str, *, missing: Collection[str] = (), **kwargs: Any) -> Any:
        """Call `op` on this type's client; None if AWS answers with one of the `missing` codes."""
        return self.call_on(self.client, address, op, missing=missing, **kwargs)

    def call_on(
        self, client: Any, address: str | None, op: str, *, missing: Collection[str] = (), **kwargs: Any
    ) -> Any:
        try:
            return getattr(client, op)(**kwargs)
        except Exception as exc:
            if missing and error_code(exc) in missing:
                return None
            raise self.provider.classify(exc, address) from exc

    def paginate(self, address: str | None, op: str, key: str, **kwargs: Any) -> list[Any]:
        """Every item under `key` of every page of `op`."""
        out: list[Any] = []
        try:
            for page in self.client.get_paginator(op).paginate(**kwargs):
                out.extend(page.get(key, []))
        except Exception as exc:
            raise self.provider.classify(exc, address) from exc
        return out

    def wait(
        self, address: str | None, waiter: str, *, delay: float = 1, max_attempts: int = 120, **kwargs: Any
    ) -> None:
        try:
            self.client.get_waiter(waiter).wait(WaiterConfig={"Delay": delay, "MaxAttempts": max_attempts}, **kwargs)
        except Exception as exc:
            raise self.provider.classify(exc, address) from exc

    # ------------------------------------------------------------------ tags

    def tags_to_apply(self, address: str, tags: Mapping[str, str]) -> dict[str, str]:
        """`default_tags`, then the resource's own tags, then `cloudorch:address`."""
        return {**self.provider.default_tags, **tags, ADDRESS_TAG: address_tag_value(address)}

    def observed_tags(self, raw: Mapping[str, str], managed: Mapping[str, str] | None) -> dict[str, str]:
        """Tags as the user writes them: without `cloudorch:address` and unchanged default tags."""
        managed = managed or {}
        out: dict[str, str] = {}
        defaults = self.provider.default_tags
        for k, v in raw.items():
            if k == ADDRESS_TAG or k.startswith("aws:"):
                continue
            if k in defaults and k not in managed and defaults[k] == v:
                continue
            out[k] = v
        return dict(sorted(out.items()))

    def owned_by(self, raw_tags: Mapping[str, str], address: str) -> bool:
        return raw_tags.get(ADDRESS_TAG) == address_tag_value(address)

    # ------------------------------------------------------------------ reads

    def parallel(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """Map `fn` over `items` on up to `max_concurrency` threads, keeping order."""
        if len(items) <= 1:
            return [fn(i) for i in items]
        workers = min(len(items), self.provider.max_concurrency)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"cloudorch-{self.type_name}") as pool:
            return list(pool.map(fn, items))

    def lookup_listed(
        self,
        query: LookupQuery,
        observe: Callable[[str], Observed | None],
        list_ids: Callable[[], Iterable[str]],
    ) -> list[Observed]:
        """A data source's lookup: the one object `query.id` names, or every listed id read in
        parallel; either way only those `matches_filter` accepts (for the types offering `lookup`)."""
        if query.id is not None:
            seen = observe(query.id)
            found = [seen] if seen is not None else []
        else:
            found = [o for o in self.parallel(observe, list(dict.fromkeys(list_ids()))) if o is not None]
        return [o for o in found if matches_filter(o, query.filter)]

    def read_listed(
        self,
        requests: Sequence[ReadRequest],
        listed: Callable[[], Mapping[str, Any]],
        shape: Callable[[ReadRequest, Any], Observed | None],
    ) -> list[Observed | None]:
        """A refresh answered by one listing: `listed()` maps each existing object's id to what
        the list call said of it, and `shape` turns that into the request's observation (in
        parallel, for the per-object calls it may still make). One request reads alone."""
        if len(requests) < 2:
            return [self.read(r.address, r.id, r.properties) for r in requests]  # type: ignore[arg-type]
        found = listed()
        return self.parallel(lambda r: None if r.id not in found else shape(r, found[r.id]), list(requests))

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        """Reads run in parallel; types with a list call override this to batch further."""
        return self.parallel(lambda r: self.read(r.address, r.id, r.properties), list(requests))  # type: ignore[arg-type]


class Shape(BaseModel):
    """A nested block of a properties model (a rule, a key): unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")
