"""Webhook secrets and signatures.

A delivery is signed with ``hex(HMAC-SHA256(secret, f"{timestamp}.{raw_body}"))`` in ``X-Facemint-Signature``.
While a rotated-out secret is inside its rotation window, the same message is also signed with it in
``X-Facemint-Signature-Previous`` (an additive extension), so that receivers can switch secrets without losing
deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

EVENT_HEADER = "X-Facemint-Event"
TIMESTAMP_HEADER = "X-Facemint-Timestamp"
SIGNATURE_HEADER = "X-Facemint-Signature"
PREVIOUS_SIGNATURE_HEADER = "X-Facemint-Signature-Previous"
DELIVERY_HEADER = "X-Facemint-Delivery"


def generate_secret() -> str:
    """A new webhook secret: 256 random bits in hex (the form accounts are created with)."""
    return secrets.token_hex(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` keyed by ``secret``."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def delivery_headers(
    *, event: str, delivery_id: str, timestamp: int, body: bytes, secret: str, previous_secret: str | None
) -> dict[str, str]:
    """Every header of one delivery attempt."""
    headers = {
        "Content-Type": "application/json",
        EVENT_HEADER: event,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        DELIVERY_HEADER: delivery_id,
    }
    if previous_secret:
        headers[PREVIOUS_SIGNATURE_HEADER] = sign(previous_secret, timestamp, body)
    return headers
