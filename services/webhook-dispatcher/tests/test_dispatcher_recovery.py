"""Nothing is lost: a dispatcher process SIGKILLed mid-schedule, and a NATS server restarted under the dispatcher."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import nats
import pytest
from webhook_testkit import (
    DispatcherProcess,
    Env,
    Receiver,
    Reply,
    StartDispatcher,
    create_account,
    open_env,
    publish_event,
)

from facemint_local.servers import NatsServer
from facemint_webhook_dispatcher.settings import WebhookSettings
from facemint_webhook_dispatcher.store import INTERRUPTED

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_sigkilled_dispatcher_completes_the_schedule_after_restart(
    env: Env, receiver: Receiver, dispatcher_process: Callable[[WebhookSettings], DispatcherProcess]
) -> None:
    account = await create_account(env.dsn)
    # Attempts 1 and 2 fail; attempt 3 hangs (the process is killed during it); attempt 4 succeeds.
    receiver.answer(Reply(500), Reply(500), Reply(200, delay=30.0))
    settings = env.settings(
        schedule={"base_seconds": 1.0, "factor": 1.0, "spread": 0.0},
        timeout_seconds=5.0,
        lease_margin_seconds=0.5,
    )
    proc = dispatcher_process(settings)
    proc.start()
    event = await publish_event(env.js, account, receiver.url)

    # Kill between attempts: attempt 1 recorded, attempt 2 scheduled one second later.
    await receiver.wait_for(1)
    while not [a for a in await env.attempts(event.task_id) if a["finished_at"] is not None]:
        await asyncio.sleep(0.02)
    proc.proc.kill()
    assert proc.proc.returncode() == -signal.SIGKILL
    proc.start()

    # Kill again while attempt 3 is in flight.
    await receiver.wait_for(3, timeout=30)
    proc.proc.kill()
    proc.start()

    row = await env.wait_state(event.task_id, "delivered", timeout=30)
    attempts = await env.attempts(event.task_id)
    assert [a["number"] for a in attempts] == [1, 2, 3, 4]
    assert [a["status_code"] for a in attempts] == [500, 500, None, 200]
    assert attempts[2]["error"] == INTERRUPTED
    # The interrupted attempt was retried after its lease (timeout 5 s + margin 0.5 s), not before.
    assert (attempts[3]["attempted_at"] - attempts[2]["attempted_at"]).total_seconds() >= 5.4
    assert len({r.header("X-Facemint-Delivery") for r in receiver.requests}) == 1
    assert row["attempt_count"] == 4 and len(receiver.requests) == 4


async def test_attempt_cut_by_sigkill_is_retried_when_its_lease_ends_not_at_the_backoff_slot(
    env: Env, receiver: Receiver, dispatcher_process: Callable[[WebhookSettings], DispatcherProcess]
) -> None:
    account = await create_account(env.dsn)
    # The first attempt hangs and the process is killed during it; the next one would come 60 s later had it failed.
    receiver.answer(Reply(200, delay=30.0))
    settings = env.settings(
        schedule={"base_seconds": 60.0, "factor": 1.0, "spread": 0.0, "time_scale": 1.0},
        timeout_seconds=2.0,
        lease_margin_seconds=0.5,
    )
    proc = dispatcher_process(settings)
    proc.start()
    event = await publish_event(env.js, account, receiver.url)
    await receiver.wait_for(1)
    proc.proc.kill()
    proc.start()

    # Lease: timeout 2 s + margin 0.5 s after the claim; the restarted process takes the delivery over then.
    await receiver.wait_for(2, timeout=20)
    row = await env.wait_state(event.task_id, "delivered")
    attempts = await env.attempts(event.task_id)
    assert [a["number"] for a in attempts] == [1, 2] and attempts[0]["error"] == INTERRUPTED
    gap = (attempts[1]["attempted_at"] - attempts[0]["attempted_at"]).total_seconds()
    assert 2.4 <= gap < 20, gap
    assert row["attempt_count"] == 2 and len(receiver.requests) == 2


async def test_no_delivery_is_lost_across_a_nats_restart(
    fresh_database: str, receiver: Receiver, start_dispatcher: StartDispatcher, tmp_path: Path
) -> None:
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        env = await open_env(fresh_database, server.url)
        account = await create_account(env.dsn)
        await start_dispatcher(env.settings())
        before = [await publish_event(env.js, account, receiver.url) for _ in range(40)]
        await env.nc.close()
        server.stop()  # some events are stored but not yet consumed, some acks are in flight
        server = NatsServer(tmp_path / "nats", port=server.port, monitor_port=server.monitor_port)
        server.start()
        nc = await nats.connect(server.url)
        try:
            after = [await publish_event(nc.jetstream(), account, receiver.url) for _ in range(40)]
        finally:
            await nc.close()
        task_ids = {e.task_id for e in before + after}
        for task_id in task_ids:
            await env.wait_state(task_id, "delivered", timeout=60)
        rows = await env.fetch("SELECT task_id FROM webhook_deliveries")
        assert sorted(r["task_id"] for r in rows) == sorted(task_ids)
        delivered = {r.header("X-Facemint-Delivery") for r in receiver.requests}
        assert len(delivered) == 80
    finally:
        server.stop()
