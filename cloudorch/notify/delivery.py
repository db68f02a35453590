"""One delivery attempt of one payload to one target: an HTTPS POST of signed JSON, or apprise.

An attempt either returns (delivered: a 2xx answer, or apprise said yes) or raises
`DeliveryFailed` with a message whose URLs are masked; retrying is the outbox's business.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from cloudorch import __version__
from cloudorch.notify import payload as payloads
from cloudorch.notify.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign
from cloudorch.notify.targets import Target, mask_text

log = logging.getLogger("cloudorch.notify")

#: seconds one attempt may take (connect and answer)
ATTEMPT_TIMEOUT = 10.0


class DeliveryFailed(Exception):
    """An attempt did not deliver; the message is safe to show (URLs masked)."""


def body_of(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode("utf-8")


def deliver(doc: dict[str, Any], target: Target, env: Mapping[str, str], timeout: float = ATTEMPT_TIMEOUT) -> None:
    try:
        if target.kind == "webhook":
            _post(doc, target, env, timeout)
        else:
            _apprise(doc, target)
    except DeliveryFailed as exc:
        raise DeliveryFailed(mask_text(str(exc), [target])) from None
    except Exception as exc:  # (a receiver's failure of any kind is a failed attempt)
        raise DeliveryFailed(mask_text(f"{type(exc).__name__}: {exc}", [target])) from None


def _post(doc: dict[str, Any], target: Target, env: Mapping[str, str], timeout: float) -> None:
    import urllib.error
    import urllib.request

    body = body_of(doc)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"cloudorch/{__version__}",
        EVENT_HEADER: str(doc["event"]),
        DELIVERY_HEADER: str(doc["delivery_id"]),
    }
    if target.secret_env:
        secret = env.get(target.secret_env)
        if not secret:
            raise DeliveryFailed(f"${target.secret_env} is not set: the webhook's signing secret is missing")
        headers[SIGNATURE_HEADER] = sign(body, secret)
    request = urllib.request.Request(target.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # scheme checked: https, or http to loopback
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raise DeliveryFailed(f"{target.display} answered HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise DeliveryFailed(f"{target.display}: {exc.reason}") from None
    except TimeoutError:
        raise DeliveryFailed(f"{target.display}: no answer within {timeout:g} s") from None
    if not 200 <= status < 300:
        raise DeliveryFailed(f"{target.display} answered HTTP {status}")


def _apprise(doc: dict[str, Any], target: Target) -> None:
    try:
        import apprise
    except ImportError:
        raise DeliveryFailed(
            f"{target.display} needs apprise, which is not installed: pip install 'cloudorch[notify]'"
        ) from None

    title, text = payloads.text_of(doc)
    sender = apprise.Apprise()
    if not sender.add(target.url):
        raise DeliveryFailed(f"apprise does not understand {target.display}")
    failed = str(doc["event"]).endswith(("failed", "blocked", "needed"))
    kind = apprise.NotifyType.FAILURE if failed else apprise.NotifyType.INFO
    # apprise logs its failures with hosts and sometimes credentials: keep them from stderr and
    # pass the last one on, masked, as the attempt's error
    heard = _Heard()
    logger = logging.getLogger("apprise")
    propagate, level = logger.propagate, logger.level
    logger.addHandler(heard)
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    try:
        ok = sender.notify(body=text, title=title, notify_type=kind)
    finally:
        logger.removeHandler(heard)
        logger.propagate, logger.level = propagate, level
    if not ok:
        why = f": {heard.last}" if heard.last else ""
        raise DeliveryFailed(f"apprise could not deliver to {target.display}{why}")


class _Heard(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage().splitlines()[0] if record.getMessage() else self.last
