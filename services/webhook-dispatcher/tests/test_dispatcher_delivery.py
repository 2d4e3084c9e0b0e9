"""Deliveries against real NATS, PostgreSQL and a real local HTTP receiver: headers, signature, retries, outcomes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import pytest
from prometheus_client import REGISTRY
from webhook_testkit import Env, Receiver, Reply, StartDispatcher, create_account, publish_event

from facemint_webhook_dispatcher.store import INTERRUPTED

pytestmark = pytest.mark.integration

SPEC_HEADERS = [
    "Content-Type",
    "X-Facemint-Event",
    "X-Facemint-Timestamp",
    "X-Facemint-Signature",
    "X-Facemint-Delivery",
]


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The signature as the API spec defines it, computed independently of the dispatcher's code."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


async def test_delivery_carries_spec_headers_signature_and_task_json(
    env: Env, receiver: Receiver, start_dispatcher: StartDispatcher
) -> None:
    account = await create_account(env.dsn, secret="whsec_spec")
    await start_dispatcher()
    event = await publish_event(env.js, account, receiver.url)

    (request,) = await receiver.wait_for(1)
    row = await env.wait_state(event.task_id, "delivered")

    assert request.path == "/hook"
    sent = {name.lower() for name in receiver.header_names[0]}
    assert {name.lower() for name in SPEC_HEADERS} <= sent  # HTTP header names are case-insensitive
    assert sent - {name.lower() for name in SPEC_HEADERS} <= {"host", "content-length", "user-agent", "accept-encoding"}
    assert request.header("Content-Type") == "application/json"
    assert request.header("X-Facemint-Event") == "task.succeeded"
    assert request.header("X-Facemint-Delivery") == row["delivery_id"]
    assert request.header("X-Facemint-Signature-Previous") is None
    timestamp = request.header("X-Facemint-Timestamp")
    assert timestamp is not None and abs(int(timestamp) - time.time()) < 30
    assert request.header("X-Facemint-Signature") == expected_signature("whsec_spec", timestamp, request.body)
    body = json.loads(request.body)
    assert list(body) == ["event", "task_id", "status", "result"]
    assert body["event"] == "task.succeeded"
    assert body["task_id"] == event.task_id
    assert body["status"] == "succeeded"
    assert body["result"] == json.loads(event.task.json)
    (attempt,) = await env.attempts(event.task_id)
    assert attempt["status_code"] == 200 and attempt["error"] == "" and attempt["latency_seconds"] > 0


async def test_failed_task_event_is_delivered_with_its_error(
    env: Env, receiver: Receiver, start_dispatcher: StartDispatcher
) -> None:
    account = await create_account(env.dsn)
    await start_dispatcher()
    await publish_event(env.js, account, receiver.url, status="failed")
    (request,) = await receiver.wait_for(1)
    body = json.loads(request.body)
    assert request.header("X-Facemint-Event") == "task.failed"
    assert body["status"] == "failed" and body["result"]["error"]["code"] == "invalid_media"


async def test_non_2xx_is_retried_on_the_stored_schedule_until_max_attempts(
    env: Env, receiver: Receiver, start_dispatcher: StartDispatcher
) -> None:
    account = await create_account(env.dsn)
    receiver.default = Reply(500)
    await start_dispatcher()
    event = await publish_event(env.js, account, receiver.url)

    row = await env.wait_state(event.task_id, "failed", timeout=40)
    requests = await receiver.wait_for(9)
    await asyncio.sleep(0.5)
    assert len(receiver.requests) == 9, "the first attempt and 8 retries, no more"
    attempts = await env.attempts(event.task_id)
    assert [a["number"] for a in attempts] == list(range(1, 10))
    assert all(a["status_code"] == 500 for a in attempts)
    assert len({r.header("X-Facemint-Delivery") for r in requests}) == 1
    schedule = row["schedule_seconds"]
    assert len(schedule) == 8
    for n in range(8):
        gap = requests[n + 1].at - requests[n].at
        assert schedule[n] <= gap + 0.01, f"attempt {n + 2} came before its scheduled delay"
        assert gap <= schedule[n] + 1.0, f"attempt {n + 2} came {gap - schedule[n]:.2f}s late"
    # Timestamps and signatures are made at each attempt.
    assert len({r.header("X-Facemint-Signature") for r in requests}) >= 2


async def test_retry_succeeds_on_a_later_2xx(env: Env, receiver: Receiver, start_dispatcher: StartDispatcher) -> None:
    account = await create_account(env.dsn)
    receiver.answer(Reply(503), Reply(429), Reply(202))
    await start_dispatcher()
    event = await publish_event(env.js, account, receiver.url)
    await env.wait_state(event.task_id, "delivered")
    assert [a["status_code"] for a in await env.attempts(event.task_id)] == [503, 429, 202]


async def test_410_gone_stops_retrying(env: Env, receiver: Receiver, start_dispatcher: StartDispatcher) -> None:
    account = await create_account(env.dsn)
    receiver.default = Reply(410)
    await start_dispatcher()
    event = await publish_event(env.js, account, receiver.url)
    row = await env.wait_state(event.task_id, "gone")
    await asyncio.sleep(0.5)
    assert len(receiver.requests) == 1
    assert row["next_attempt_at"] is None and row["completed_at"] is not None


async def test_receiver_slower_than_the_timeout_counts_as_a_failed_attempt(
    env: Env, receiver: Receiver, start_dispatcher: StartDispatcher
) -> None:
    account = await create_account(env.dsn)
    receiver.answer(Reply(200, delay=3.0))
    await start_dispatcher(env.settings(timeout_seconds=1.0))
    event = await publish_event(env.js, account, receiver.url)
    await env.wait_state(event.task_id, "delivered")
    first, second = await env.attempts(event.task_id)
    assert first["status_code"] is None and "FetchTimeout" in first["error"]
    assert 0.9 <= first["latency_seconds"] < 2.0
    assert second["status_code"] == 200


async def test_redirect_is_not_followed(env: Env, receiver: Receiver, start_dispatcher: StartDispatcher) -> None:
    account = await create_account(env.dsn)
    receiver.answer(Reply(302, headers={"Location": receiver.url + "/elsewhere"}))
    await start_dispatcher()
    event = await publish_event(env.js, account, receiver.url)
    await env.wait_state(event.task_id, "delivered")
    assert [r.path for r in receiver.requests] == ["/hook", "/hook"]
    assert [a["status_code"] for a in await env.attempts(event.task_id)] == [302, 200]


async def test_plain_http_callback_fails_without_allow_http(
    env: Env, receiver: Receiver, start_dispatcher: StartDispatcher
) -> None:
    account = await create_account(env.dsn)
    await start_dispatcher(env.settings(allow_http=False))
    event = await publish_event(env.js, account, receiver.url)
    await env.wait_state(event.task_id, "failed")
    (attempt,) = await env.attempts(event.task_id)
    assert attempt["error"].startswith("refused:") and "scheme" in attempt["error"]
    assert receiver.requests == []


async def test_loopback_callback_is_blocked_unless_allow_listed(
    env: Env, receiver: Receiver, start_dispatcher: StartDispatcher
) -> None:
    account = await create_account(env.dsn)
    await start_dispatcher(env.settings(allow_cidrs=[]))
    event = await publish_event(env.js, account, receiver.url)
    await env.wait_state(event.task_id, "failed")
    (attempt,) = await env.attempts(event.task_id)
    assert "loopback" in attempt["error"]
    assert receiver.requests == []


async def test_redelivered_event_creates_no_second_delivery(
    env: Env, receiver: Receiver, start_dispatcher: StartDispatcher
) -> None:
    account = await create_account(env.dsn)
    await start_dispatcher()
    event = await publish_event(env.js, account, receiver.url)
    await env.wait_state(event.task_id, "delivered")
    # The same event again under another Nats-Msg-Id, as after the duplicate window or a republish by the outbox.
    await env.js.publish("facemint.events.task.succeeded", event.SerializeToString(), headers={"Nats-Msg-Id": "x"})
    await asyncio.sleep(1.0)
    rows = await env.fetch("SELECT * FROM webhook_deliveries WHERE task_id = $1", event.task_id)
    assert len(rows) == 1 and len(receiver.requests) == 1


async def test_event_without_callback_url_sends_nothing(
    env: Env, receiver: Receiver, start_dispatcher: StartDispatcher
) -> None:
    account = await create_account(env.dsn)
    await start_dispatcher()
    quiet = await publish_event(env.js, account, "")
    loud = await publish_event(env.js, account, receiver.url)
    await env.wait_state(loud.task_id, "delivered")
    assert await env.fetch("SELECT * FROM webhook_deliveries WHERE task_id = $1", quiet.task_id) == []


async def test_rotation_signs_with_new_and_previous_secret_during_the_window(
    env: Env, receiver: Receiver, start_dispatcher: StartDispatcher
) -> None:
    account = await create_account(env.dsn, secret="whsec_old")
    await env.fetch(
        """UPDATE webhook_secrets SET secret = 'whsec_new', previous = 'whsec_old',
                  previous_expires_at = now() + interval '1 hour' WHERE account_id = $1""",
        account,
    )
    await start_dispatcher()
    await publish_event(env.js, account, receiver.url)
    (request,) = await receiver.wait_for(1)
    ts = request.header("X-Facemint-Timestamp") or ""
    assert request.header("X-Facemint-Signature") == expected_signature("whsec_new", ts, request.body)
    assert request.header("X-Facemint-Signature-Previous") == expected_signature("whsec_old", ts, request.body)

    # After the window only the new secret signs.
    await env.fetch(
        "UPDATE webhook_secrets SET previous_expires_at = now() - interval '1 second' WHERE account_id = $1",
        account,
    )
    await publish_event(env.js, account, receiver.url)
    _, later = await receiver.wait_for(2)
    assert later.header("X-Facemint-Signature-Previous") is None
    ts = later.header("X-Facemint-Timestamp") or ""
    assert later.header("X-Facemint-Signature") == expected_signature("whsec_new", ts, later.body)


async def test_attempt_left_in_flight_is_recorded_as_interrupted_and_retried(
    env: Env, receiver: Receiver, start_dispatcher: StartDispatcher
) -> None:
    """A claim whose outcome never arrives (a crash) is taken over after its lease."""
    account = await create_account(env.dsn)
    event = await publish_event(env.js, account, receiver.url)
    settings = env.settings(lease_margin_seconds=0.3, timeout_seconds=0.5)
    runtime = await start_dispatcher(settings)
    (first,) = await receiver.wait_for(1)
    await env.wait_state(event.task_id, "delivered")
    await runtime.shutdown()
    # Forge the state a crash leaves: attempt 2 started, never finished, its lease running.
    await env.fetch(
        """WITH forged AS (
               UPDATE webhook_deliveries SET state = 'pending', attempt_count = 2, completed_at = NULL,
                      next_attempt_at = now() + interval '0.8 second' WHERE task_id = $1 RETURNING delivery_id)
           INSERT INTO webhook_attempts (delivery_id, number, attempted_at) SELECT delivery_id, 2, now() FROM forged""",
        event.task_id,
    )
    started = time.monotonic()
    await start_dispatcher(settings)
    await receiver.wait_for(2)
    assert time.monotonic() - started >= 0.7, "the lease was not respected"
    await env.wait_state(event.task_id, "delivered")
    attempts = await env.attempts(event.task_id)
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert attempts[1]["error"] == INTERRUPTED and attempts[2]["status_code"] == 200
    assert receiver.requests[1].header("X-Facemint-Delivery") == first.header("X-Facemint-Delivery")


async def test_interrupted_last_attempt_gives_the_delivery_up_after_its_lease(
    env: Env, receiver: Receiver, start_dispatcher: StartDispatcher
) -> None:
    account = await create_account(env.dsn)
    receiver.default = Reply(500)
    await start_dispatcher(env.settings(schedule={"max_attempts": 2, "time_scale": 0.0001}))
    event = await publish_event(env.js, account, receiver.url)
    await env.wait_state(event.task_id, "failed")
    # Forge the state a crash during the last attempt leaves behind, with its lease already over.
    await env.fetch(
        """WITH forged AS (
               UPDATE webhook_deliveries SET state = 'pending', completed_at = NULL, next_attempt_at = now()
               WHERE task_id = $1 RETURNING delivery_id)
           UPDATE webhook_attempts SET finished_at = NULL, status_code = NULL, error = ''
           WHERE number = 2 AND delivery_id = (SELECT delivery_id FROM forged)""",
        event.task_id,
    )
    row = await env.wait_state(event.task_id, "failed")
    attempts = await env.attempts(event.task_id)
    assert [a["number"] for a in attempts] == [1, 2] and attempts[1]["error"] == INTERRUPTED
    assert row["attempt_count"] == 2 and len(receiver.requests) == 2


async def test_metrics_count_outcomes_latency_lag_and_pending(
    env: Env, receiver: Receiver, start_dispatcher: StartDispatcher
) -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = {
        "delivered": value("facemint_webhook_dispatcher_deliveries_total", outcome="delivered"),
        "retry": value("facemint_webhook_dispatcher_deliveries_total", outcome="retry"),
        "gone": value("facemint_webhook_dispatcher_deliveries_total", outcome="gone"),
        "latency": value("facemint_webhook_dispatcher_delivery_seconds_count"),
        "lag": value("facemint_webhook_dispatcher_lag_seconds_count"),
        "scheduled": value("facemint_webhook_dispatcher_events_total", action="scheduled"),
        "skipped": value("facemint_webhook_dispatcher_events_total", action="skipped"),
    }
    account = await create_account(env.dsn)
    receiver.answer(Reply(500), Reply(200), Reply(410))
    await start_dispatcher()
    first = await publish_event(env.js, account, receiver.url)
    await env.wait_state(first.task_id, "delivered")
    second = await publish_event(env.js, account, receiver.url)
    await env.wait_state(second.task_id, "gone")
    await publish_event(env.js, account, "")
    await asyncio.sleep(0.3)

    assert value("facemint_webhook_dispatcher_deliveries_total", outcome="delivered") - before["delivered"] == 1
    assert value("facemint_webhook_dispatcher_deliveries_total", outcome="retry") - before["retry"] == 1
    assert value("facemint_webhook_dispatcher_deliveries_total", outcome="gone") - before["gone"] == 1
    assert value("facemint_webhook_dispatcher_delivery_seconds_count") - before["latency"] == 3
    assert value("facemint_webhook_dispatcher_lag_seconds_count") - before["lag"] == 2, "first attempts only"
    assert value("facemint_webhook_dispatcher_backlog_deliveries") == 0
    assert value("facemint_webhook_dispatcher_oldest_pending_age_seconds") == 0
    assert value("facemint_webhook_dispatcher_events_total", action="scheduled") - before["scheduled"] == 2
    assert value("facemint_webhook_dispatcher_events_total", action="skipped") - before["skipped"] == 1
