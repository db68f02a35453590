"""`gcp.resource`: any Google REST collection, through the discovery client (like `azure.resource`).

Owns naming a resource from `api` + `collection` + `parent` + `name`, creating it with the
collection's create/insert method (operations awaited), reading it back, updating it with the
collection's patch (update mask from the changed keys) or update, deleting it, and reporting only
the body keys the user set (Google adds defaults and output-only fields), so a re-plan is clean.

Where the collection's resources have `labels`, each carries `cloudorch-address`, whose value is
the address made a valid label value (`cloudorch_gcp.provider.label_value`: lowercase letters,
digits, `_` and `-`, at most 63 characters; any address that does not fit as it is gets a
sanitised prefix and 8 hex digits of its SHA-256), so `find` tells ours from others'. Without
labels, names are deterministic: `find` adopts the object at the name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cloudorch.provider.contract import (
    ConfigError,
    ErrorKind,
    LookupQuery,
    Observed,
    PartialCreate,
    ProviderError,
    ReadRequest,
    ResourceProperties,
    ResourceType,
    matches_filter,
    prop,
)

if TYPE_CHECKING:
    from cloudorch_gcp.discovery import Collection
    from cloudorch_gcp.provider import GcpProvider

#: fields Google sets on every resource of some API: never part of what an import reports as the user's
SERVER_FIELDS = frozenset({"kind", "id", "name", "selfLink", "selfLinkWithId", "creationTimestamp", "createTime",
                           "updateTime", "uid", "etag", "fingerprint", "labels", "generation", "state"})  # fmt: skip


def project(observed: Any, desired: Any) -> Any:
    """`observed` reduced to the shape of `desired`, recursively.

    A key the user set that Google does not report (write-only) keeps the user's value; int64
    fields come back as JSON strings and are reported as the number the user wrote when equal;
    lists are projected item by item when their lengths match.
    """
    if isinstance(desired, dict) and isinstance(observed, dict):
        return {k: (v if k not in observed else project(observed[k], v)) for k, v in desired.items()}
    if isinstance(desired, list) and isinstance(observed, list) and len(desired) == len(observed):
        return [project(o, d) for o, d in zip(observed, desired, strict=True)]
    if isinstance(desired, int | float) and not isinstance(desired, bool) and isinstance(observed, str):
        try:
            return desired if float(observed) == float(desired) else observed
        except ValueError:
            return observed
    return observed


class RestResourceProperties(ResourceProperties):
    api: str = prop(
        description="The API and version, as googleapiclient names them: `pubsub/v1`, `compute/v1`, `run/v2`.",
        force_new=True,
        pattern=r"^[a-z][a-zA-Z0-9]*/v[0-9][a-z0-9]*$",
    )
    collection: str = prop(
        description="The discovery document's resource path of the collection, dotted: `projects.topics`, "
        "`networks`, `projects.locations.services`.",
        force_new=True,
    )
    parent: str | None = prop(
        None,
        force_new=True,
        description="The parent's resource name: `projects/P`, `projects/P/locations/L`; compute: "
        "`projects/P/global`, `projects/P/regions/R`. Unset: the provider's project, where that is enough.",
    )
    name: str = prop(
        description="The resource's id in its parent (`orders`), as create takes it (the body's `name`, a "
        "`...Id` parameter, or the last segment of the path).",
        force_new=True,
        pattern=r"^[^/\s]+$",
    )
    body: dict[str, Any] = prop(
        default_factory=dict,
        description="The resource's JSON, free-form (camelCase as in the API); only the keys written here are "
        "compared.",
    )
    labels: dict[str, str] = prop(
        default_factory=dict,
        description="Labels, for collections whose resources have them; providers.gcp.default_labels and "
        "`cloudorch-address` are added.",
    )


class RestResource(ResourceType[RestResourceProperties]):
    """Any Google REST resource, through the discovery client."""

    type_name = "gcp.resource"
    Properties = RestResourceProperties
    description = "Any Google REST collection (api: pubsub/v1, collection: projects.topics); operations awaited."
    attributes = {
        "id": "The resource's identity: its selfLink (compute) or its full resource name.",
        "name": "The full relative resource name, e.g. projects/P/topics/T.",
        "self_link": "The selfLink, where the API has one.",
        "resource": "Every field Google reports, defaults and output-only fields included.",
    }
    recomputed_on_update = frozenset({"resource"})

    @property
    def gcp(self) -> GcpProvider:
        return self.provider  # type: ignore[return-value]

    # -- naming
    def collection(self, props: RestResourceProperties) -> Collection:
        return self.gcp.rest.collection(props.api, props.collection)

    def parent(self, coll: Collection, props: RestResourceProperties) -> str:
        if props.parent:
            return props.parent.strip("/")
        parent = coll.default_parent(self.gcp.default_project)
        if parent is None:
            raise ConfigError(
                f"{props.api} {props.collection}: set `parent`: it needs more than the project",
                hint=f"a resource of this collection is named {coll.item_template}",
            )
        return parent

    def path(self, props: RestResourceProperties) -> str:
        coll = self.collection(props)
        return coll.path_of(self.parent(coll, props), props.name)

    def _body(self, address: str, coll: Collection, props: RestResourceProperties) -> dict[str, Any]:
        body = dict(props.body)
        if coll.has_labels:
            body["labels"] = self.gcp.labels_for(address, {**dict(props.body.get("labels") or {}), **props.labels})
        elif props.labels:
            raise ConfigError(
                f"{address}: {props.api} {props.collection} resources have no labels",
                hint="remove `labels` (find then adopts the resource at the deterministic name)",
            )
        return body

    def _ours(self, address: str, coll: Collection, raw: Mapping[str, Any]) -> bool:
        from cloudorch_gcp.provider import ADDRESS_LABEL, label_value

        if not coll.has_labels:
            return True  # names are deterministic: the object at the name is the address's
        return (raw.get("labels") or {}).get(ADDRESS_LABEL) == label_value(address)

    def _observed(self, coll: Collection, raw: dict[str, Any], props: RestResourceProperties | None) -> Observed:
        self_link = raw.get("selfLink")
        relative = raw.get("name") if isinstance(raw.get("name"), str) and "/" in str(raw.get("name")) else None
        path = self.path(props) if props is not None else relative or _relative_of(str(self_link or ""))
        ident = full_id(coll, path, raw)
        if props is not None:
            body = project(raw, props.body)
            if "labels" in body:
                body["labels"] = self.gcp.user_labels(raw.get("labels"), dict(props.body.get("labels") or {}))
            labels = self.gcp.user_labels(raw.get("labels"), props.labels) if coll.has_labels else {}
            properties: dict[str, Any] = {
                "api": props.api, "collection": props.collection, "parent": props.parent, "name": props.name,
                "body": body, "labels": labels,
            }  # fmt: skip
        else:
            read_only = {k for k, v in coll.fields.items() if v.get("readOnly")}
            parent: str | None = coll.parent_of(path)
            if parent == coll.default_parent(self.gcp.default_project):
                parent = None  # as a plan file that leaves it to the provider's project says it
            properties = {
                "api": f"{coll.api.name}/{coll.api.version}", "collection": coll.name,
                "parent": parent, "name": path.rsplit("/", 1)[-1],
                "body": {k: v for k, v in raw.items() if k not in SERVER_FIELDS and k not in read_only},
                "labels": self.gcp.user_labels(raw.get("labels"), {}) if coll.has_labels else {},
            }  # fmt: skip
        return Observed(
            id=ident,
            properties=properties,
            attributes={"id": ident, "name": path, "self_link": self_link, "resource": raw},
        )

    # -- the contract
    def create(self, address: str, props: RestResourceProperties) -> Observed:
        from cloudorch_gcp.discovery import already_exists

        coll = self.collection(props)
        path = self.path(props)
        with self.gcp.errors(address, f"create {props.collection} {path}"):
            try:
                pending = coll.begin_create(path, self._body(address, coll, props))
            except Exception as exc:
                if not already_exists(exc):
                    raise
                # the name is taken: ours from a crashed apply (adopted), or another's (refused)
                existing = coll.get(path)
                if existing is not None and coll.has_labels and self._ours(address, coll, existing):
                    return self.update(address, path, props, props)
                raise ProviderError(
                    f"{address}: {path} already exists and was not made for this address",
                    kind=ErrorKind.FATAL,
                    address=address,
                    hint=f"import it: cloudorch import {address} {props.api}/{path}",
                ) from exc
        try:
            raw = self.finish_create(address, path, pending)
        except PartialCreate as exc:
            from cloudorch_gcp.discovery import OperationFailed

            # an operation that failed usually made nothing: then this is a plain failed create
            if isinstance(exc.__cause__, OperationFailed) and self.read(address, path, props) is None:
                raise self.gcp.classify(exc.__cause__, address) from exc.__cause__
            raise
        return self._observed(coll, raw, props)

    def read(self, address: str, id: str, props: RestResourceProperties) -> Observed | None:
        coll = self.collection(props)
        path = self.path(props)
        with self.gcp.errors(address, f"read {path}"):
            raw = coll.get(path)
        return None if raw is None else self._observed(coll, raw, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        """One list call (per page) for each (api, collection, parent) with two or more resources."""
        groups: dict[tuple[str, str, str], list[int]] = {}
        out: list[Observed | None] = [None] * len(requests)
        for i, r in enumerate(requests):
            props = r.properties
            assert isinstance(props, RestResourceProperties)
            coll = self.collection(props)
            key = (props.api, props.collection, self.parent(coll, props))
            groups.setdefault(key, []).append(i)
        for (api, collection, parent), indexes in groups.items():
            coll = self.gcp.rest.collection(api, collection)
            if len(indexes) < 2 or "list" not in coll.methods:
                for i in indexes:
                    r = requests[i]
                    out[i] = self.read(r.address, r.id, r.properties)  # type: ignore[arg-type]
                continue
            first = requests[indexes[0]]
            with self.gcp.errors(first.address, f"list {collection} under {parent}"):
                listed = {self._path_of_raw(coll, raw, parent): raw for raw in coll.list(parent)}
            for i in indexes:
                props = requests[i].properties
                assert isinstance(props, RestResourceProperties)
                raw = listed.get(self.path(props))
                out[i] = None if raw is None else self._observed(coll, raw, props)
        return out

    def _path_of_raw(self, coll: Collection, raw: Mapping[str, Any], parent: str) -> str:
        name = str(raw.get("name") or "")
        return name if "/" in name else coll.path_of(parent, name)

    def update(self, address: str, id: str, old: RestResourceProperties, new: RestResourceProperties) -> Observed:
        coll = self.collection(new)
        path = self.path(new)
        body = self._body(address, coll, new)
        old_body = dict(old.body)
        if coll.has_labels:
            old_body["labels"] = None  # always sent: the address label and default labels are ours to keep
        mask = sorted(k for k in {*body, *old_body} if body.get(k) != old_body.get(k) or k == "labels")
        with self.gcp.errors(address, f"update {path}"):
            changes = {k: body[k] for k in mask if k in body}
            raw = coll.patch(path, changes, mask=mask) if mask else coll.get(path)
        if raw is None:
            raise ProviderError(f"{address}: {path} disappeared during update", kind=ErrorKind.FATAL, address=address)
        return self._observed(coll, raw, new)

    def delete(self, address: str, id: str, props: RestResourceProperties) -> None:
        coll = self.collection(props)
        path = self.path(props)
        with self.gcp.errors(address, f"delete {path}"):
            coll.delete(path)

    def find(self, address: str, props: RestResourceProperties) -> Observed | None:
        coll = self.collection(props)
        path = self.path(props)
        with self.gcp.errors(address, f"find {path}"):
            raw = coll.get(path)
        if raw is None or not self._ours(address, coll, raw):
            return None
        return self._observed(coll, raw, props)

    def _by_id(self, address: str, id: str, doing: str) -> Observed | None:
        api, coll_name, path = parse_id(id)
        coll = self.gcp.rest.collection(api, coll_name) if coll_name else self._collection_of(api, path)
        with self.gcp.errors(address, f"{doing} {path}"):
            raw = coll.get(path)
        return None if raw is None else self._observed(coll, raw, None)

    def _collection_of(self, api: str, path: str) -> Collection:
        rest_api = self.gcp.rest.api(api)
        fits = []
        for name, _spec in rest_api.methods_named("get"):
            try:
                coll = self.gcp.rest.collection(api, name)
            except ConfigError:
                continue
            if coll.matches(path):
                fits.append(coll)
        if not fits:
            raise ConfigError(
                f"no collection of {api} has resources named like {path!r}",
                hint="an id is API/VERSION/RESOURCE_PATH, e.g. pubsub/v1/projects/P/topics/T, or a selfLink",
            )
        # the most literal template wins (`.../global/networks/{n}` over `{+name}`)
        return max(fits, key=lambda c: len(c.item_template.replace("{", "").replace("}", "")))

    def import_(self, address: str, id: str) -> Observed:
        """`id` is `API/VERSION/RESOURCE_PATH` (`pubsub/v1/projects/P/topics/T`) or a compute selfLink."""
        seen = self._by_id(address, id, "import")
        if seen is None:
            raise ProviderError(f"{address}: {id} does not exist", kind=ErrorKind.FATAL, address=address)
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        """By id (as for import), or every resource of the filter's `api` + `collection` under its
        `parent` (default: the provider's project) that matches the rest of the filter."""
        if query.id is not None:
            seen = self._by_id(address, query.id, "look up")
            found = [] if seen is None else [seen]
        else:
            api, collection = query.filter.get("api"), query.filter.get("collection")
            if not isinstance(api, str) or not isinstance(collection, str):
                raise ConfigError(
                    f"{address}: a gcp.resource lookup without an id needs `api` and `collection` in its filter",
                    hint="e.g. filter: {api: pubsub/v1, collection: projects.topics}",
                )
            coll = self.gcp.rest.collection(api, collection)
            parent = query.filter.get("parent")
            parent = parent if isinstance(parent, str) else coll.default_parent(self.gcp.default_project)
            if parent is None:
                raise ConfigError(f"{address}: set `parent` in the filter: {collection} needs more than the project")
            with self.gcp.errors(address, f"list {collection} under {parent}"):
                found = [self._observed(coll, raw, None) for raw in coll.list(parent)]
        return [o for o in found if matches_filter(o, query.filter)]

    def estimate_seconds(self, props: RestResourceProperties) -> float:
        return 5.0


def full_id(coll: Collection, path: str, raw: Mapping[str, Any]) -> str:
    """The identity cloudorch records: compute's selfLink, else Google's full resource name
    (`//pubsub.googleapis.com/projects/P/topics/T`), both accepted back by `import`."""
    self_link = raw.get("selfLink")
    if coll.compute_style and isinstance(self_link, str) and self_link:
        return self_link
    return f"//{coll.api.name}.googleapis.com/{path}"


def _relative_of(url: str) -> str:
    """`https://compute.googleapis.com/compute/v1/projects/p/global/networks/n` -> `projects/p/global/networks/n`."""
    at = url.find("/projects/")
    return url[at + 1 :] if at >= 0 else url


def stable_version(api: str) -> str:
    """The newest stable version googleapiclient ships a discovery document for (`run` -> `v2`)."""
    import re
    from pathlib import Path

    import googleapiclient

    documents = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
    versions = [p.name[len(api) + 1 : -5] for p in documents.glob(f"{api}.v*.json")]
    stable = [v for v in versions if re.fullmatch(r"v\d+", v)]
    if not stable:
        raise ConfigError(f"googleapiclient ships no stable version of the {api} API", hint="write API/VERSION/PATH")
    return max(stable, key=lambda v: int(v[1:]))


def parse_id(id: str) -> tuple[str, str | None, str]:
    """An import id -> (api, collection or None when it is to be found from the path, relative path).

    Forms: `API/VERSION/RESOURCE_PATH`, `API/VERSION:COLLECTION:RESOURCE_PATH`, Google's full
    resource name `//API.googleapis.com/RESOURCE_PATH` (the API's newest stable version), or a URL
    (a compute selfLink, `https://pubsub.googleapis.com/v1/projects/...`), whose host or first
    path segment names the API.
    """
    import re

    if id.startswith("//"):
        host, _, path = id[2:].partition("/")
        api = host.split(".")[0]
        return f"{api}/{stable_version(api)}", None, path.strip("/")
    if "://" in id:
        found = re.match(r"https?://([^/]+)/(.*)$", id)
        host, rest = (found.group(1), found.group(2)) if found else ("", id)
        segments = rest.split("/")
        version = next((s for s in segments if re.fullmatch(r"v\d[a-z0-9]*", s)), None)
        named = host.endswith("googleapis.com") and host.split(".")[0] != "www"
        # else a test server's URL (/{api}/...), or www.googleapis.com/compute/v1/...
        url_api = host.split(".")[0] if named else segments[0]
        if version is None:
            raise ConfigError(f"cannot tell the API version of {id!r}", hint="write API/VERSION/RESOURCE_PATH")
        return f"{url_api}/{version}", None, _relative_of("/" + rest)
    if ":" in id:
        api, collection, path = [*id.split(":", 2), "", ""][:3]
        if path:
            return api, collection, path.strip("/")
    parts = id.strip("/").split("/", 2)
    if len(parts) < 3:
        raise ConfigError(
            f"not a gcp.resource id: {id!r}",
            hint="write API/VERSION/RESOURCE_PATH, e.g. pubsub/v1/projects/P/topics/T, or a selfLink",
        )
    return f"{parts[0]}/{parts[1]}", None, parts[2]
