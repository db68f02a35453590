"""Faults on the wire for tests: an azure-core pipeline policy on every client of the provider.

`AzureProvider.extra_policies` puts a policy into the pipeline of each client it builds (Resource
Manager and Blob Storage alike), so what is counted, failed or cut off here is the real HTTP
request the SDK sends to the server, not a patched SDK method. Nothing here runs unless a test
adds `WriteFaults` to `extra_policies`, or a process's environment names `KILL_AFTER_ENV`.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Mapping
from typing import Any

from cloudorch.provider.faults import WriteFaultSeam

#: set in a cloudorch process's environment, SIGKILLs it right after its Nth mutating Azure request
KILL_AFTER_ENV = "CLOUDORCH_AZURE_KILL_AFTER_CALLS"

#: the HTTP methods that change something; GET and HEAD (reads, LRO polls) are never counted
MUTATING = frozenset({"PUT", "POST", "PATCH", "DELETE"})


def is_mutating(request: Any) -> bool:
    return str(request.method).upper() in MUTATING


def _sansio() -> type[Any]:
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    return SansIOHTTPPolicy


class WriteFaults(WriteFaultSeam):
    """The conformance kit's fault seam for Azure (`cloudorch.testing.conformance.FaultSeam`).

    `policy` is an azure-core `SansIOHTTPPolicy` (one instance is safe to share between clients);
    put it in `AzureProvider.extra_policies`. It numbers the mutating requests of every client in
    the order they are sent. `failing` makes one of them fail before it leaves (the connection
    refused: `ServiceRequestError`), or, with `lost`, lets the server act on it and then fails
    reading the answer (`ServiceResponseError`), as a dropped response does.
    """

    kill_after_env = KILL_AFTER_ENV

    def __init__(self) -> None:
        super().__init__()
        self.policy = self._make_policy()

    def _make_policy(self) -> Any:
        seam = self

        class _Policy(_sansio()):  # type: ignore[misc]
            def on_request(self, request: Any) -> None:
                seam._before(request)

            def on_response(self, request: Any, response: Any) -> None:
                seam._after(request)

        return _Policy()

    def _before(self, request: Any) -> None:
        if not is_mutating(request.http_request):
            return
        with self._lock:
            self.count += 1
            if self.count != self.target:
                return
            self.fired = True
            lost = self.lost
        if lost:
            request.context["cloudorch_fault_lost"] = True  # read in `_after`, once the server acted
            return
        from azure.core.exceptions import ServiceRequestError

        raise ServiceRequestError(f"injected by {type(self).__name__}: connection refused before sending")

    def _after(self, request: Any) -> None:
        if request.context.pop("cloudorch_fault_lost", None):
            from azure.core.exceptions import ServiceResponseError

            raise ServiceResponseError(f"injected by {type(self).__name__}: the response was lost")


class KillAfter:
    """SIGKILLs this process right after its `n`th mutating request got its answer (the server
    acted; the journal never hears of it). Installed by `AzureProvider` when `KILL_AFTER_ENV` is set."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self._lock = threading.Lock()
        killer = self

        class _Policy(_sansio()):  # type: ignore[misc]
            def on_response(self, request: Any, response: Any) -> None:
                if not is_mutating(request.http_request):
                    return
                with killer._lock:
                    killer.count += 1
                    hit = killer.count == killer.n
                if hit:
                    os.kill(os.getpid(), signal.SIGKILL)

        self.policy = _Policy()


_KILLER: list[KillAfter] = []


def policies_from_env(env: Mapping[str, str]) -> list[Any]:
    """The policies the environment asks for: one process-wide `KillAfter` when `KILL_AFTER_ENV` is set."""
    value = env.get(KILL_AFTER_ENV)
    if not value:
        return []
    if not _KILLER:
        _KILLER.append(KillAfter(int(value)))
    return [_KILLER[0].policy]
