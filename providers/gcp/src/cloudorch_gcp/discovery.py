"""Google's REST APIs through the discovery client: clients, collections, errors and operations.

Owns, for the `gcp` provider, every API that is not Cloud Storage (Pub/Sub, Compute, IAM, Cloud
Run, ... and `gcp.resource`'s any): one googleapiclient service object per (api, version), built
offline from the discovery documents googleapiclient ships; an HTTP connection per thread
(httplib2 objects are not thread-safe, the service objects are: requests are built from them and
sent with `execute(http=...)`); `HttpError` classification; awaiting long-running operations of
both styles (`compute#operation`, `google.longrunning.Operation`). The SDK is imported lazily.

How a typed type is written over it (see `cloudorch_gcp.pubsub` for a whole one):

    topics = self.gcp.rest.collection("pubsub/v1", "projects.topics")
    name = topics.path_of(parent="projects/p", short="orders")   # projects/p/topics/orders
    raw = topics.get(name)                                       # None when it does not exist
    raw = topics.create(name, body)                              # an operation, if any, awaited
    settle = topics.begin_create(name, body)                     # or: the request alone, then
    raw = self.finish_create(address, name, settle)              # await + read back, tainted on failure
    raw = topics.patch(name, body, mask=["labels"])              # the method's own mask shape
    topics.delete(name)                                          # False when already gone
    for raw in topics.list("projects/p"): ...                    # every page

Each returns the resource as JSON (after awaiting the operation and reading it back where the
method answers an operation). `Collection.call(method, path, body, **query)` reaches any other
method of the collection (`modifyPushConfig`, `setIamPolicy`). Errors stay the SDK's `HttpError`
inside; the type wraps its calls in `provider.errors(address, what)`, which classifies them
(`classify_http_error`): 429/503 retryable with Retry-After, 409 ALREADY_EXISTS fatal with an
import hint, 409 ABORTED/412 a conflict, 400 fatal naming the field Google names.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloudorch.provider.contract import (
    ConfigError,
    ErrorKind,
    ProviderError,
    classify_status,
    retry_after,
)

if TYPE_CHECKING:
    from cloudorch_gcp.provider import GcpProvider

_VAR = re.compile(r"\{(\+?)([^}]+)\}")
_VERSION_PREFIX = re.compile(r"^(v\d[a-z0-9]*/)")
#: the scope every API accepts; the project's IAM decides what is allowed
SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def api_parts(api: str) -> tuple[str, str]:
    """`pubsub/v1` -> ("pubsub", "v1"); a ConfigError if it is not NAME/VERSION."""
    name, _, version = api.partition("/")
    if not name or not version or "/" in version:
        raise ConfigError(f"api {api!r} is not NAME/VERSION", hint="write e.g. `pubsub/v1`, `compute/v1`, `run/v2`")
    return name, version


def _template_regex(template: str) -> re.Pattern[str]:
    out, pos = [], 0
    for i, m in enumerate(_VAR.finditer(template)):
        out.append(re.escape(template[pos : m.start()]))
        out.append(f"(?P<p{i}>.+?)" if m.group(1) else f"(?P<p{i}>[^/]+)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out) + "$")


def _params(template: str, path: str) -> dict[str, str] | None:
    """The path parameters `template` (`v1/{+topic}`, `projects/{project}/global/networks/{network}`)
    takes to make `path`; None if it cannot."""
    found = _template_regex(template).match(path)
    if found is None:
        return None
    names = [m.group(2) for m in _VAR.finditer(template)]
    return {names[int(k[1:])]: v for k, v in found.groupdict().items()}


def _pyname(param: str) -> str:
    # googleapiclient's own rule (discovery.key2param): python keywords get a trailing `_`
    import keyword

    name = re.sub(r"\W", "_", param)
    return name + "_" if keyword.iskeyword(name) else name


#: parsed discovery documents and the service objects built from them, shared by every provider
#: of the process: compute's document is 5 MB (~80 ms to parse and build), and service objects
#: hold no connection or credentials (each request is sent on the caller's own `http`)
_BUILT: dict[tuple[str, str, str | None], tuple[dict[str, Any], Any]] = {}
_BUILT_LOCK = threading.Lock()


def _built(name: str, version: str, endpoint: str | None) -> tuple[dict[str, Any], Any]:
    with _BUILT_LOCK:
        found = _BUILT.get((name, version, endpoint))
        if found is not None:
            return found
        import httplib2
        from googleapiclient.discovery import build_from_document
        from googleapiclient.discovery_cache import get_static_doc

        text = get_static_doc(name, version)
        if text is None:
            raise ConfigError(
                f"api {name}/{version}: googleapiclient ships no discovery document for it",
                hint="see googleapiclient/discovery_cache/documents/ for the APIs and versions it knows",
            )
        doc: dict[str, Any] = json.loads(text)
        where = f"{endpoint.rstrip('/')}/{name}/{doc.get('servicePath') or ''}" if endpoint else None
        options = {"api_endpoint": where} if where else None
        # the http given here is never used: every request is sent with the calling thread's own
        service = build_from_document(doc, http=httplib2.Http(), client_options=options)
        _BUILT[(name, version, endpoint)] = (doc, service)
        return doc, service


class Api:
    """One API version: its discovery document and its (thread-safe) service object."""

    def __init__(self, rest: RestClients, name: str, version: str) -> None:
        self.name, self.version = name, version
        self.doc, self.service = _built(name, version, rest.endpoint)

    @property
    def service_path(self) -> str:
        return str(self.doc.get("servicePath") or "")

    def resource(self, collection: str) -> dict[str, Any]:
        node: dict[str, Any] = {"resources": self.doc.get("resources") or {}}
        for part in collection.split("."):
            node = (node.get("resources") or {}).get(part) or {}
            if not node:
                raise ConfigError(
                    f"api {self.name}/{self.version} has no collection {collection!r}",
                    hint="collections are the discovery document's resources, dotted: e.g. projects.topics",
                )
        return node

    def methods_named(self, name: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(collection, method) for every method called `name`, anywhere in the document."""

        def walk(resources: dict[str, Any], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
            for rname, res in resources.items():
                if name in (res.get("methods") or {}):
                    yield prefix + rname, res["methods"][name]
                yield from walk(res.get("resources") or {}, prefix + rname + ".")

        return walk(self.doc.get("resources") or {}, "")

    def schema_fields(self, schema: str | None) -> dict[str, Any]:
        return dict((self.doc.get("schemas") or {}).get(schema or "", {}).get("properties") or {})


@dataclass(frozen=True)
class Operation:
    """What a method answered when it answers an operation: its style and its JSON."""

    style: str  # compute | longrunning
    raw: dict[str, Any]


class Collection:
    """One REST collection (`pubsub/v1` `projects.topics`): paths, and its methods with the JSON
    shapes they take, called on the calling thread's connection."""

    def __init__(self, rest: RestClients, api: Api, name: str) -> None:
        self.rest, self.api, self.name = rest, api, name
        self.node = api.resource(name)
        self.methods: dict[str, dict[str, Any]] = dict(self.node.get("methods") or {})
        get = self.methods.get("get")
        if get is None:
            raise ConfigError(
                f"collection {name} of {api.name}/{api.version} has no get method: cloudorch cannot read it back",
                hint="choose the collection whose resources you create (e.g. projects.topics)",
            )
        flat = get.get("flatPath") or get["path"]
        found = _VERSION_PREFIX.match(flat)
        #: the version segment of this API's paths (`v1/`; compute has it in its service path)
        self.prefix = found.group(1) if found else ""
        #: one resource's relative path, e.g. projects/{projectsId}/topics/{topicsId}
        self.item_template = flat[len(self.prefix) :]
        head, _, _ = self.item_template.rpartition("/")
        self.parent_template, _, self.segment = head.rpartition("/")
        self.schema: str | None = (get.get("response") or {}).get("$ref")
        self.fields = api.schema_fields(self.schema)

    # -- paths
    @property
    def has_labels(self) -> bool:
        return "labels" in self.fields

    @property
    def compute_style(self) -> bool:
        """Compute's shape: a short `name`, a `selfLink` as the identity."""
        return "selfLink" in self.fields and self.api.name == "compute"

    def default_parent(self, project: str | None) -> str | None:
        """`projects/P` (compute: `projects/P/global`) when the parent needs nothing but the project."""
        if project is None:
            return None
        variables = _VAR.findall(self.parent_template)
        if len(variables) != 1:
            return None
        return _VAR.sub(project, self.parent_template)

    def path_of(self, parent: str, short: str) -> str:
        return f"{parent.strip('/')}/{self.segment}/{short}"

    def matches(self, path: str) -> bool:
        return _template_regex(self.item_template).match(path) is not None

    def parent_of(self, path: str) -> str:
        return path.rsplit("/", 2)[0]

    # -- calls
    def request(self, method: str, path: str, body: dict[str, Any] | None = None, **query: Any) -> Any:
        """The SDK request for `method` on the resource (or, for a collection method, the
        collection under the parent) at relative `path`."""
        spec = self.methods.get(method)
        if spec is None:
            raise ConfigError(f"collection {self.name} of {self.api.name}/{self.api.version} has no {method} method")
        params = _params(spec["path"], self.prefix + path)
        if params is None:
            # a custom method on the resource: the path with the method's literal tail (`/wait`, `:publish`)
            tail = spec["path"].rpartition("}")[2]
            params = _params(spec["path"], self.prefix + path + tail) if tail else None
        if params is None:
            raise ConfigError(
                f"{path!r} is not a path {self.api.name}/{self.api.version} {self.name}.{method} accepts",
                hint=f"a resource here looks like {self.item_template}",
            )
        kwargs: dict[str, Any] = {_pyname(k): v for k, v in params.items()}
        kwargs.update({_pyname(k): v for k, v in query.items() if v is not None})
        if body is not None:
            kwargs["body"] = body
        target = self.api.service
        for part in self.name.split("."):
            target = getattr(target, part)()
        return getattr(target, method)(**kwargs)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, **query: Any) -> dict[str, Any]:
        """Send `method` and return its answer (an operation is returned as it came)."""
        answer = self.rest.execute(self.request(method, path, body, **query))
        return answer if isinstance(answer, dict) else {}

    def operation(self, method: str, answer: dict[str, Any]) -> Operation | None:
        """The answer as an `Operation` when `method` answers one (read from the document)."""
        ref = (self.methods[method].get("response") or {}).get("$ref")
        fields = self.api.schema_fields(ref)
        if "targetLink" in fields and "status" in fields:
            return Operation("compute", answer)
        if "done" in fields and "response" in fields:
            return Operation("longrunning", answer)
        return None

    def get(self, path: str) -> dict[str, Any] | None:
        """The resource at `path`, or None when it does not exist."""
        try:
            return self.call("get", path)
        except Exception as exc:
            if not_found(exc):
                return None
            raise

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create the resource at `path` and return it as read back after its operation."""
        return self.begin_create(path, body)()

    def begin_create(self, path: str, body: dict[str, Any]) -> Callable[[], dict[str, Any]]:
        """Send the create of the resource at `path`; the callable returned awaits its operation
        and reads it back (idempotent: a type runs it in `ResourceType.finish_create`, so a
        failure there leaves the object tainted, never made twice)."""
        method = "create" if "create" in self.methods else "insert"
        spec = self.methods.get(method)
        if spec is None:
            raise ConfigError(f"collection {self.name} of {self.api.name}/{self.api.version} has no create method")
        parent, short = self.parent_of(path), path.rsplit("/", 1)[-1]
        query: dict[str, Any] = {}
        if _params(spec["path"], self.prefix + path) is not None:
            target = path  # created where it will live (Pub/Sub's PUT)
        else:
            target = f"{parent}/{self.segment}"  # on the collection (compute insert, Cloud Run create)
            params = spec.get("parameters") or {}
            # a compute insert's `requestId` is an idempotency token (a UUID), never the new name
            ids = [k for k, v in params.items() if v.get("location") == "query" and k.endswith("Id")]
            id_param = next((k for k in ids if k != "requestId"), None)
            if id_param is not None:
                query[id_param] = short
            else:
                body = {**body, "name": short}
        answer = self.call(method, target, body, **query)
        return lambda: self._settled(method, path, answer)

    def _settled(self, method: str, path: str, answer: dict[str, Any]) -> dict[str, Any]:
        operation = self.operation(method, answer)
        if operation is None:
            return answer
        result = self.rest.wait(operation)
        if operation.style == "longrunning" and str(result.get("name") or "") == path:
            # google.longrunning answers the resource itself: no read back needed
            return {k: v for k, v in result.items() if k != "@type"}
        raw = self.get(path)
        if raw is None:
            raise ProviderError(
                f"{self.api.name}: {path} is not there after its operation finished", kind=ErrorKind.TRANSIENT
            )
        return raw

    def patch(self, path: str, body: dict[str, Any], mask: Sequence[str] | None = None) -> dict[str, Any]:
        """Change the fields `mask` names (all of `body` when None) and return the resource.

        The request takes the method's own shape: a wrapped body with its `updateMask`
        (`UpdateTopicRequest`), the resource with `updateMask` in the query (Cloud Run), or the
        resource alone, merged by the service (Compute); without a patch method, the collection's
        `update` (PUT) gets the resource as read with `body` laid over it.
        """
        method = "patch" if "patch" in self.methods else "update"
        spec = self.methods.get(method)
        if spec is None:
            raise ConfigError(f"collection {self.name} of {self.api.name}/{self.api.version} cannot be updated")
        request_ref = (spec.get("request") or {}).get("$ref")
        mask_text = ",".join(mask) if mask is not None else None
        query: dict[str, Any] = {}
        if method == "update" and spec.get("httpMethod") == "PUT":
            current = self.get(path) or {}
            request: dict[str, Any] = {**current, **body}
        elif request_ref == self.schema:
            request = body
            if mask_text is not None and "updateMask" in (spec.get("parameters") or {}):
                query["updateMask"] = mask_text
        else:
            wrapper = self.api.schema_fields(request_ref)
            key = next((k for k, v in wrapper.items() if v.get("$ref") == self.schema), None)
            if key is None:
                request = body
            else:
                request = {key: body}
                if "updateMask" in wrapper:
                    request["updateMask"] = mask_text if mask_text is not None else ",".join(body)
        answer = self.call(method, path, request, **query)
        return self._settled(method, path, answer) if self.operation(method, answer) else answer

    def delete(self, path: str) -> bool:
        """Delete the resource and await its operation; False when it was already gone."""
        try:
            answer = self.call("delete", path)
        except Exception as exc:
            if not_found(exc):
                return False
            raise
        operation = self.operation("delete", answer)
        if operation is not None:
            self.rest.wait(operation)
        return True

    def list(self, parent: str, **query: Any) -> Iterator[dict[str, Any]]:
        """Every resource of this collection under `parent`, page after page."""
        spec = self.methods.get("list")
        if spec is None:
            raise ConfigError(f"collection {self.name} of {self.api.name}/{self.api.version} has no list method")
        ref = (spec.get("response") or {}).get("$ref")
        key = next((k for k, v in self.api.schema_fields(ref).items() if v.get("type") == "array"), "items")
        collection_path = f"{parent.strip('/')}/{self.segment}"
        token: str | None = None
        while True:
            page = self.call("list", collection_path, pageToken=token, **query)
            for item in page.get(key) or []:
                if isinstance(item, dict):
                    yield item
            token = page.get("nextPageToken")
            if not token:
                return


class RestClients:
    """The discovery clients of one configured `gcp` provider (its `rest` attribute)."""

    def __init__(self, provider: GcpProvider) -> None:
        self.provider = provider
        self._lock = threading.Lock()
        self._apis: dict[tuple[str, str], Api] = {}
        self._collections: dict[tuple[str, str], Collection] = {}
        self._local = threading.local()
        self._credentials: Any = None
        #: seconds between polls of a google.longrunning operation (compute's are awaited by `wait`)
        self.poll_interval = provider.cfg.operation_poll_interval
        self.operation_timeout = provider.cfg.operation_timeout

    @property
    def endpoint(self) -> str | None:
        return self.provider.api_endpoint

    def api(self, api: str) -> Api:
        name, version = api_parts(api)
        with self._lock:
            found = self._apis.get((name, version))
            if found is None:
                found = self._apis[(name, version)] = Api(self, name, version)
            return found

    def collection(self, api: str, name: str) -> Collection:
        with self._lock:
            found = self._collections.get((api, name))
        if found is None:
            found = Collection(self, self.api(api), name)
            with self._lock:
                self._collections[(api, name)] = found
        return found

    # -- transport
    def http(self) -> Any:
        """This thread's connection (httplib2 objects must not be shared between threads)."""
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = self._make_http()
        return http

    def _make_http(self) -> Any:
        import httplib2

        http: Any = httplib2.Http(timeout=self.provider.cfg.timeout)
        if not self.endpoint:
            import google_auth_httplib2

            http = google_auth_httplib2.AuthorizedHttp(self.credentials(), http=http)
        wrapper = type(self.provider).http_wrapper  # a plain function on the class, not a method
        if wrapper is not None:
            http = wrapper(http)
        from cloudorch_gcp.faults import wrap_http_from_env

        return wrap_http_from_env(http, self.provider.context.env)

    def credentials(self) -> Any:
        with self._lock:
            if self._credentials is None:
                import google.auth

                try:
                    self._credentials, _ = google.auth.default(scopes=[SCOPE])
                except google.auth.exceptions.DefaultCredentialsError as exc:
                    raise ConfigError(
                        f"provider {self.provider.alias}: no Google credentials: {exc}",
                        hint="run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS",
                    ) from exc
            return self._credentials

    def execute(self, request: Any) -> Any:
        # no SDK retries: the engine retries, with backoff and Retry-After
        return request.execute(http=self.http(), num_retries=0)

    # -- long-running operations
    def wait(self, operation: Operation) -> dict[str, Any]:
        """Await `operation` until done; raise a classified ProviderError if it failed."""
        deadline = time.monotonic() + self.operation_timeout
        raw = operation.raw
        delay = self.poll_interval
        while True:
            if operation.style == "compute" and raw.get("status") == "DONE":
                return _compute_result(raw)
            if operation.style == "longrunning" and raw.get("done"):
                return _longrunning_result(raw)
            if time.monotonic() > deadline:
                raise ProviderError(
                    f"operation {raw.get('name')} still running after {self.operation_timeout:.0f}s",
                    kind=ErrorKind.TRANSIENT,
                    hint="raise providers.gcp.operation_timeout, or look at the operation in the console",
                )
            if operation.style == "compute":
                raw = self._compute_poll(raw)  # `wait` blocks server-side: no sleep needed
            else:
                if delay:
                    time.sleep(delay)
                    delay = min(delay * 2, 10.0)
                raw = self._longrunning_poll(raw)

    def _compute_poll(self, raw: dict[str, Any]) -> dict[str, Any]:
        link = str(raw.get("selfLink") or "")
        found = re.search(r"projects/[^/]+/(global|regions/[^/]+|zones/[^/]+)/operations/[^/?]+", link)
        if found is None:
            raise ProviderError(f"compute operation without a selfLink: {raw.get('name')}", kind=ErrorKind.FATAL)
        scope = found.group(1).split("/")[0]
        collection = {"global": "globalOperations", "regions": "regionOperations", "zones": "zoneOperations"}[scope]
        ops = self.collection("compute/v1", collection)
        return ops.call("wait", found.group(0))

    def _longrunning_poll(self, raw: dict[str, Any]) -> dict[str, Any]:
        name = str(raw.get("name") or "")
        api = self._operation_api(name)
        for collection, _spec in api.methods_named("get"):
            if collection.endswith("operations"):
                ops = self.collection(f"{api.name}/{api.version}", collection)
                if ops.matches(name):
                    return ops.call("get", name)
        raise ProviderError(f"cannot poll operation {name}: no operations.get fits it", kind=ErrorKind.FATAL)

    def _operation_api(self, name: str) -> Api:
        # the API whose call made the operation: the one loaded that has an operations collection fitting it
        with self._lock:
            apis = list(self._apis.values())
        for api in apis:
            for collection, _spec in api.methods_named("get"):
                if not collection.endswith("operations"):
                    continue
                if self.collection(f"{api.name}/{api.version}", collection).matches(name):
                    return api
        raise ProviderError(f"cannot poll operation {name}: no loaded API has operations like it", kind=ErrorKind.FATAL)


_RPC_HTTP = {3: 400, 5: 404, 6: 409, 7: 403, 8: 429, 9: 412, 10: 409, 13: 500, 14: 503, 4: 504}


def _compute_result(raw: dict[str, Any]) -> dict[str, Any]:
    errors = (raw.get("error") or {}).get("errors") or []
    if not errors:
        return raw
    status = int(raw.get("httpErrorStatusCode") or 400)
    message = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
    raise OperationFailed(status, message, raw)


def _longrunning_result(raw: dict[str, Any]) -> dict[str, Any]:
    error = raw.get("error")
    if not error:
        return dict(raw.get("response") or {})
    status = _RPC_HTTP.get(int(error.get("code") or 2), 500)
    raise OperationFailed(status, str(error.get("message") or "operation failed"), raw)


class OperationFailed(Exception):
    """A long-running operation ended in an error (its HTTP-equivalent status and message)."""

    def __init__(self, status: int, message: str, raw: dict[str, Any]) -> None:
        super().__init__(f"operation {raw.get('name')} failed: {message}")
        self.status, self.message, self.raw = status, message, raw


# --------------------------------------------------------------------------- errors


def _error_doc(exc: Any) -> dict[str, Any]:
    try:
        doc = json.loads(exc.content.decode("utf-8"))
    except (ValueError, AttributeError, UnicodeDecodeError):
        return {}
    error = doc.get("error") if isinstance(doc, dict) else None
    return error if isinstance(error, dict) else {}


def already_exists(exc: BaseException) -> bool:
    """Whether `exc` is Google's 409 for a name that is taken (not an etag or a busy resource)."""
    from googleapiclient.errors import HttpError

    if not isinstance(exc, HttpError) or int(exc.resp.status) != 409:
        return False
    error = _error_doc(exc)
    status = str(error.get("status") or "")
    return status == "ALREADY_EXISTS" or (not status and "exist" in str(error.get("message") or "").lower())


def not_found(exc: BaseException) -> bool:
    """Whether `exc` is Google's 404 (the resource, or its parent, does not exist)."""
    from googleapiclient.errors import HttpError

    return isinstance(exc, HttpError) and int(exc.resp.status) == 404


def classify_http_error(exc: BaseException, address: str | None) -> ProviderError | None:
    """A classified ProviderError for a googleapiclient / httplib2 failure; None if not one of theirs."""
    import socket

    import httplib2
    from googleapiclient.errors import HttpError

    name = address or "gcp"
    if isinstance(exc, httplib2.HttpLib2Error | socket.timeout | ConnectionError | TimeoutError):
        return ProviderError(f"{name}: connection failed: {exc}", kind=ErrorKind.TRANSIENT, address=address, cause=exc)
    if isinstance(exc, OperationFailed):
        status, message, headers, reason = exc.status, exc.message, None, ""
    elif isinstance(exc, HttpError):
        status = int(exc.resp.status)
        error = _error_doc(exc)
        message = str(error.get("message") or exc.reason or f"HTTP {status}")
        reason = str(error.get("status") or "")
        headers = dict(exc.resp)
    else:
        return None
    api = _api_of(exc)
    name_taken = status == 409 and reason in ("ALREADY_EXISTS", "") and "exist" in message.lower()
    kind = classify_status(status, conflict=status in (409, 412) and not name_taken)
    if kind in (ErrorKind.THROTTLED, ErrorKind.TRANSIENT):
        what = "throttled by" if kind is ErrorKind.THROTTLED else f"{status} from"
        return ProviderError(f"{name}: {what} {api}: {message}", kind=kind, address=address, cause=exc,
                             retry_after=retry_after(headers))  # fmt: skip
    if name_taken:
        return ProviderError(
            f"{name}: already exists: {message}", kind=ErrorKind.FATAL, address=address, cause=exc,
            hint=f"it was not made by cloudorch for this address: import it (cloudorch import {name} ID) or choose "
            "another name",
        )  # fmt: skip
    if kind is ErrorKind.CONFLICT:
        return ProviderError(f"{name}: conflict: {message}", kind=kind, address=address, cause=exc)
    hints = {
        400: "the request was refused as invalid: check the property Google names above",
        401: "run `gcloud auth application-default login`",
        403: "grant the account a role allowing this on the project, or enable the API",
        404: "the resource or its parent does not exist (check parent, project and location)",
    }
    what = {400: "invalid", 401: "not authenticated", 403: "forbidden", 404: "not found"}.get(status, f"{status}")
    return ProviderError(f"{name}: {what}: {message}", kind=ErrorKind.FATAL, address=address, cause=exc,
                         hint=hints.get(status))  # fmt: skip


def _api_of(exc: BaseException) -> str:
    uri = str(getattr(exc, "uri", "") or "")
    host = re.match(r"https?://([a-z0-9-]+)\.googleapis\.com", uri)
    return f"{host.group(1)}" if host else "Google"
