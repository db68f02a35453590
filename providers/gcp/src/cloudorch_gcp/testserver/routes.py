"""Routes of the Google REST test server, read from the discovery documents googleapiclient ships.

Owns turning one API's discovery document (`googleapiclient/discovery_cache/documents/API.VERSION.json`)
into `Method`s: HTTP method + URL template (as a regex over the path after `/{api}/`), the generic
verb it maps to (create, get, list, patch, update, delete, or a custom verb such as `publish`),
and the schemas it takes and answers. It knows nothing of the store or HTTP.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

#: discovery method name -> the generic verb the store implements
VERBS = {"create": "create", "insert": "create", "get": "get", "list": "list", "patch": "patch",
         "update": "update", "delete": "delete"}  # fmt: skip

_VAR = re.compile(r"\{(\+?)([^}]+)\}")
_VERSION_PREFIX = re.compile(r"^v\d[a-z0-9]*/")


@dataclass(frozen=True)
class Method:
    """One method of a discovery document, as the server routes it."""

    api: str
    version: str
    id: str  # "pubsub.projects.topics.create"
    resource: str  # "projects.topics": the discovery resource the method belongs to
    name: str  # "create"
    http_method: str
    template: str  # the flat path, e.g. "v1/projects/{projectsId}/topics/{topicsId}"
    pattern: re.Pattern[str]
    request: str | None  # schema id of the body
    response: str | None  # schema id of the answer
    query: frozenset[str]  # query parameters it declares

    @property
    def verb(self) -> str:
        """`create`, `get`, ... for the store's generic verbs, else the method's own name."""
        return VERBS.get(self.name, self.name)

    @property
    def on_collection(self) -> bool:
        """Whether the template ends at a collection (`.../topics`) rather than at one resource."""
        last = self.template.rsplit("/", 1)[-1]
        return not _VAR.search(last)


def template_regex(template: str) -> re.Pattern[str]:
    """`{x}` matches one path segment (no `/`, no `:`), `{+x}` any run of segments."""
    out, pos = [], 0
    for m in _VAR.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        out.append(f"(?P<{_group(m.group(2))}>.+?)" if m.group(1) else f"(?P<{_group(m.group(2))}>[^/:]+)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out) + "$")


def _group(name: str) -> str:
    return re.sub(r"\W", "_", name)


def relative_path(path: str) -> str:
    """A path after the API's prefix without its version segment: `v1/projects/p/topics/t` ->
    `projects/p/topics/t` (compute's paths carry the version in the service path instead)."""
    return _VERSION_PREFIX.sub("", path, count=1)


@dataclass
class ApiDoc:
    """One API version's discovery document and its routes."""

    api: str
    version: str
    doc: dict[str, Any]
    methods: list[Method] = field(default_factory=list)

    @property
    def service_path(self) -> str:
        return str(self.doc.get("servicePath") or "")

    def schema(self, name: str | None) -> dict[str, Any]:
        return dict(self.doc.get("schemas", {}).get(name or "", {}))

    def schema_fields(self, name: str | None) -> dict[str, Any]:
        return dict(self.schema(name).get("properties") or {})

    def by_id(self, method_id: str) -> Method | None:
        return next((m for m in self.methods if m.id == method_id), None)

    def sibling(self, method: Method, name: str) -> Method | None:
        """The method `name` of the same discovery resource (the `get` of a `create`)."""
        return next((m for m in self.methods if m.resource == method.resource and m.name == name), None)

    def resource_schema(self, method: Method) -> str | None:
        """The schema of the resources `method`'s collection holds: its `get`'s answer."""
        get = self.sibling(method, "get")
        return get.response if get is not None else None

    def match(self, http_method: str, path: str) -> tuple[Method, dict[str, str]] | None:
        """The method serving `http_method path` (path after `/{api}/`), with its path variables."""
        rest = path.removeprefix(self.service_path) if self.service_path else path
        if self.service_path and not path.startswith(self.service_path):
            return None
        best: tuple[Method, dict[str, str]] | None = None
        for m in self.methods:
            if m.http_method != http_method:
                continue
            found = m.pattern.match(rest)
            # a literal-rich template wins over a looser one (`.../operations/{o}/wait` over `{+name}`)
            if found and (best is None or _literal_len(m.template) > _literal_len(best[0].template)):
                best = (m, found.groupdict())
        return best


def _literal_len(template: str) -> int:
    return len(_VAR.sub("", template))


def load(api: str, version: str) -> ApiDoc | None:
    """The routes of `api` `version` from googleapiclient's bundled documents; None if it has none."""
    from googleapiclient.discovery_cache import get_static_doc

    text = get_static_doc(api, version)
    if text is None:
        return None
    doc = json.loads(text)
    out = ApiDoc(api, version, doc)

    def walk(resources: dict[str, Any], prefix: str) -> None:
        for rname, res in resources.items():
            path = f"{prefix}{rname}"
            for mname, m in (res.get("methods") or {}).items():
                template = m.get("flatPath") or m["path"]
                params = m.get("parameters") or {}
                out.methods.append(
                    Method(
                        api=api,
                        version=version,
                        id=m.get("id", f"{api}.{path}.{mname}"),
                        resource=path,
                        name=mname,
                        http_method=m["httpMethod"],
                        template=template,
                        pattern=template_regex(template),
                        request=(m.get("request") or {}).get("$ref"),
                        response=(m.get("response") or {}).get("$ref"),
                        query=frozenset(k for k, v in params.items() if v.get("location") == "query"),
                    )
                )
            walk(res.get("resources") or {}, path + ".")

    walk(doc.get("resources") or {}, "")
    return out


class Catalogue:
    """The API versions the server answers, loaded on first use (compute's document is 5 MB)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._docs: dict[tuple[str, str], ApiDoc | None] = {}

    def get(self, api: str, version: str) -> ApiDoc | None:
        with self._lock:
            if (api, version) not in self._docs:
                self._docs[(api, version)] = load(api, version)
            return self._docs[(api, version)]

    def for_path(self, api: str, path: str) -> ApiDoc | None:
        """The version of `api` a request path names (`v1/...`, or `compute/v1/...` for compute)."""
        for segment in path.split("/")[:2]:
            if re.fullmatch(r"v\d[a-z0-9]*", segment):
                doc = self.get(api, segment)
                if doc is not None:
                    return doc
        return None
