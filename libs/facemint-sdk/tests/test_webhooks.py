"""verify_webhook: the signature of ``timestamp + "." + body``, rotation, tampering, replays."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from facemint_sdk import WebhookVerificationError, sign_webhook, verify_webhook

NOW = 1_800_000_000
BODY = json.dumps({"event": "task.completed", "task_id": "task_1", "status": "succeeded", "result": {}}).encode()


def headers(signature: str, timestamp: int = NOW, **extra: str) -> dict[str, str]:
    return {"X-Facemint-Timestamp": str(timestamp), "X-Facemint-Signature": signature, **extra}


def test_the_signature_is_the_hmac_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign_webhook("s3cret", NOW, BODY) == expected
    assert verify_webhook("s3cret", headers(expected), BODY, now=NOW)["task_id"] == "task_1"


def test_the_previous_secret_signature_and_several_secrets_are_accepted() -> None:
    rotated = headers(
        sign_webhook("new", NOW, BODY), **{"X-Facemint-Signature-Previous": sign_webhook("old", NOW, BODY)}
    )
    assert verify_webhook("old", rotated, BODY, now=NOW)["status"] == "succeeded"
    assert verify_webhook(["other", "new"], rotated, BODY, now=NOW)["status"] == "succeeded"


@pytest.mark.parametrize(
    ("given", "body", "now", "reason"),
    [
        (headers(sign_webhook("s3cret", NOW, BODY)), BODY.replace(b"task_1", b"task_2"), NOW, "signature"),
        (headers(hmac.new(b"s3cret", BODY, hashlib.sha256).hexdigest()), BODY, NOW, "signature"),  # body alone
        (headers(sign_webhook("wrong", NOW, BODY)), BODY, NOW, "signature"),
        (headers(sign_webhook("s3cret", NOW, BODY)), BODY, NOW + 301, "timestamp"),  # a replay
        ({"X-Facemint-Signature": sign_webhook("s3cret", NOW, BODY)}, BODY, NOW, "Timestamp"),
    ],
)
def test_forged_tampered_or_stale_deliveries_are_refused(
    given: dict[str, str], body: bytes, now: int, reason: str
) -> None:
    with pytest.raises(WebhookVerificationError, match=reason):
        verify_webhook("s3cret", given, body, now=now)
