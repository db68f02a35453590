"""Faults on the wire for tests: a requests transport adapter around the client's own.

The storage client sends every request through its `AuthorizedSession` (a `requests.Session`),
and the session through the adapter mounted for the URL's scheme. `wrap` mounts a `FaultAdapter`
that hands each request to the adapter that was there before, so what is counted, failed or cut
off here is the real HTTP request, not a patched SDK method. Nothing here runs unless a test sets
`GcpProvider.session_wrapper` to a `WriteFaults`' `wrap`, or a process's environment names
`KILL_AFTER_ENV`.
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

    def _watch(self, request: Any, send: Callable[[], Any]) -> Any:
        import requests

        if str(request.method).upper() not in MUTATING:
            return send()
        with self._lock:
            self.count += 1
            hit = self.count == self.target
            if hit:
                self.fired = True
            lost, error = self.lost, self.error
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

    def _watch(self, request: Any, send: Callable[[], Any]) -> Any:
        response = send()
        if str(request.method).upper() in MUTATING:
            with self._lock:
                self.count += 1
                hit = self.count == self.n
            if hit:
                os.kill(os.getpid(), signal.SIGKILL)
        return response


_KILLER: list[KillAfter] = []


def wrap_from_env(session: Any, env: Mapping[str, str]) -> Any:
    """`session`, with the process-wide `KillAfter` mounted when `KILL_AFTER_ENV` is set."""
    value = env.get(KILL_AFTER_ENV)
    if not value:
        return session
    if not _KILLER:
        _KILLER.append(KillAfter(int(value)))
    return _KILLER[0].wrap(session)
