"""Retrying provider calls: exponential backoff with full jitter, honouring Retry-After.

Only errors a provider classified as throttled, transient or conflict are retried, up to the
provider's `max_attempts`; everything else, and the last failure, is raised as a ProviderError.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from cloudorch.errors import ErrorKind, ProviderError
from cloudorch.provider.contract import Observed, PartialCreate, Provider, ResourceType

T = TypeVar("T")

BASE_DELAY = 0.2
MAX_DELAY = 20.0


class RetryCounter:
    """Thread-safe count of retries, reported at the end of an apply."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self) -> None:
        with self._lock:
            self.count += 1


def backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None and retry_after > 0:
        return min(retry_after, MAX_DELAY * 3)
    return random.uniform(0, min(MAX_DELAY, BASE_DELAY * (2**attempt)))


def call_with_retries(
    provider: Provider,
    address: str,
    fn: Callable[[], T],
    *,
    on_retry: Callable[[ProviderError, int, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    attempts = max(1, provider.max_attempts)
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            err = provider.classify(exc, address)
            if err.address is None:
                err.address = address
            attempt += 1
            if not err.retryable or attempt >= attempts:
                if err is exc:
                    raise
                raise err from exc
            delay = backoff(attempt - 1, err.retry_after)
            if on_retry is not None:
                on_retry(err, attempt, delay)
            sleep(delay)


#: error kinds that mean the cloud refused the request, so a create made nothing
REFUSED = (ErrorKind.THROTTLED, ErrorKind.CONFLICT)


def create_once(
    rt: ResourceType[Any],
    address: str,
    props: Any,
    known_ids: Collection[str] = (),
    *,
    on_retry: Callable[[ProviderError, int, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Observed:
    """Create one object, never two: a failed create is retried only when it made nothing.

    That is when the cloud refused the request (throttled, conflict), or when `find_all` shows
    no object of the address other than `known_ids` (its old and deposed objects); an object
    it does show is the one the failed call made, and is raised as a `PartialCreate` (kept,
    tainted: its later steps may not have run). A type that cannot look
    is not retried after any other error. A `PartialCreate` (the object exists, a later step
    failed) is never retried: the caller records the object tainted.
    """
    provider = rt.provider
    attempts = max(1, provider.max_attempts)
    attempt = 0
    while True:
        try:
            return rt.create(address, props)
        except PartialCreate:
            raise
        except Exception as exc:
            err = provider.classify(exc, address)
            if err.address is None:
                err.address = address
            attempt += 1
            if not err.retryable or attempt >= attempts or (err.kind not in REFUSED and not rt.can_find):
                if err is exc:
                    raise
                raise err from exc
            if err.kind not in REFUSED:
                try:
                    made = [o for o in rt.find_all(address, props) if o.id not in known_ids]
                except Exception:
                    made = None  # cannot tell whether it made something: do not make another
                if made is None:
                    raise err from exc
                if made:
                    # the failed call made it (its answer was lost); whatever the create does after
                    # its first cloud call may not have happened: bring the object to what was asked
                    # with an in-place update, and keep it tainted only if that fails too. Never a second.
                    return _finish_found(rt, address, props, made[0], err, exc)
            delay = backoff(attempt - 1, err.retry_after)
            if on_retry is not None:
                on_retry(err, attempt, delay)
            sleep(delay)


def _finish_found(
    rt: ResourceType[Any], address: str, props: Any, found: Observed, err: ProviderError, cause: BaseException
) -> Observed:
    """The object a create whose answer was lost made, read back and updated to `props`; a
    `PartialCreate` (tainted, never retried) when that cannot be done."""
    try:
        current = rt.read(address, found.id, props) or found
        old = type(props).model_construct(**current.properties)
        return rt.update(address, found.id, old, props)
    except Exception as exc:
        raise PartialCreate(
            f"{address}: a failed create left {found.id} behind and it could not be completed: {err.message}",
            object_id=found.id,
            address=address,
            attributes=found.attributes,
            cause=cause,
        ) from exc
