"""Fast checks without servers: the retry schedule, signatures, attempt outcomes, settings and the payload."""

from __future__ import annotations

import hashlib
import hmac
import json
import random

import pytest
from pydantic import ValidationError

from facemint_webhook_dispatcher.outbound import PostOutcome
from facemint_webhook_dispatcher.schedule import draw_delays, nominal_delays, schedule_table
from facemint_webhook_dispatcher.scheduler import decide
from facemint_webhook_dispatcher.settings import ScheduleSettings, WebhookSettings
from facemint_webhook_dispatcher.signing import delivery_headers, generate_secret, sign
from facemint_webhook_dispatcher.store import build_payload


def test_default_schedule_retries_eight_times_after_the_first_attempt_within_24_hours() -> None:
    cfg = ScheduleSettings()
    table = schedule_table(cfg)
    assert [n for n, _, _ in table] == list(range(1, 10))  # the first attempt and 8 retries
    last = table[-1][2]
    assert 12 * 3600 < last < 24 * 3600
    assert last * (1 + cfg.spread) < 24 * 3600, "even the largest jitter stays within 24 h"
    delays = [d for _, d, _ in table[1:]]
    assert all(b / a == pytest.approx(cfg.factor) for a, b in zip(delays, delays[1:], strict=False))


def test_jitter_stays_within_the_spread_and_time_scale_compresses() -> None:
    cfg = ScheduleSettings(time_scale=0.001)
    rng = random.Random(7)
    for _ in range(200):
        for drawn, nominal in zip(draw_delays(cfg, rng), nominal_delays(cfg), strict=True):
            assert nominal * (1 - cfg.spread) <= drawn <= nominal * (1 + cfg.spread)
    assert nominal_delays(cfg)[0] == pytest.approx(0.06)
    assert draw_delays(ScheduleSettings(max_attempts=1)) == []


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"event":"task.succeeded"}'
    expected = hmac.new(b"s3cret", b"1745229600." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", 1745229600, body) == expected
    headers = delivery_headers(
        event="task.failed", delivery_id="dlv_1", timestamp=1745229600, body=body, secret="s3cret", previous_secret=None
    )
    assert headers == {
        "Content-Type": "application/json",
        "X-Facemint-Event": "task.failed",
        "X-Facemint-Timestamp": "1745229600",
        "X-Facemint-Signature": expected,
        "X-Facemint-Delivery": "dlv_1",
    }
    rotating = delivery_headers(
        event="task.failed", delivery_id="dlv_1", timestamp=1745229600, body=body, secret="new", previous_secret="old"
    )
    assert rotating["X-Facemint-Signature"] == sign("new", 1745229600, body)
    assert rotating["X-Facemint-Signature-Previous"] == sign("old", 1745229600, body)


def test_generated_secrets_are_256_random_bits() -> None:
    first, second = generate_secret(), generate_secret()
    assert len(first) == 64 and int(first, 16) >= 0 and first != second


@pytest.mark.parametrize(
    ("outcome", "number", "state"),
    [
        (PostOutcome(200, 0.1), 1, "delivered"),
        (PostOutcome(204, 0.1), 8, "delivered"),
        (PostOutcome(410, 0.1), 1, "gone"),
        (PostOutcome(500, 0.1), 1, "pending"),
        (PostOutcome(302, 0.1), 1, "pending"),
        (PostOutcome(None, 10.0, "FetchTimeout: too slow"), 7, "pending"),
        (PostOutcome(500, 0.1), 8, "failed"),
        (PostOutcome(None, 0.0, "refused: loopback", permanent=True), 1, "failed"),
    ],
)
def test_attempt_outcome_decides_the_delivery_state(outcome: PostOutcome, number: int, state: str) -> None:
    assert decide(outcome, number, 8) == state


def test_payload_has_the_four_fields_with_the_task_json_as_result() -> None:
    task = {"task_id": "task_1", "status": "succeeded", "result": {"faces": [], "note": "é \u2028"}}
    body = json.loads(build_payload("task.succeeded", "task_1", "succeeded", json.dumps(task).encode()))
    assert body == {"event": "task.succeeded", "task_id": "task_1", "status": "succeeded", "result": task}
    for not_an_object in (b"[1]", b"", b"null"):
        with pytest.raises(ValueError):
            build_payload("task.succeeded", "task_1", "succeeded", not_an_object)


def test_payload_carries_the_rendered_task_byte_for_byte() -> None:
    rendered = b'{"task_id": "task_1", "result": {"score": 1.50, "big": 12345678901234567890}}'
    body = build_payload("task.failed", "task_1", "failed", rendered)
    assert body == b'{"event":"task.failed","task_id":"task_1","status":"failed","result":' + rendered + b"}"


def test_settings_default_to_the_api_contract_and_reject_bad_cidrs(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = WebhookSettings()
    assert (settings.timeout_seconds, settings.schedule.max_attempts, settings.allow_http) == (10.0, 9, False)
    assert settings.lease_seconds == 15.0
    monkeypatch.setenv("FACEMINT_WEBHOOK_DISPATCHER_ALLOW_CIDRS", '["127.0.0.1/32", "::1"]')
    monkeypatch.setenv("FACEMINT_WEBHOOK_DISPATCHER_SCHEDULE__TIME_SCALE", "0.01")
    loaded = WebhookSettings()
    assert loaded.allow_cidrs == ["127.0.0.1/32", "::1"] and loaded.schedule.time_scale == 0.01
    with pytest.raises(ValidationError):
        WebhookSettings(allow_cidrs=["not-a-network"])
