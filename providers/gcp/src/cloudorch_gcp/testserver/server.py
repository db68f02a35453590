"""The Google REST test server: Google's JSON APIs in memory, driven by their discovery documents.

Owns the HTTP side (one `ThreadingHTTPServer`, keep-alive, no Nagle delay), the collection store,
the generic verbs every discovery method maps to (`routes.VERBS`), server-set fields, long-running
operations in each API's style, and the test knobs: latency per call, faults (429/503 with
Retry-After), operations that stay RUNNING for N polls or end in an error, and a count of calls.

URLs: each API is served under `/{api}/` followed by its service path and method path, e.g.
`/pubsub/v1/projects/p/topics/t` and `/compute/compute/v1/projects/p/global/networks/n`; a
googleapiclient client reaches it with `client_options={"api_endpoint": f"{url}/{api}/{servicePath}"}`
(`cloudorch_gcp.discovery` does this). Control routes, for tests and benchmarks in other
processes, live under `/_testserver/` (see `_control`). Per-API behaviour is registered in
`cloudorch_gcp.testserver.apis`, never here.
"""

from __future__ import annotations

import datetime
import json
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cloudorch_gcp.testserver import apis
from cloudorch_gcp.testserver.routes import ApiDoc, Catalogue, Method, relative_path

#: Google's canonical status names by HTTP code (google.rpc.Code as the JSON APIs spell it)
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
          409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
          501: "UNIMPLEMENTED", 503: "UNAVAILABLE"}  # fmt: skip
#: the `errors[].reason` the older (compute, storage) style carries
REASONS = {400: "invalid", 404: "notFound", 409: "alreadyExists", 412: "conditionNotMet", 429: "rateLimitExceeded",
           501: "notImplemented", 503: "backendError"}  # fmt: skip


class ApiError(Exception):
    """An error answer in Google's shape: {"error": {"code", "message", "status", "errors"}}."""

    def __init__(self, code: int, message: str, status: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code, self.message = code, message
        self.status = status or STATUS.get(code, "UNKNOWN")
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        reason = REASONS.get(self.code, self.status.lower())
        return {"error": {"code": self.code, "message": self.message, "status": self.status,
                          "errors": [{"message": self.message, "domain": "global", "reason": reason}]}}  # fmt: skip


@dataclass
class Answer:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One request to an API method, as handlers see it."""

    store: Store
    doc: ApiDoc
    method: Method
    params: dict[str, str]  # path variables
    query: dict[str, str]
    body: dict[str, Any]
    path: str  # the request path after `/{api}/` + service path, e.g. `v1/projects/p/topics/t`
    base_url: str  # `http://127.0.0.1:PORT`

    @property
    def quirks(self) -> apis.ApiQuirks:
        return apis.quirks(self.method.api)

    @property
    def relative(self) -> str:
        """The path without its version segment: the store's key (`projects/p/topics/t`)."""
        return relative_path(self.path)

    def url_of(self, relative: str) -> str:
        """The full URL (a selfLink) of a resource at `relative` in this API."""
        version = self.path[: len(self.path) - len(self.relative)]
        return f"{self.base_url}/{self.method.api}/{self.doc.service_path}{version}{relative}"


def now_rfc3339(compute: bool = False) -> str:
    moment = datetime.datetime.now(datetime.UTC)
    if compute:  # compute writes offsets: 2024-01-01T00:00:00.000-07:00
        return moment.isoformat(timespec="milliseconds")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


@dataclass
class Fault:
    """Answer the next `times` requests matching `http_method` and `path` (a regex) with `code`."""

    code: int
    times: int = 1
    retry_after: str | None = None
    http_method: str | None = None
    path: str | None = None
    message: str = "injected by the Google REST test server"

    def matches(self, http_method: str, path: str) -> bool:
        if self.http_method is not None and self.http_method.upper() != http_method:
            return False
        return self.path is None or re.search(self.path, path) is not None


@dataclass
class PendingOperation:
    """An operation that answers RUNNING for `polls` more polls, then DONE."""

    polls: int
    error: tuple[int, str] | None = None


class Store:
    """Every API's resources and operations, keyed by (api, relative path); all under one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self.pending: dict[tuple[str, str], PendingOperation] = {}
        self.faults: list[Fault] = []
        self.operation_errors: list[tuple[str | None, int, str]] = []  # (path regex, code, message)
        self.latency = 0.0
        self.running_polls = 0
        self.calls: Counter[str] = Counter()  # method id (or "HTTP /path" when unrouted) -> count

    def reset(self) -> None:
        with self.lock:
            self.resources.clear()
            self.pending.clear()
            self.faults.clear()
            self.operation_errors.clear()
            self.latency, self.running_polls = 0.0, 0
            self.calls.clear()

    # -- the resources, for handlers
    def get(self, api: str, relative: str) -> dict[str, Any] | None:
        return self.resources.get((api, relative))

    def put(self, api: str, relative: str, resource: dict[str, Any]) -> None:
        self.resources[(api, relative)] = resource

    def delete(self, api: str, relative: str) -> dict[str, Any] | None:
        return self.resources.pop((api, relative), None)

    def children(self, api: str, collection: str) -> list[tuple[str, dict[str, Any]]]:
        """The resources directly in `collection` (`projects/p/topics`), ordered by path."""
        prefix = collection.rstrip("/") + "/"
        return sorted(
            (path, r)
            for (a, path), r in self.resources.items()
            if a == api and path.startswith(prefix) and "/" not in path[len(prefix) :]
        )

    # -- knobs
    def take_fault(self, http_method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and fault.matches(http_method, path):
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def take_operation_error(self, path: str) -> tuple[int, str] | None:
        for item in self.operation_errors:
            if item[0] is None or re.search(item[0], path):
                self.operation_errors.remove(item)
                return item[1], item[2]
        return None


# --------------------------------------------------------------------------- the generic verbs


def _new_fields(call: Call, schema: str | None, relative: str, short: str) -> dict[str, Any]:
    """The fields the service sets on a new resource, for those its schema has."""
    fields = call.doc.schema_fields(schema)
    compute = call.quirks.style == "compute"
    out: dict[str, Any] = {}
    if "kind" in fields and fields["kind"].get("default"):
        out["kind"] = fields["kind"]["default"]
    if "name" in fields:
        out["name"] = short if compute else relative
    if compute and "id" in fields:
        out["id"] = str(random.getrandbits(63))
    if "creationTimestamp" in fields:
        out["creationTimestamp"] = now_rfc3339(compute=True)
    if "selfLink" in fields:
        out["selfLink"] = call.url_of(relative)
    for key in ("createTime", "updateTime"):
        if key in fields:
            out[key] = now_rfc3339()
    if "uid" in fields:
        out["uid"] = str(uuid.uuid4())
    if "etag" in fields:
        out["etag"] = _etag()
    if "fingerprint" in fields:
        out["fingerprint"] = _etag()
    return out


def _etag() -> str:
    return uuid.uuid4().hex[:16]


#: fields a body may carry that the service owns: never overwritten by a create or an update
SERVER_FIELDS = frozenset({"kind", "id", "creationTimestamp", "selfLink", "createTime", "updateTime", "uid",
                           "etag", "fingerprint"})  # fmt: skip


def _resource_body(call: Call) -> tuple[dict[str, Any], str | None]:
    """(the resource in the request body, its update mask) for a create, patch or update.

    Some methods take the resource itself (mask, if any, in the query); others wrap it with its
    mask (`UpdateTopicRequest{topic, updateMask}`): read from the request schema.
    """
    schema = call.doc.resource_schema(call.method)
    mask = call.query.get("updateMask")
    if call.method.request is None or call.method.request == schema:
        return dict(call.body), mask
    for key, spec in call.doc.schema_fields(call.method.request).items():
        if spec.get("$ref") == schema and isinstance(call.body.get(key), dict):
            return dict(call.body[key]), call.body.get("updateMask", mask)
    return dict(call.body), mask


def generic_create(call: Call) -> Answer:
    store, api, method = call.store, call.method.api, call.method
    body, _ = _resource_body(call)
    if method.on_collection:
        # `requestId` (compute) is an idempotency token, not the new resource's name
        id_param = next(
            (q for q in sorted(method.query) if q.endswith("Id") and q != "requestId" and q in call.query), None
        )
        short = call.query[id_param] if id_param else str(body.get("name") or "").rsplit("/", 1)[-1]
        if not short:
            raise ApiError(400, f"{method.id}: the new resource needs a name (body `name` or a `...Id` parameter)")
        relative = f"{call.relative}/{short}"
    else:
        relative, short = call.relative, call.relative.rsplit("/", 1)[-1]
    with store.lock:
        if store.get(api, relative) is not None:
            raise ApiError(409, f"Resource already exists in the project (resource={short}).")
        schema = call.doc.resource_schema(method)
        resource = {k: v for k, v in body.items() if k not in SERVER_FIELDS}
        resource.update(_new_fields(call, schema, relative, short))
        for hook in call.quirks.new_hooks:
            hook(call, resource)
        return _finish(call, "insert", relative, resource, lambda: store.put(api, relative, resource))


def generic_get(call: Call) -> Answer:
    with call.store.lock:
        resource = call.store.get(call.method.api, call.relative)
        if resource is None:
            raise ApiError(404, f"Resource not found (resource={call.relative.rsplit('/', 1)[-1]}).")
        _advance(call.store, (call.method.api, call.relative), resource)
        return Answer(200, resource)


def generic_list(call: Call) -> Answer:
    with call.store.lock:
        items = [r for _, r in call.store.children(call.method.api, call.relative)]
    size = int(call.query.get("pageSize") or call.query.get("maxResults") or 500)
    start = int(call.query.get("pageToken") or 0)
    page = items[start : start + size]
    fields = call.doc.schema_fields(call.method.response)
    key = next((k for k, v in fields.items() if v.get("type") == "array"), "items")
    out: dict[str, Any] = {key: page} if page else {}
    if "kind" in fields and fields["kind"].get("default"):
        out["kind"] = fields["kind"]["default"]
    if "selfLink" in fields:
        out["selfLink"] = call.url_of(call.relative)
    if start + size < len(items):
        out["nextPageToken"] = str(start + size)
    return Answer(200, out)


def _set_path(target: dict[str, Any], path: str, source: dict[str, Any]) -> None:
    parts = [_camel(p) for p in path.split(".")]
    src: Any = source
    for part in parts[:-1]:
        src = src.get(part) if isinstance(src, dict) else None
        target = target.setdefault(part, {})
    if isinstance(src, dict) and parts[-1] in src:
        target[parts[-1]] = src[parts[-1]]
    else:
        target.pop(parts[-1], None)


def generic_patch(call: Call, replace: bool = False) -> Answer:
    store, api = call.store, call.method.api
    body, mask = _resource_body(call)
    with store.lock:
        current = store.get(api, call.relative)
        if current is None:
            raise ApiError(404, f"Resource not found (resource={call.relative.rsplit('/', 1)[-1]}).")
        for key, code in (("etag", 409), ("fingerprint", 412)):
            if body.get(key) and current.get(key) and body[key] != current[key]:
                status = "ABORTED" if code == 409 else "FAILED_PRECONDITION"
                raise ApiError(code, f"the {key} does not match the resource's: it changed since it was read", status)
        updated = json.loads(json.dumps(current))
        if replace:
            updated = {k: v for k, v in updated.items() if k in SERVER_FIELDS or k == "name"}
            updated.update({k: v for k, v in body.items() if k not in SERVER_FIELDS and k != "name"})
        elif mask:
            for path in mask.split(","):
                if path.strip():
                    _set_path(updated, path.strip(), body)
        else:
            for key, value in body.items():
                if key in SERVER_FIELDS or key == "name":
                    continue
                if value is None:
                    updated.pop(key, None)
                else:
                    updated[key] = value
        fields = call.doc.schema_fields(call.doc.resource_schema(call.method))
        for key in ("etag", "fingerprint"):
            if key in fields:
                updated[key] = _etag()
        if "updateTime" in fields:
            updated["updateTime"] = now_rfc3339()
        return _finish(call, "patch" if not replace else "update", call.relative, updated,
                       lambda: store.put(api, call.relative, updated))  # fmt: skip


def generic_delete(call: Call) -> Answer:
    store, api = call.store, call.method.api
    with store.lock:
        current = store.get(api, call.relative)
        if current is None:
            raise ApiError(404, f"Resource not found (resource={call.relative.rsplit('/', 1)[-1]}).")
        return _finish(call, "delete", call.relative, current, lambda: _drop(store, api, call.relative))


def _drop(store: Store, api: str, relative: str) -> None:
    store.delete(api, relative)


GENERIC: dict[str, Callable[[Call], Answer]] = {
    "create": generic_create,
    "get": generic_get,
    "list": generic_list,
    "patch": generic_patch,
    "update": lambda call: generic_patch(call, replace=call.method.http_method == "PUT"),
    "delete": generic_delete,
}


# --------------------------------------------------------------------------- operations


def _lro_style(call: Call) -> str | None:
    fields = call.doc.schema_fields(call.method.response)
    if "targetLink" in fields and "status" in fields:
        return "compute"
    if "done" in fields and "response" in fields:
        return "longrunning"
    return None


def _finish(call: Call, kind: str, relative: str, resource: dict[str, Any], effect: Callable[[], None]) -> Answer:
    """Apply `effect` and answer as the method does: the resource, an empty body, or an operation.

    An operation error registered for this path (`Store.operation_errors`) makes the operation
    end in that error with `effect` never applied, as a failed cloud operation leaves nothing.
    """
    style = _lro_style(call)
    store = call.store
    failure = store.take_operation_error(call.path) if style else None
    if failure is None:
        effect()
    if style is None:
        if call.method.verb == "delete":
            return Answer(200, {})
        return Answer(200, resource)
    pending = PendingOperation(store.running_polls, failure)
    done = pending.polls == 0
    if style == "compute":
        op_name = f"operation-{int(time.time() * 1000)}-{uuid.uuid4().hex[:12]}"
        scope = re.search(r"^projects/[^/]+/(regions|zones)/[^/]+", relative)
        project = relative.split("/")[1] if relative.startswith("projects/") else "-"
        op_path = f"{scope.group(0) if scope else f'projects/{project}/global'}/operations/{op_name}"
        op: dict[str, Any] = {
            "kind": "compute#operation", "id": str(random.getrandbits(63)), "name": op_name,
            "operationType": kind, "targetLink": call.url_of(relative), "targetId": resource.get("id"),
            "status": "DONE" if done else "RUNNING", "progress": 100 if done else 0, "user": "cloudorch-test",
            "insertTime": now_rfc3339(compute=True), "startTime": now_rfc3339(compute=True),
            "selfLink": call.url_of(op_path),
        }  # fmt: skip
        if scope:
            op[scope.group(1)[:-1]] = call.url_of(scope.group(0))
        if done:
            _complete_compute(op, failure)
    else:
        location = re.search(r"^projects/[^/]+/locations/[^/]+", relative)
        op_path = f"{location.group(0) if location else 'operations'}/operations/{uuid.uuid4()}"
        if not location:
            op_path = f"operations/{uuid.uuid4()}"
        schema = call.doc.resource_schema(call.method) or "Resource"
        typed = {"@type": f"type.googleapis.com/{schema}", **resource}
        op = {"name": op_path, "metadata": typed, "done": done, "_response": typed}
        if done:
            _complete_longrunning(op, failure)
    with store.lock:
        store.put(call.method.api, op_path, op)
        if not done:
            store.pending[(call.method.api, op_path)] = pending
    return Answer(200, op)


def _complete_compute(op: dict[str, Any], failure: tuple[int, str] | None) -> None:
    op.update(status="DONE", progress=100, endTime=now_rfc3339(compute=True))
    if failure is not None:
        code, message = failure
        op["error"] = {"errors": [{"code": STATUS.get(code, "UNKNOWN"), "message": message}]}
        op["httpErrorStatusCode"], op["httpErrorMessage"] = code, STATUS.get(code, "UNKNOWN")


def _complete_longrunning(op: dict[str, Any], failure: tuple[int, str] | None) -> None:
    op["done"] = True
    response = op.pop("_response", None)
    if failure is not None:
        code, message = failure
        op["error"] = {"code": {400: 3, 404: 5, 409: 6, 412: 9, 429: 8, 500: 13, 503: 14}.get(code, 2),
                       "message": message}  # fmt: skip
    else:
        op["response"] = response


def _advance(store: Store, key: tuple[str, str], resource: dict[str, Any]) -> None:
    """One poll of an operation still RUNNING: the last one it was promised ends it."""
    pending = store.pending.get(key)
    if pending is None:
        return
    pending.polls -= 1
    if pending.polls > 0:
        return
    del store.pending[key]
    if resource.get("kind") == "compute#operation":
        _complete_compute(resource, pending.error)
    else:
        _complete_longrunning(resource, pending.error)


def _wait(call: Call) -> Answer:
    """`operations.wait` (compute, and google.longrunning's): a poll that answers the operation."""
    relative = call.relative.removesuffix("/wait").split(":", 1)[0]
    with call.store.lock:
        op = call.store.get(call.method.api, relative)
        if op is None:
            raise ApiError(404, f"Operation not found (resource={relative.rsplit('/', 1)[-1]}).")
        _advance(call.store, (call.method.api, relative), op)
        return Answer(200, op)


def _public(body: dict[str, Any] | None) -> dict[str, Any] | None:
    if body is None or not any(k.startswith("_") for k in body):
        return body
    return {k: v for k, v in body.items() if not k.startswith("_")}


# --------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each request waits ~40 ms for a delayed ACK

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(_public(body) if body is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, f"Invalid JSON payload received. {exc}") from exc
        if not isinstance(value, dict):
            raise ApiError(400, "Invalid JSON payload received: expected an object")
        return value

    def _handle(self) -> None:
        store = self.server.store
        split = urlsplit(self.path)
        try:
            body = self._body()
            if split.path.startswith("/_testserver/"):
                self._send(*_control(store, self.command, split.path, body))
                return
            if store.latency:
                time.sleep(store.latency)
            fault = store.take_fault(self.command, split.path)
            if fault is not None:
                store.calls["fault"] += 1
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                raise ApiError(fault.code, fault.message, headers=headers)
            answer = self._route(split.path, parse_qs(split.query), body)
        except ApiError as err:
            self._send(err.code, err.body(), err.headers)
            return
        self._send(answer.status, answer.body, answer.headers)

    def _route(self, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> Answer:
        store = self.server.store
        api, _, rest = path.lstrip("/").partition("/")
        doc = self.server.catalogue.for_path(api, rest)
        matched = doc.match(self.command, rest) if doc is not None else None
        if doc is None or matched is None:
            store.calls[f"{self.command} {path}"] += 1
            raise ApiError(404, f"The test server has no method for {self.command} {path}")
        method, params = matched
        store.calls[method.id] += 1
        call = Call(
            store=store, doc=doc, method=method, params=params,
            query={k: v[-1] for k, v in query.items()}, body=body,
            path=rest.removeprefix(doc.service_path).split(":", 1)[0] if ":" in rest.rsplit("/", 1)[-1]
            else rest.removeprefix(doc.service_path),
            base_url=self.server.base_url,
        )  # fmt: skip
        quirks = apis.quirks(api)
        generic = GENERIC.get(method.verb)
        if generic is None and method.name == "wait":
            generic = _wait
        handler = quirks.handlers.get(method.id)
        if handler is not None:
            return handler(call, generic or _unimplemented)
        if generic is None:
            return _unimplemented(call)
        return generic(call)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


def _unimplemented(call: Call) -> Answer:
    raise ApiError(501, f"the Google REST test server does not implement {call.method.id}")


def _control(store: Store, http_method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """`/_testserver/...`: the knobs, for tests and benchmarks in another process.

    POST reset · POST config {latency_ms, running_polls} · POST fault {code, times, retry_after,
    http_method, path} · POST operation_error {path, code, message} · GET calls · POST calls/reset.
    """
    what = path.removeprefix("/_testserver/").strip("/")
    with store.lock:
        if what == "reset" and http_method == "POST":
            store.reset()
        elif what == "config" and http_method == "POST":
            if "latency_ms" in body:
                store.latency = float(body["latency_ms"]) / 1000
            if "running_polls" in body:
                store.running_polls = int(body["running_polls"])
        elif what == "fault" and http_method == "POST":
            store.faults.append(Fault(**body))
        elif what == "operation_error" and http_method == "POST":
            code, message = int(body.get("code", 500)), str(body.get("message", "failed"))
            store.operation_errors.append((body.get("path"), code, message))
        elif what == "calls" and http_method == "GET":
            return 200, {"calls": dict(store.calls)}
        elif what == "calls/reset" and http_method == "POST":
            store.calls.clear()
        else:
            return 404, ApiError(404, f"no control route {http_method} {path}").body()
    return 200, {}


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    store: Store
    catalogue: Catalogue
    base_url: str


class GoogleServer:
    """The server on a thread of this process (tests), or run by `python -m cloudorch_gcp.testserver`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        apis.load_all()
        self.store = Store()
        self._httpd = _HttpServer((host, port), _Handler)
        self._httpd.store = self.store
        self._httpd.catalogue = Catalogue()
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self._httpd.base_url = self.url
        self._thread: threading.Thread | None = None

    def start(self) -> GoogleServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="google-test-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- knobs, in process (the same as the `/_testserver/` routes)
    def reset(self) -> None:
        self.store.reset()

    def fail(self, code: int, *, times: int = 1, retry_after: str | None = None, http_method: str | None = None,
             path: str | None = None) -> None:  # fmt: skip
        """Answer the next `times` requests matching with `code` (429, 503, ...) and Retry-After."""
        with self.store.lock:
            self.store.faults.append(Fault(code, times, retry_after, http_method, path))

    def fail_operation(self, code: int, message: str, *, path: str | None = None) -> None:
        """Make the next operation (for a request path matching `path`) end in this error."""
        with self.store.lock:
            self.store.operation_errors.append((path, code, message))

    def configure(self, *, latency: float | None = None, running_polls: int | None = None) -> None:
        """Seconds added to each call; polls each new operation answers RUNNING before DONE."""
        with self.store.lock:
            if latency is not None:
                self.store.latency = latency
            if running_polls is not None:
                self.store.running_polls = running_polls

    def calls(self) -> dict[str, int]:
        with self.store.lock:
            return dict(self.store.calls)

    def endpoint(self, api: str, version: str) -> str:
        """The `api_endpoint` a googleapiclient client of `api` `version` uses to reach this server."""
        doc = self._httpd.catalogue.get(api, version)
        service_path = doc.service_path if doc is not None else ""
        return f"{self.url}/{api}/{service_path}"
