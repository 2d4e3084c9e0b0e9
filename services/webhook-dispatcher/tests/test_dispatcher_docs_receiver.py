"""The receiver example in ``docs/examples`` verifies a real delivery and rejects forged or stale ones."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import pytest
from webhook_testkit import Env, StartDispatcher, create_account, publish_event

from facemint_local.procs import ManagedProcess, free_port, wait_until
from facemint_local.pytest_plugin import repo_root
from facemint_webhook_dispatcher.signing import sign

pytestmark = pytest.mark.integration

SECRET = "whsec_docs_example"


def lines(log: Path) -> list[dict[str, object]]:
    """The JSON lines the example printed."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


async def test_docs_receiver_verifies_a_real_delivery(
    env: Env, start_dispatcher: StartDispatcher, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "receiver.log"
    example = repo_root() / "docs" / "examples" / "webhook_receiver.py"
    proc = ManagedProcess(
        "receiver",
        [sys.executable, str(example), "--port", str(port)],
        log,
        env={"FACEMINT_WEBHOOK_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
    )
    proc.start()
    try:
        wait_until(lambda: any("listening" in line for line in lines(log)) if log.exists() else False, 10, "receiver")
        url = f"http://127.0.0.1:{port}/facemint"
        account = await create_account(env.dsn, secret=SECRET)
        await start_dispatcher()
        event = await publish_event(env.js, account, url)
        row = await env.wait_state(event.task_id, "delivered")
        (attempt,) = await env.attempts(event.task_id)
        assert attempt["status_code"] == 204
        accepted = [line for line in lines(log) if line.get("verified")]
        assert accepted == [
            {
                "verified": True,
                "delivery_id": row["delivery_id"],
                "event": "task.succeeded",
                "task_id": event.task_id,
                "status": "succeeded",
            }
        ]

        body = b'{"event":"task.succeeded","task_id":"task_forged","status":"succeeded","result":{}}'
        now = int(time.time())
        async with httpx.AsyncClient() as client:
            forged = await client.post(
                url, content=body, headers={"X-Facemint-Timestamp": str(now), "X-Facemint-Signature": "0" * 64}
            )
            stale = await client.post(
                url,
                content=body,
                headers={
                    "X-Facemint-Timestamp": str(now - 301),
                    "X-Facemint-Signature": sign(SECRET, now - 301, body),
                },
            )
            fresh = await client.post(
                url,
                content=body,
                headers={"X-Facemint-Timestamp": str(now), "X-Facemint-Signature": sign(SECRET, now, body)},
            )
        assert (forged.status_code, stale.status_code, fresh.status_code) == (401, 401, 204)
    finally:
        proc.stop(5.0)
