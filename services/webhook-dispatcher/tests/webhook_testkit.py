"""Helpers and fixtures of the dispatcher tests: a scriptable receiver, accounts, events, dispatchers.

Every test gets a fresh database, a purged ``FACEMINT_EVENTS`` stream and its own durable consumer name, so that
tests sharing the session's NATS server never see each other's events.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NatsClient
from prometheus_client import REGISTRY

from facemint.common.v1 import common_pb2
from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core import streams
from facemint_core.jetstream import publish
from facemint_core.lifecycle import ServiceRuntime
from facemint_core.schemas import service_dsn
from facemint_core.taskview import public_task
from facemint_core.timeutil import utcnow
from facemint_core.vocab import STATUSES
from facemint_local.procs import ManagedProcess, wait_until
from facemint_local.servers import NatsServer
from facemint_webhook_dispatcher.__main__ import setup
from facemint_webhook_dispatcher.settings import WebhookSettings


@dataclass(frozen=True)
class Reply:
    """How the receiver answers one request: status after ``delay`` seconds (cut short by ``Receiver.release``)."""

    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        return self.headers.get(name.lower())


class Receiver:
    """A real HTTP server on 127.0.0.1 (a thread per request) that answers from a script and records requests."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.header_names: list[list[str]] = []
        self.script: list[Reply] = []
        self.default = Reply()
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests.append(
                        Received(time.time(), self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    receiver.header_names.append(list(self.headers.keys()))
                    reply = receiver.script.pop(0) if receiver.script else receiver.default
                if reply.delay:
                    receiver.release.wait(reply.delay)
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up (timeout) or died

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server API
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The callback URL."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def answer(self, *replies: Reply) -> None:
        """Queue replies for the next requests (then the default, 200)."""
        with self._lock:
            self.script.extend(replies)

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Wait until ``count`` requests have arrived."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"receiver got {len(self.requests)} requests, expected {count}")
            await asyncio.sleep(0.02)
        return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A started receiver, stopped after the test."""
    rcv = Receiver()
    rcv.thread.start()
    yield rcv
    rcv.release.set()
    rcv.server.shutdown()
    rcv.server.server_close()


async def create_account(dsn: str, secret: str = "whsec_test_secret") -> str:
    """A new account id with the given webhook secret (the dispatcher's record of it); return its id."""
    account_id = f"acc_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO webhook_secrets (account_id, secret) VALUES ($1, $2)", account_id, secret)
    finally:
        await conn.close()
    return account_id


def task_json(task_id: str, status: str = "succeeded", callback_url: str = "") -> bytes:
    """A public task JSON, as the orchestrator puts it into TaskEvent.task."""
    task = orchestrator_pb2.Task(
        task_id=task_id,
        account_id="ignored",
        status=STATUSES[status],
        spec=orchestrator_pb2.TaskSpec(
            kind=common_pb2.MEDIA_KIND_IMAGE, media_url="https://example.com/a.jpg", callback_url=callback_url
        ),
        media=orchestrator_pb2.TaskMedia(width=640, height=480),
        error_code="invalid_media" if status == "failed" else "",
        error_message="cannot decode" if status == "failed" else "",
    )
    task.created_at.FromDatetime(utcnow())
    task.completed_at.FromDatetime(utcnow())
    if status == "succeeded":
        task.result.json = json.dumps({"faces": [{"bbox": [1, 2, 3, 4]}]}).encode()
    return json.dumps(public_task(task), separators=(",", ":")).encode()


async def publish_event(
    js: Any, account_id: str, callback_url: str, status: str = "succeeded", task_id: str | None = None
) -> orchestrator_pb2.TaskEvent:
    """Publish a terminal TaskEvent exactly as the orchestrator does; return it."""
    task_id = task_id or f"task_{uuid.uuid4().hex[:16]}"
    event = orchestrator_pb2.TaskEvent(
        event=f"task.{status}",
        task_id=task_id,
        account_id=account_id,
        status=STATUSES[status],
        callback_url=callback_url,
        task=common_pb2.JsonDocument(json=task_json(task_id, status, callback_url)),
    )
    event.occurred_at.FromDatetime(utcnow())
    await publish(js, streams.event_subject(status), event.SerializeToString(), f"{task_id}:{status}")
    return event


@dataclass
class Env:
    """What a dispatcher test works with."""

    dsn: str
    nats_url: str
    nc: NatsClient
    js: Any
    durable: str

    def settings(self, **overrides: Any) -> WebhookSettings:
        """Test settings: local receivers allowed, compressed schedule, short timeouts and polls."""
        values: dict[str, Any] = {
            "database": {"dsn": service_dsn(self.dsn, "webhook-dispatcher"), "min_pool_size": 1, "max_pool_size": 5},
            "nats": {"url": self.nats_url},
            "grpc": {"port": 0},
            "events": {"durable": self.durable, "ack_wait_seconds": 2.0, "backoff_base_seconds": 0.2},
            "schedule": {"time_scale": 0.0001},
            "allow_http": True,
            "allow_cidrs": ["127.0.0.1/32"],
            "timeout_seconds": 2.0,
            "poll_interval_seconds": 0.05,
            "lease_margin_seconds": 0.5,
            "shutdown_grace_seconds": 1.0,
        }
        values.update(overrides)
        return WebhookSettings(**values)

    def environ(self, settings: WebhookSettings) -> dict[str, str]:
        """The same settings as ``FACEMINT_WEBHOOK_DISPATCHER_*`` variables, for a dispatcher subprocess (unset:
        None)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACEMINT_")}
        flat = settings.model_dump(mode="json", exclude_none=True)
        for key, value in flat.items():
            name = f"FACEMINT_WEBHOOK_DISPATCHER_{key.upper()}"
            if isinstance(value, dict):
                for sub, subvalue in value.items():
                    env[f"{name}__{sub.upper()}"] = str(subvalue)
            else:
                env[name] = json.dumps(value) if isinstance(value, list | bool) else str(value)
        return env

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run a query on the test database."""
        conn = await asyncpg.connect(self.dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def wait_state(self, task_id: str, state: str, timeout: float = 20.0) -> asyncpg.Record:
        """Wait until the task's original delivery reaches ``state``; return the row."""
        deadline = time.monotonic() + timeout
        while True:
            rows = await self.fetch(
                "SELECT * FROM webhook_deliveries WHERE task_id = $1 AND redelivery_of IS NULL", task_id
            )
            if rows and rows[0]["state"] == state:
                return rows[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"delivery of {task_id} is {rows[0]['state'] if rows else 'absent'}, not {state}")
            await asyncio.sleep(0.05)

    async def attempts(self, task_id: str) -> list[asyncpg.Record]:
        """The attempts of a task's original delivery, in order."""
        return await self.fetch(
            """SELECT a.* FROM webhook_attempts a JOIN webhook_deliveries d USING (delivery_id)
               WHERE d.task_id = $1 AND d.redelivery_of IS NULL ORDER BY a.number""",
            task_id,
        )


async def open_env(dsn: str, nats_url: str) -> Env:
    """Connect to NATS, create and purge the events stream, pick a durable consumer name."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await streams.ensure_events_stream(js)
    await js.purge_stream(streams.EVENTS_STREAM)
    return Env(dsn=dsn, nats_url=nats_url, nc=nc, js=js, durable=f"wh-{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def env(fresh_database: str, nats_server: NatsServer) -> AsyncIterator[Env]:
    """A fresh database and the session's NATS with a purged events stream."""
    test_env = await open_env(fresh_database, nats_server.url)
    yield test_env
    await test_env.nc.close()


StartDispatcher = Callable[..., Any]


def forget_rpc_metrics() -> None:
    """Unregister the gRPC server metrics of an earlier in-process dispatcher (core registers them per server)."""
    for collector, names in list(REGISTRY._collector_to_names.items()):
        if any(name.startswith("facemint_webhook_dispatcher_grpc_") for name in names):
            REGISTRY.unregister(collector)


@pytest.fixture
async def start_dispatcher(env: Env) -> AsyncIterator[StartDispatcher]:
    """Start the dispatcher in this process (the same ``setup`` as ``python -m facemint_webhook_dispatcher``)."""
    runtimes: list[ServiceRuntime] = []

    async def start(settings: WebhookSettings | None = None) -> ServiceRuntime:
        forget_rpc_metrics()
        runtime = ServiceRuntime("webhook-dispatcher", settings or env.settings())
        runtimes.append(runtime)
        await setup(runtime)
        return runtime

    yield start
    for runtime in runtimes:
        await runtime.shutdown()


class DispatcherProcess:
    """``python -m facemint_webhook_dispatcher`` as a child process."""

    def __init__(self, environ: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.proc = ManagedProcess(
            "webhook-dispatcher", [sys.executable, "-m", "facemint_webhook_dispatcher"], log_path, env=environ
        )
        self.grpc_port = 0

    def start(self, timeout: float = 30.0) -> None:
        """Start and wait for the ``started`` log line; record the gRPC port."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.proc.start()

        def started() -> bool:
            if not self.proc.alive():
                raise RuntimeError(f"dispatcher exited:\n{self.proc.tail()}")
            for line in self.log_path.read_bytes()[offset:].decode(errors="replace").splitlines():
                if '"message": "started"' in line:
                    self.grpc_port = int(json.loads(line)["grpc_port"])
                    return True
            return False

        wait_until(started, timeout, "webhook dispatcher", interval=0.05)


@pytest.fixture
def dispatcher_process(env: Env, tmp_path: Path) -> Iterator[Callable[[WebhookSettings], DispatcherProcess]]:
    """Build dispatcher subprocesses from settings; every one still running is stopped after the test."""
    made: list[DispatcherProcess] = []

    def make(settings: WebhookSettings) -> DispatcherProcess:
        proc = DispatcherProcess(env.environ(settings), tmp_path / "dispatcher.log")
        made.append(proc)
        return proc

    yield make
    for proc in made:
        proc.proc.stop(5.0)
