"""Latency, faults and call counting on the wire, through botocore's `before-send` event.

For tests, benchmarks and chaos drills against emulators: a handler registered here runs for
every HTTP attempt a real boto3 client makes and either lets it through (after a sleep, after
counting it) or answers in AWS's own error format for the service's protocol, so botocore
parses it exactly as it would a real AWS error. Nothing here patches boto3. Use with
`AwsProvider.client_hooks`, which runs a hook on every client the provider creates.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from cloudorch.provider.faults import WriteFaultSeam


class _Raw:
    """The minimal raw body botocore reads from an `AWSResponse`."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._body


def error_response(
    client: Any, status: int, code: str, message: str, extra_headers: Mapping[str, str] | None = None
) -> Any:
    """An AWSResponse carrying `code` in the error format of `client`'s protocol (and `extra_headers`)."""
    from botocore.awsrequest import AWSResponse

    protocol = client.meta.service_model.protocol
    headers: dict[str, str] = {"x-amzn-requestid": "cloudorch-fault", **(extra_headers or {})}
    if protocol in ("json", "rest-json", "smithy-rpc-v2-cbor"):
        body = json.dumps({"__type": code, "message": message}).encode()
        headers["content-type"] = "application/x-amz-json-1.0"
        headers["x-amzn-errortype"] = code
        headers["x-amzn-query-error"] = f"{code};Sender"  # SQS and others speak JSON but were query
    elif protocol == "ec2":
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            "<RequestID>cloudorch-fault</RequestID></Response>"
        ).encode()
        headers["content-type"] = "text/xml"
    elif protocol == "rest-xml" and client.meta.service_model.service_name == "s3":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
        headers["content-type"] = "application/xml"
    else:  # query, rest-xml (Route 53)
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
            "</Error><RequestId>cloudorch-fault</RequestId></ErrorResponse>"
        ).encode()
        headers["content-type"] = "text/xml"
    return AWSResponse("https://fault.invalid/", status, headers, _Raw(body))


def event_name(client: Any, operation: str | None = None) -> str:
    service = client.meta.service_model.service_id.hyphenize()
    return f"before-send.{service}" + (f".{operation}" if operation else "")


class Fault:
    """Answer `operation` (every operation when None) with an error, the first `times` calls or always.

    `headers` go out with the error, e.g. a `Retry-After` the way a throttling service sends it.
    """

    def __init__(
        self,
        service: str,
        operation: str | None,
        status: int,
        code: str,
        message: str = "injected by cloudorch_aws.faults",
        times: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.service = service
        self.operation = operation
        self.status = status
        self.code = code
        self.message = message
        self.times = times
        self.headers = dict(headers or {})
        self.injected = 0
        self._lock = threading.Lock()

    def __call__(self, client: Any) -> None:
        if client.meta.service_model.service_name != self.service:
            return

        def handler(request: Any, **kwargs: Any) -> Any:
            with self._lock:
                if self.times is not None and self.injected >= self.times:
                    return None
                self.injected += 1
            return error_response(client, self.status, self.code, self.message, self.headers)

        client.meta.events.register(event_name(client, self.operation), handler, unique_id=f"fault-{id(self)}")


def latency(seconds: float) -> Callable[[Any], None]:
    """A client hook that sleeps `seconds` before every HTTP attempt (stands in for AWS's round trip)."""

    def hook(client: Any) -> None:
        def handler(request: Any, **kwargs: Any) -> None:
            time.sleep(seconds)

        client.meta.events.register("before-send", handler, unique_id=f"latency-{id(hook)}")

    return hook


class CallCounter:
    """A client hook that counts HTTP attempts by `service.Operation`."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, client: Any) -> None:
        service = client.meta.service_model.service_name

        def handler(event_name: str, **kwargs: Any) -> None:
            op = event_name.rsplit(".", 1)[-1]
            with self._lock:
                self.counts[f"{service}.{op}"] += 1

        client.meta.events.register("before-send", handler, unique_id=f"count-{id(self)}")

    def total(self, service: str | None = None) -> int:
        with self._lock:
            return sum(n for k, n in self.counts.items() if service is None or k.startswith(service + "."))

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()


class CallLog:
    """A client hook that records every API call, in the order the clients made them, with its
    parameters (botocore's `before-parameter-build` event): the order of a plan's cloud calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, client: Any) -> None:
        service = client.meta.service_model.service_name

        def handler(event_name: str, params: dict[str, Any], **kwargs: Any) -> None:
            op = event_name.rsplit(".", 1)[-1]
            with self._lock:
                self.calls.append((f"{service}.{op}", dict(params)))

        client.meta.events.register("before-parameter-build", handler, unique_id=f"calllog-{id(self)}")

    def named(self, *ops: str) -> list[str]:
        """The calls of the given `service.Operation` names, in order."""
        with self._lock:
            return [name for name, _ in self.calls if name in ops]


# --------------------------------------------------------------------------- the conformance seam

#: set in a cloudorch process's environment, SIGKILLs it right after its Nth mutating AWS call
KILL_AFTER_ENV = "CLOUDORCH_AWS_KILL_AFTER_CALLS"

_READ_PREFIXES = ("Describe", "Get", "List", "Head")

#: transient answers a fault picks from: (HTTP status, error code)
TRANSIENT_ERRORS = ((503, "ServiceUnavailable"), (500, "InternalError"), (400, "RequestLimitExceeded"))


def is_mutating(operation: str) -> bool:
    """Whether an API operation changes something (a create, update, delete or tag write)."""
    return not operation.startswith(_READ_PREFIXES)


class WriteFaults(WriteFaultSeam):
    """The conformance kit's fault seam for AWS (`cloudorch.testing.conformance.FaultSeam`).

    Register it once in `AwsProvider.client_hooks`; it numbers the mutating calls (`is_mutating`)
    of every client, in the order they are made. `failing` answers one of them with a transient
    AWS error instead of sending it (`before-call`), or, with `lost`, lets it act on the server
    and then raises a read timeout on the client (`after-call`), the way a dropped response looks.
    """

    kill_after_env = KILL_AFTER_ENV

    def __init__(self) -> None:
        super().__init__()
        self.error = TRANSIENT_ERRORS[0]

    def choose_error(self, rng: random.Random) -> None:
        self.error = rng.choice(TRANSIENT_ERRORS)

    def __call__(self, client: Any) -> None:
        def before(model: Any, context: dict[str, Any], **kwargs: Any) -> Any:
            if not is_mutating(model.name):
                return None
            with self._lock:
                self.count += 1
                if self.count != self.target:
                    return None
                self.fired = True
                lost = self.lost
                status, code = self.error
            if lost:
                context["cloudorch_fault_lost"] = True
                return None
            response = error_response(client, status, code, f"injected by {type(self).__name__}")
            parsed = {
                "Error": {"Code": code, "Message": f"injected by {type(self).__name__}"},
                "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
            }
            return response, parsed

        def after(context: dict[str, Any], **kwargs: Any) -> None:
            if context.get("cloudorch_fault_lost"):
                from botocore.exceptions import ReadTimeoutError

                raise ReadTimeoutError(endpoint_url=client.meta.endpoint_url)

        client.meta.events.register("before-call", before, unique_id=f"write-faults-before-{id(self)}")
        client.meta.events.register("after-call", after, unique_id=f"write-faults-after-{id(self)}")


class KillAfter:
    """A client hook that SIGKILLs this process right after its `n`th mutating call got its answer
    (the call acted on the server; the journal never hears of it). Installed by `AwsProvider`
    when `CLOUDORCH_AWS_KILL_AFTER_CALLS` is set, for crash tests run as a subprocess."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, client: Any) -> None:
        def after(model: Any, **kwargs: Any) -> None:
            if not is_mutating(model.name):
                return
            with self._lock:
                self.count += 1
                hit = self.count == self.n
            if hit:
                os.kill(os.getpid(), signal.SIGKILL)

        client.meta.events.register("after-call", after, unique_id=f"kill-after-{id(self)}")


_KILLER: list[KillAfter] = []


def hooks_from_env(env: Mapping[str, str]) -> list[Callable[[Any], None]]:
    """The hooks the environment asks for: one process-wide `KillAfter` when `KILL_AFTER_ENV` is set."""
    value = env.get(KILL_AFTER_ENV)
    if not value:
        return []
    if not _KILLER:
        _KILLER.append(KillAfter(int(value)))
    return [_KILLER[0]]
