"""Faults on the wire for tests: a requests transport adapter around the client's own, and the
same in front of the discovery clients' httplib2 connections.

The storage client sends every request through its `AuthorizedSession` (a `requests.Session`),
and the session through the adapter mounted for the URL's scheme. `wrap` mounts a `FaultAdapter`
that hands each request to the adapter that was there before; `wrap_http` puts a `FaultHttp` in
front of an httplib2 connection (`cloudorch_gcp.discovery` sends every request through one). So
what is counted, failed or cut off here is the real HTTP request, not a patched SDK method, and
both kinds of client share one numbering. Nothing here runs unless a test sets
`GcpProvider.session_wrapper` / `http_wrapper` to a `WriteFaults`' `wrap` / `wrap_http`, or a
process's environment names `KILL_AFTER_ENV`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
from collections.abc import Callable, Mapping
from typing import Any

from cloudorch.provider.faults import WriteFaultSeam

#: set in a cloudorch process's environment, SIGKILLs it right after its Nth mutating GCS request
KILL_AFTER_ENV = "CLOUDORCH_GCP_KILL_AFTER_CALLS"

#: the HTTP methods that change something; GET and HEAD are never counted
MUTATING = frozenset({"PUT", "POST", "PATCH", "DELETE"})

#: transient answers a fault picks from: (HTTP status, reason); None: the connection is refused
TRANSIENT_ERRORS: tuple[tuple[int, str] | None, ...] = ((503, "backendError"), (500, "internalError"), None)


def _adapter_base() -> type[Any]:
    from requests.adapters import BaseAdapter

    return BaseAdapter


def error_response(request: Any, status: int, reason: str) -> Any:
    """A `requests.Response` in Cloud Storage's JSON error format, as if the server had answered."""
    import requests

    response = requests.Response()
    response.status_code = status
    response.reason = reason
    response.url = request.url
    response.request = request
    response.headers["content-type"] = "application/json; charset=UTF-8"
    body = {"error": {"code": status, "message": f"injected by cloudorch_gcp.faults: {reason}",
                      "errors": [{"reason": reason, "message": "injected"}]}}  # fmt: skip
    response._content = json.dumps(body).encode()
    return response


Watcher = Callable[[Any, Callable[[], Any]], Any]


def mount(session: Any, watcher: Watcher) -> Any:
    """Put `watcher(request, send)` in front of the adapters `session` has for http and https."""

    class FaultAdapter(_adapter_base()):  # type: ignore[misc]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def send(self, request: Any, **kwargs: Any) -> Any:
            return watcher(request, lambda: self.inner.send(request, **kwargs))

        def close(self) -> None:
            self.inner.close()

    for prefix in ("https://", "http://"):
        session.mount(prefix, FaultAdapter(session.get_adapter(prefix)))
    return session


class FaultHttp:
    """An httplib2 connection with `watcher(method, send)` in front of each request."""

    def __init__(self, inner: Any, watcher: Callable[[str, str, Callable[[], Any]], Any]) -> None:
        self.inner = inner
        self.watcher = watcher

    def request(self, uri: str, method: str = "GET", *args: Any, **kwargs: Any) -> Any:
        return self.watcher(uri, str(method).upper(), lambda: self.inner.request(uri, method, *args, **kwargs))

    def __getattr__(self, name: str) -> Any:  # timeout, close, credentials: the connection's own
        return getattr(self.inner, name)


def http_error_response(status: int, reason: str) -> tuple[Any, bytes]:
    """(httplib2 response, body) in Google's JSON error format, as if the server had answered."""
    import httplib2

    body = {"error": {"code": status, "message": f"injected by cloudorch_gcp.faults: {reason}",
                      "status": "UNAVAILABLE" if status == 503 else "INTERNAL",
                      "errors": [{"reason": reason, "message": "injected"}]}}  # fmt: skip
    return httplib2.Response({"status": str(status), "content-type": "application/json; charset=UTF-8"}), json.dumps(
        body
    ).encode()


class WriteFaults(WriteFaultSeam):
    """The conformance kit's fault seam for GCP (`cloudorch.testing.conformance.FaultSeam`).

    Set `GcpProvider.session_wrapper = seam.wrap`. It numbers the mutating requests of every
    client in the order they are sent. `failing` answers one of them with a transient error
    without sending it (a 503 or 500 in Cloud Storage's format, or a refused connection), or,
    with `lost`, sends it, lets the server act, and raises a read timeout instead of the answer.
    """

    kill_after_env = KILL_AFTER_ENV

    def __init__(self) -> None:
        super().__init__()
        self.error: tuple[int, str] | None = TRANSIENT_ERRORS[0]

    def choose_error(self, rng: random.Random) -> None:
        self.error = rng.choice(TRANSIENT_ERRORS)

    def wrap(self, session: Any) -> Any:
        return mount(session, self._watch)

    def wrap_http(self, http: Any) -> Any:
        return FaultHttp(http, self._watch_http)

    def _hit(self, method: str) -> tuple[bool, bool, tuple[int, str] | None]:
        """(whether this mutating request is the one to fail, lost, error)."""
        if method not in MUTATING:
            return False, False, None
        with self._lock:
            self.count += 1
            hit = self.count == self.target
            if hit:
                self.fired = True
            return hit, self.lost, self.error

    def _watch_http(self, uri: str, method: str, send: Callable[[], Any]) -> Any:
        hit, lost, error = self._hit(method)
        if not hit:
            return send()
        if lost:
            send()
            raise TimeoutError(f"injected by {type(self).__name__}: the response was lost")
        if error is None:
            raise ConnectionRefusedError(f"injected by {type(self).__name__}: connection refused")
        return http_error_response(*error)

    def _watch(self, request: Any, send: Callable[[], Any]) -> Any:
        import requests

        hit, lost, error = self._hit(str(request.method).upper())
        if not hit:
            return send()
        if lost:
            send()
            raise requests.ReadTimeout(f"injected by {type(self).__name__}: the response was lost", request=request)
        if error is None:
            raise requests.ConnectionError(f"injected by {type(self).__name__}: connection refused", request=request)
        return error_response(request, *error)


class KillAfter:
    """SIGKILLs this process right after its `n`th mutating request got its answer (the server
    acted; the journal never hears of it). Mounted by `GcpProvider` when `KILL_AFTER_ENV` is set."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self._lock = threading.Lock()

    def wrap(self, session: Any) -> Any:
        return mount(session, self._watch)

    def wrap_http(self, http: Any) -> Any:
        return FaultHttp(http, lambda uri, method, send: self._after(method, send()))

    def _watch(self, request: Any, send: Callable[[], Any]) -> Any:
        return self._after(str(request.method).upper(), send())

    def _after(self, method: str, response: Any) -> Any:
        if method in MUTATING:
            with self._lock:
                self.count += 1
                hit = self.count == self.n
            if hit:
                os.kill(os.getpid(), signal.SIGKILL)
        return response


_KILLER: list[KillAfter] = []


def _killer(env: Mapping[str, str]) -> KillAfter | None:
    value = env.get(KILL_AFTER_ENV)
    if not value:
        return None
    if not _KILLER:
        _KILLER.append(KillAfter(int(value)))
    return _KILLER[0]


def wrap_from_env(session: Any, env: Mapping[str, str]) -> Any:
    """`session`, with the process-wide `KillAfter` mounted when `KILL_AFTER_ENV` is set."""
    killer = _killer(env)
    return session if killer is None else killer.wrap(session)


def wrap_http_from_env(http: Any, env: Mapping[str, str]) -> Any:
    """An httplib2 connection, with the process-wide `KillAfter` in front when `KILL_AFTER_ENV` is set."""
    killer = _killer(env)
    return http if killer is None else killer.wrap_http(http)
