"""Webhook routes through a real gateway process and a real webhook dispatcher (PostgreSQL, NATS, HTTP receiver).

``GET /v1/task/{id}/deliveries``, ``POST /v1/task/{id}/redeliver``, ``GET /v1/webhook-secret`` and
``POST /v1/webhook-secret/rotate``: shapes, ownership (403 for another account's task, 404 for an unknown one),
validation, and a rotated secret signing real deliveries alongside the previous one.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import pytest

from facemint.common.v1 import common_pb2
from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core import streams
from facemint_core.jetstream import publish
from facemint_core.schemas import service_dsn
from facemint_core.vocab import MAX_WEBHOOK_SECRET_GRACE_SECONDS
from facemint_local.procs import ManagedProcess, free_port, wait_until
from facemint_local.servers import NatsServer, PostgresServer

pytestmark = [pytest.mark.integration]


@dataclass
class Hooks:
    """A local receiver that records every webhook request (headers lower-cased) and answers 200."""

    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def serve(self) -> ThreadingHTTPServer:
        """Start serving on a free port, in a thread."""
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hooks.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server API
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@dataclass
class Stack:
    """A gateway and a dispatcher sharing one database; the session's NATS; a receiver."""

    url: str
    dsn: str
    nats_url: str
    admin_token: str
    hook_url: str
    hooks: Hooks

    def new_account(self) -> tuple[str, str, str]:
        """Create an account with a key through the admin API; returns (account_id, key, webhook secret)."""
        resp = httpx.post(
            f"{self.url}/admin/v1/accounts",
            json={"name": f"webhooks {uuid.uuid4().hex[:6]}"},
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30,
        )
        assert resp.status_code == 201, resp.text
        doc = resp.json()
        return doc["account"]["account_id"], doc["api_key"]["key"], doc["account"]["webhook_secret"]

    async def finished_task(self, account_id: str, callback_url: str | None = None) -> str:
        """A succeeded task of the account whose terminal event has been published (as the orchestrator does)."""
        task_id = f"task_{uuid.uuid4().hex[:16]}"
        url = self.hook_url if callback_url is None else callback_url
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                """INSERT INTO tasks (task_id, account_id, type, status, spec, completed_at)
                   VALUES ($1, $2, 'image', 'succeeded', $3, now())""",
                task_id,
                account_id,
                json.dumps({"type": "image", "media_url": "https://example.com/a.jpg", "callback_url": url}),
            )
        finally:
            await conn.close()
        view = {"task_id": task_id, "status": "succeeded", "type": "image", "result": {"faces": []}}
        event = orchestrator_pb2.TaskEvent(
            event="task.succeeded",
            task_id=task_id,
            account_id=account_id,
            status=orchestrator_pb2.TASK_STATUS_SUCCEEDED,
            callback_url=url,
            task=common_pb2.JsonDocument(json=json.dumps(view).encode()),
        )
        nc = await nats.connect(self.nats_url)
        try:
            await publish(nc.jetstream(), streams.event_subject("succeeded"), event.SerializeToString(), task_id)
        finally:
            await nc.close()
        return task_id

    async def received(self, task_id: str, count: int = 1) -> list[tuple[dict[str, str], bytes]]:
        """Wait for ``count`` webhook requests about the task."""
        deadline = time.monotonic() + 20
        while True:
            got = [r for r in self.hooks.requests if json.loads(r[1])["task_id"] == task_id]
            if len(got) >= count:
                return got
            assert time.monotonic() < deadline, f"{len(got)} webhooks of {task_id}, expected {count}"
            await asyncio.sleep(0.05)


def _answers(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _new_database(admin_dsn: str, nats_url: str) -> str:
    """A migrated database; the events stream is purged so that the new consumer sees only this module's events."""
    from facemint_local.pytest_plugin import create_database

    async def create() -> str:
        dsn = await create_database(admin_dsn, "wh")
        nc = await nats.connect(nats_url)
        try:
            await streams.ensure_events_stream(nc.jetstream())
            await nc.jetstream().purge_stream(streams.EVENTS_STREAM)
        finally:
            await nc.close()
        return dsn

    return asyncio.run(create())


def _start(
    name: str, module: str, env: dict[str, str], http_port: int, log_dir: Path, probe: str = "/readyz"
) -> ManagedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FACEMINT_")}
    proc = ManagedProcess(name, [sys.executable, "-m", module], log_dir / f"{name}.log", env=base | env)
    proc.start()

    def ready() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{name} exited:\n{proc.tail()}")
        return _answers(http_port, probe)

    wait_until(ready, 60, name, interval=0.2)
    return proc


@pytest.fixture(scope="module")
def stack(
    postgres_server: PostgresServer,
    nats_server: NatsServer,
    tmp_path_factory: pytest.TempPathFactory,
    orchestrator_starter: Callable[..., tuple[ManagedProcess, str]],
) -> Iterator[Stack]:
    """The gateway, the webhook dispatcher and the orchestrator as processes, for this module."""
    log_dir = tmp_path_factory.mktemp("webhook-routes")
    dsn = _new_database(postgres_server.dsn, nats_server.url)
    hooks = Hooks()
    receiver = hooks.serve()
    admin_token = secrets.token_urlsafe(24)
    grpc_port, dispatcher_http, gateway_http, nowhere = free_port(), free_port(), free_port(), free_port()
    procs: list[ManagedProcess] = []
    try:
        # The orchestrator answers whether a task exists and whose it is (its tasks are inserted by the tests).
        orchestrator, orchestrator_target = orchestrator_starter(dsn, nats_server.url, log_dir)
        procs.append(orchestrator)
        procs.append(
            _start(
                "dispatcher",
                "facemint_webhook_dispatcher",
                {
                    "FACEMINT_WEBHOOK_DISPATCHER_DATABASE__DSN": service_dsn(dsn, "webhook-dispatcher"),
                    "FACEMINT_WEBHOOK_DISPATCHER_NATS__URL": nats_server.url,
                    "FACEMINT_WEBHOOK_DISPATCHER_GRPC__PORT": str(grpc_port),
                    "FACEMINT_WEBHOOK_DISPATCHER_HTTP__PORT": str(dispatcher_http),
                    "FACEMINT_WEBHOOK_DISPATCHER_EVENTS__DURABLE": f"routes-{uuid.uuid4().hex[:8]}",
                    "FACEMINT_WEBHOOK_DISPATCHER_ALLOW_HTTP": "true",
                    "FACEMINT_WEBHOOK_DISPATCHER_ALLOW_CIDRS": '["127.0.0.1/32"]',
                    "FACEMINT_WEBHOOK_DISPATCHER_POLL_INTERVAL_SECONDS": "0.1",
                },
                dispatcher_http,
                log_dir,
            )
        )
        procs.append(
            _start(
                "gateway",
                "facemint_gateway",
                {
                    "FACEMINT_GATEWAY_HTTP__PORT": str(gateway_http),
                    "FACEMINT_GATEWAY_DATABASE__DSN": service_dsn(dsn, "gateway"),
                    "FACEMINT_GATEWAY_ADMIN_TOKEN": admin_token,
                    "FACEMINT_GATEWAY_WEBHOOK_TARGET": f"127.0.0.1:{grpc_port}",
                    "FACEMINT_GATEWAY_ORCHESTRATOR_TARGET": orchestrator_target,
                    "FACEMINT_GATEWAY_LIBRARY_TARGET": f"127.0.0.1:{nowhere}",
                },
                gateway_http,
                log_dir,
                probe="/healthz",
            )
        )
        yield Stack(
            url=f"http://127.0.0.1:{gateway_http}",
            dsn=dsn,
            nats_url=nats_server.url,
            admin_token=admin_token,
            hook_url=f"http://127.0.0.1:{receiver.server_address[1]}/hooks",
            hooks=hooks,
        )
    finally:
        for proc in reversed(procs):
            proc.stop()
        receiver.shutdown()
        receiver.server_close()


def _signature(secret: str, headers: dict[str, str], body: bytes, header: str = "x-facemint-signature") -> bool:
    expected = hmac.new(secret.encode(), f"{headers['x-facemint-timestamp']}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), headers.get(header, ""))


async def test_deliveries_lists_the_signed_webhook_of_a_finished_task(stack: Stack) -> None:
    account_id, key, secret = stack.new_account()
    task_id = await stack.finished_task(account_id)
    ((headers, body),) = await stack.received(task_id)
    assert _signature(secret, headers, body)

    async with httpx.AsyncClient(base_url=stack.url, headers={"x-api-key": key}) as client:
        resp = await client.get(f"/v1/task/{task_id}/deliveries")
        for _ in range(50):  # the 200 is recorded just after the receiver answered
            if resp.json()["deliveries"][0]["state"] == "delivered":
                break
            await asyncio.sleep(0.1)
            resp = await client.get(f"/v1/task/{task_id}/deliveries")
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["request_id"].startswith("req_") and doc["task_id"] == task_id
    (delivery,) = doc["deliveries"]
    assert delivery["delivery_id"] == headers["x-facemint-delivery"]
    assert delivery["event"] == "task.succeeded" and delivery["url"] == stack.hook_url
    assert delivery["state"] == "delivered" and delivery["max_attempts"] == 9
    assert delivery["redelivery_of"] is None and delivery["next_attempt_at"] is None
    (attempt,) = delivery["attempts"]
    assert attempt["number"] == 1 and attempt["status_code"] == 200 and attempt["error"] is None
    assert attempt["attempted_at"].endswith("Z") and attempt["latency_seconds"] > 0


async def test_redeliver_returns_202_and_sends_the_same_body_again(stack: Stack) -> None:
    account_id, key, _ = stack.new_account()
    task_id = await stack.finished_task(account_id)
    ((first_headers, first_body),) = await stack.received(task_id)
    async with httpx.AsyncClient(base_url=stack.url, headers={"x-api-key": key}) as client:
        for _ in range(50):
            listed = (await client.get(f"/v1/task/{task_id}/deliveries")).json()
            if listed["deliveries"][0]["state"] == "delivered":
                break
            await asyncio.sleep(0.1)
        resp = await client.post(f"/v1/task/{task_id}/redeliver")
    assert resp.status_code == 202, resp.text
    delivery = resp.json()["delivery"]
    assert delivery["redelivery_of"] == first_headers["x-facemint-delivery"]
    assert delivery["state"] == "pending"
    _, (headers, body) = await stack.received(task_id, count=2)
    assert body == first_body and headers["x-facemint-delivery"] == delivery["delivery_id"]


async def test_another_accounts_task_is_403_and_an_unknown_task_is_404(stack: Stack) -> None:
    owner, _, _ = stack.new_account()
    _, other_key, _ = stack.new_account()
    task_id = await stack.finished_task(owner)
    async with httpx.AsyncClient(base_url=stack.url, headers={"x-api-key": other_key}) as client:
        for method, path in (("GET", f"/v1/task/{task_id}/deliveries"), ("POST", f"/v1/task/{task_id}/redeliver")):
            resp = await client.request(method, path)
            assert resp.status_code == 403 and resp.json()["error"]["code"] == "forbidden", resp.text
        for method, path in (("GET", "/v1/task/task_nope/deliveries"), ("POST", "/v1/task/task_nope/redeliver")):
            resp = await client.request(method, path)
            assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found", resp.text


async def test_redeliver_of_a_task_without_callback_url_is_409(stack: Stack) -> None:
    account_id, key, _ = stack.new_account()
    task_id = await stack.finished_task(account_id, callback_url="")
    async with httpx.AsyncClient(base_url=stack.url, headers={"x-api-key": key}) as client:
        listed = await client.get(f"/v1/task/{task_id}/deliveries")
        resp = await client.post(f"/v1/task/{task_id}/redeliver")
    assert listed.status_code == 200 and listed.json()["deliveries"] == []
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "conflict"


async def test_rotated_secret_signs_deliveries_with_the_previous_one_alongside(stack: Stack) -> None:
    account_id, key, secret = stack.new_account()
    async with httpx.AsyncClient(base_url=stack.url, headers={"x-api-key": key}) as client:
        current = await client.get("/v1/webhook-secret")
        assert current.status_code == 200
        assert current.json()["webhook_secret"] == secret and current.json()["previous_webhook_secret"] is None
        rotated = await client.post("/v1/webhook-secret/rotate", json={"grace_seconds": 3600})
        assert rotated.status_code == 200, rotated.text
        doc = rotated.json()
        assert doc["previous_webhook_secret"] == secret and doc["webhook_secret"] != secret
        assert doc["previous_expires_at"] > doc["rotated_at"]
        assert (await client.get("/v1/webhook-secret")).json()["webhook_secret"] == doc["webhook_secret"]

        task_id = await stack.finished_task(account_id)
        ((headers, body),) = await stack.received(task_id)
        assert _signature(doc["webhook_secret"], headers, body)
        assert _signature(secret, headers, body, header="x-facemint-signature-previous")

        immediate = await client.post("/v1/webhook-secret/rotate", json={"grace_seconds": 0})
        assert immediate.json()["previous_webhook_secret"] is None
        default = await client.post("/v1/webhook-secret/rotate")
        assert default.status_code == 200 and default.json()["previous_webhook_secret"]
        longest = await client.post(
            "/v1/webhook-secret/rotate", json={"grace_seconds": MAX_WEBHOOK_SECRET_GRACE_SECONDS}
        )
        assert longest.status_code == 200, longest.text  # the documented limit itself is accepted end to end


@pytest.mark.parametrize(
    "body",
    [
        {"grace_seconds": -1},
        {"grace_seconds": "1"},
        {"grace_seconds": MAX_WEBHOOK_SECRET_GRACE_SECONDS + 1},
        {"grace_seconds": 10**9},
        {"grace": 5},
        [1],
    ],
)
async def test_rotate_rejects_bad_grace_with_400(stack: Stack, body: Any) -> None:
    _, key, _ = stack.new_account()
    async with httpx.AsyncClient(base_url=stack.url, headers={"x-api-key": key}) as client:
        resp = await client.post("/v1/webhook-secret/rotate", json=body)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_request", resp.text


async def test_webhook_routes_require_an_api_key(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as client:
        for method, path in (
            ("GET", "/v1/webhook-secret"),
            ("POST", "/v1/webhook-secret/rotate"),
            ("GET", "/v1/task/task_x/deliveries"),
            ("POST", "/v1/task/task_x/redeliver"),
        ):
            resp = await client.request(method, path)
            assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
