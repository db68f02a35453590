"""Latency, faults and call counting on the wire, through botocore's `before-send` event.

For tests, benchmarks and chaos drills against emulators: a handler registered here runs for
every HTTP attempt a real boto3 client makes and either lets it through (after a sleep, after
counting it) or answers in AWS's own error format for the service's protocol, so botocore
parses it exactly as it would a real AWS error. Nothing here patches boto3. Use with
`AwsProvider.client_hooks`, which runs a hook on every client the provider creates.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any


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
