"""HMAC-SHA256 signatures of webhook bodies: `X-Cloudorch-Signature-256: sha256=<hex>`.

The receiver computes the HMAC of the raw body with the shared secret and compares it in constant
time (`verify`); the delivery id (`X-Cloudorch-Delivery`) lets it drop a redelivery.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Cloudorch-Signature-256"
DELIVERY_HEADER = "X-Cloudorch-Delivery"
EVENT_HEADER = "X-Cloudorch-Event"


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str) -> bool:
    return hmac.compare_digest(sign(body, secret), header.strip())
