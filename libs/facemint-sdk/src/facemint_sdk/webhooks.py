"""Verifying Facemint webhook deliveries.

A delivery carries ``X-Facemint-Timestamp`` (Unix seconds) and ``X-Facemint-Signature``: the hex HMAC-SHA256, keyed
by the account's webhook secret, of ``timestamp + "." + raw body``. During a secret rotation it also carries
``X-Facemint-Signature-Previous``, made with the secret before. Signing the timestamp with the body lets a receiver
refuse a replayed delivery: :func:`verify_webhook` refuses one older (or newer) than ``tolerance`` seconds.

Example (any web framework; give it the raw bytes, before JSON parsing)::

    event = verify_webhook(secret, request.headers, await request.body())
    print(event["task_id"], event["status"])
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from typing import cast

from facemint_sdk.models import WebhookEvent

TIMESTAMP_HEADER = "x-facemint-timestamp"
SIGNATURE_HEADERS = ("x-facemint-signature", "x-facemint-signature-previous")
DEFAULT_TOLERANCE_SECONDS = 300


class WebhookVerificationError(ValueError):
    """The delivery is not authentic, or is too old or too new to be trusted."""


def sign_webhook(secret: str, timestamp: int | str, body: bytes) -> str:
    """The signature Facemint puts on ``body`` sent at ``timestamp``: hex HMAC-SHA256 of ``"{timestamp}.{body}"``."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_webhook(
    secret: str | Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> WebhookEvent:
    """Check a delivery's signature and age and return its parsed body.

    Args:
        secret: The webhook secret (``GET /v1/webhook-secret``), or several accepted secrets.
        headers: The request's headers (any capitalisation).
        body: The raw request body, exactly as received.
        tolerance: The largest accepted difference between the timestamp and ``now``, in seconds.
        now: The current Unix time (default: the clock).

    Raises:
        WebhookVerificationError: A missing or malformed header, a stale timestamp or no matching signature.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER, "")
    if not timestamp.isdigit():
        raise WebhookVerificationError("missing or malformed X-Facemint-Timestamp")
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        raise WebhookVerificationError(f"timestamp is more than {tolerance:.0f} s away from now (replayed or delayed)")
    secrets = [secret] if isinstance(secret, str) else list(secret)
    received = [lowered[h] for h in SIGNATURE_HEADERS if lowered.get(h)]
    expected = [sign_webhook(s, timestamp, body) for s in secrets if s]
    if not any(hmac.compare_digest(e, r) for e in expected for r in received):
        raise WebhookVerificationError("signature does not match")
    try:
        return cast(WebhookEvent, json.loads(body))
    except ValueError as exc:
        raise WebhookVerificationError("body is not JSON") from exc
