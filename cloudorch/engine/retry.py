"""Retrying provider calls: exponential backoff with full jitter, honouring Retry-After.

Only errors a provider classified as throttled, transient or conflict are retried, up to the
provider's `max_attempts`; everything else, and the last failure, is raised as a ProviderError.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from cloudorch.errors import ProviderError
from cloudorch.provider.contract import Provider

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
