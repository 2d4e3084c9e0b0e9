"""Gateway integration fixtures: real PostgreSQL, NATS, task orchestrator and two gateway processes.

One stack serves the whole session (tests isolate themselves by creating their own accounts): a fresh database with
every migration, the real ``facemint_task_orchestrator`` (its media decoder is absent on purpose, so that the tasks it
accepts stay queued or running: its retry backoff is ten minutes) and two ``facemint_gateway`` processes sharing
that database, as in a deployment with several replicas. ``stack_with_own_nats`` starts a gateway and an
orchestrator on a NATS server of their own, for tests that stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from facemint_core.schemas import service_dsn
from facemint_local.procs import ManagedProcess, free_port, wait_until
from facemint_local.servers import NatsServer, ObjectStore, PostgresServer

AUTH_CACHE_TTL_SECONDS = 30
"""Long on purpose: revocation must reach the other process through NOTIFY, well before the TTL."""


@dataclass
class GatewayStack:
    """Two gateway processes, an orchestrator and their database."""

    dsn: str
    admin_token: str
    urls: list[str]
    gateways: list[ManagedProcess]
    orchestrator: ManagedProcess
    orchestrator_target: str
    log_dir: Path
    accounts: list[str] = field(default_factory=list)
    webhook_target: str = ""

    @property
    def url(self) -> str:
        """The first gateway."""
        return self.urls[0]

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """Call the admin API of the first gateway."""
        return httpx.request(
            method,
            self.url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30,
        )

    def new_account(self, plan: str | None = None, **limits: int) -> tuple[str, str, str]:
        """Create an account with one key; returns (account_id, raw key, key_id)."""
        body: dict[str, Any] = {"name": f"test {uuid.uuid4().hex[:6]}"}
        if plan:
            body["plan"] = plan
        if limits:
            body["limits"] = limits
        resp = self.admin("POST", "/admin/v1/accounts", body)
        assert resp.status_code == 201, resp.text
        doc = resp.json()
        self.accounts.append(doc["account"]["account_id"])
        return doc["account"]["account_id"], doc["api_key"]["key"], doc["api_key"]["key_id"]

    def logs(self) -> str:
        """Everything the gateways and the orchestrator have logged so far."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FACEMINT_")}


def _http_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _create_database(admin_dsn: str) -> str:
    from facemint_local.pytest_plugin import create_database

    return asyncio.run(create_database(admin_dsn, "gw"))


def start_gateway(
    name: str, dsn: str, admin_token: str, orchestrator_target: str, log_dir: Path, **extra_env: str
) -> tuple[ManagedProcess, str]:
    """Start one ``python -m facemint_gateway`` on a free port; returns the process and its base URL."""
    port = free_port()
    env = _base_env() | {
        "FACEMINT_GATEWAY_HTTP__PORT": str(port),
        "FACEMINT_GATEWAY_DATABASE__DSN": service_dsn(dsn, "gateway"),
        "FACEMINT_GATEWAY_ADMIN_TOKEN": admin_token,
        "FACEMINT_GATEWAY_ORCHESTRATOR_TARGET": orchestrator_target,
        "FACEMINT_GATEWAY_LOG__LEVEL": "DEBUG",
        "FACEMINT_GATEWAY_ALLOW_HTTP_CALLBACKS": "true",
        "FACEMINT_GATEWAY_ACCOUNTS__AUTH_CACHE_TTL_SECONDS": str(AUTH_CACHE_TTL_SECONDS),
        "FACEMINT_GATEWAY_ACCOUNTS__JANITOR_INTERVAL_SECONDS": "5",
        **extra_env,
    }
    proc = ManagedProcess(name, [sys.executable, "-m", "facemint_gateway"], log_dir / f"{name}.log", env=env)
    proc.start()

    def ready() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{name} exited:\n{proc.tail()}")
        return _http_ready(port)

    wait_until(ready, 60, name, interval=0.2)
    return proc, f"http://127.0.0.1:{port}"


def start_orchestrator(dsn: str, nats_url: str, log_dir: Path, **extra_env: str) -> tuple[ManagedProcess, str]:
    """Start ``python -m facemint_task_orchestrator`` without a media decoder (its tasks stay queued or running: the
    retry backoff is ten minutes); returns the process and its gRPC target."""
    grpc_port, http_port, nowhere = free_port(), free_port(), free_port()
    orchestrator = ManagedProcess(
        "orchestrator",
        [sys.executable, "-m", "facemint_task_orchestrator"],
        log_dir / "orchestrator.log",
        env=_base_env()
        | {
            "FACEMINT_TASK_ORCHESTRATOR_DATABASE__DSN": service_dsn(dsn, "task-orchestrator"),
            "FACEMINT_TASK_ORCHESTRATOR_NATS__URL": nats_url,
            "FACEMINT_TASK_ORCHESTRATOR_GRPC__PORT": str(grpc_port),
            "FACEMINT_TASK_ORCHESTRATOR_HTTP__PORT": str(http_port),
            "FACEMINT_TASK_ORCHESTRATOR_MEDIA_DECODER_TARGET": f"127.0.0.1:{nowhere}",
            "FACEMINT_TASK_ORCHESTRATOR_LIBRARY_TARGET": f"127.0.0.1:{nowhere}",
            "FACEMINT_TASK_ORCHESTRATOR_WORKER__BACKOFF_BASE_SECONDS": "600",
            "FACEMINT_TASK_ORCHESTRATOR_WORKER__MAX_ATTEMPTS": "20",
            **extra_env,
        },
    )
    orchestrator.start()
    try:
        wait_until(lambda: orchestrator.alive() and _http_ready(http_port), 60, "orchestrator", interval=0.2)
    except BaseException:
        orchestrator.stop()
        raise
    return orchestrator, f"127.0.0.1:{grpc_port}"


def start_dispatcher(dsn: str, nats_url: str, log_dir: Path, name: str = "dispatcher") -> tuple[ManagedProcess, str]:
    """Start ``python -m facemint_webhook_dispatcher``, which owns the accounts' webhook secrets (the admin API asks it
    for a new account's); returns the process and its gRPC target."""
    grpc_port, http_port = free_port(), free_port()
    proc = ManagedProcess(
        name,
        [sys.executable, "-m", "facemint_webhook_dispatcher"],
        log_dir / f"{name}.log",
        env=_base_env()
        | {
            "FACEMINT_WEBHOOK_DISPATCHER_DATABASE__DSN": service_dsn(dsn, "webhook-dispatcher"),
            "FACEMINT_WEBHOOK_DISPATCHER_NATS__URL": nats_url,
            "FACEMINT_WEBHOOK_DISPATCHER_GRPC__PORT": str(grpc_port),
            "FACEMINT_WEBHOOK_DISPATCHER_HTTP__PORT": str(http_port),
            "FACEMINT_WEBHOOK_DISPATCHER_EVENTS__DURABLE": f"{name}-{uuid.uuid4().hex[:8]}",
        },
    )
    proc.start()
    try:
        wait_until(lambda: proc.alive() and _http_ready(http_port), 60, name, interval=0.2)
    except BaseException:
        proc.stop()
        raise
    return proc, f"127.0.0.1:{grpc_port}"


@pytest.fixture(scope="session")
def dispatcher_starter() -> Callable[..., tuple[ManagedProcess, str]]:
    """:func:`start_dispatcher`, for modules that build a stack of their own."""
    return start_dispatcher


@pytest.fixture(scope="session")
def orchestrator_starter() -> Callable[..., tuple[ManagedProcess, str]]:
    """:func:`start_orchestrator`, for modules that build a stack of their own."""
    return start_orchestrator


@pytest.fixture(scope="session")
def gateway_stack(
    postgres_server: PostgresServer, nats_server: NatsServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayStack]:
    """A database, the orchestrator, the webhook dispatcher and two gateways sharing them, for the whole session."""
    log_dir = tmp_path_factory.mktemp("gateway-logs")
    dsn = _create_database(postgres_server.dsn)
    admin_token = secrets.token_urlsafe(24)
    orchestrator, target = start_orchestrator(dsn, nats_server.url, log_dir)
    dispatcher: ManagedProcess | None = None
    gateways: list[ManagedProcess] = []
    try:
        dispatcher, hooks = start_dispatcher(dsn, nats_server.url, log_dir)
        urls = []
        for name in ("gateway-a", "gateway-b"):
            proc, url = start_gateway(name, dsn, admin_token, target, log_dir, FACEMINT_GATEWAY_WEBHOOK_TARGET=hooks)
            gateways.append(proc)
            urls.append(url)
        yield GatewayStack(dsn, admin_token, urls, gateways, orchestrator, target, log_dir, webhook_target=hooks)
    finally:
        for proc in [*gateways, *([dispatcher] if dispatcher else []), orchestrator]:
            proc.stop()


@pytest.fixture
def stack_with_own_nats(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[tuple[GatewayStack, NatsServer]]:
    """A gateway and an orchestrator on a database and a NATS server of their own, which the test may stop and
    start again; the orchestrator's sweep re-enqueues a queued task after one second."""
    nats = NatsServer(tmp_path / "nats")
    nats.start()
    dsn = _create_database(postgres_server.dsn)
    admin_token = secrets.token_urlsafe(24)
    procs: list[ManagedProcess] = []
    try:
        orchestrator, target = start_orchestrator(
            dsn,
            nats.url,
            tmp_path,
            FACEMINT_TASK_ORCHESTRATOR_WORKER__SWEEP_INTERVAL_SECONDS="0.5",
            FACEMINT_TASK_ORCHESTRATOR_WORKER__REQUEUE_AFTER_SECONDS="1",
        )
        procs.append(orchestrator)
        dispatcher, hooks = start_dispatcher(dsn, nats.url, tmp_path)
        procs.append(dispatcher)
        gateway, url = start_gateway(
            "gateway-own-nats", dsn, admin_token, target, tmp_path, FACEMINT_GATEWAY_WEBHOOK_TARGET=hooks
        )
        procs.append(gateway)
        yield (
            GatewayStack(dsn, admin_token, [url], [gateway], orchestrator, target, tmp_path, webhook_target=hooks),
            nats,
        )
    finally:
        for proc in reversed(procs):
            proc.stop()
        nats.stop()


@contextlib.contextmanager
def _more_gateways(stack: GatewayStack) -> Iterator[Callable[..., str]]:
    """A function that starts another gateway process on the stack (keyword arguments: extra environment) and
    returns its URL; the processes stop on exit."""
    started: list[ManagedProcess] = []

    def start(**env: str) -> str:
        name = f"gateway-extra-{uuid.uuid4().hex[:6]}"
        env = {"FACEMINT_GATEWAY_WEBHOOK_TARGET": stack.webhook_target, **env}
        proc, url = start_gateway(name, stack.dsn, stack.admin_token, stack.orchestrator_target, stack.log_dir, **env)
        started.append(proc)
        return url

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture
def extra_gateway(gateway_stack: GatewayStack) -> Iterator[Callable[..., str]]:
    """Start another gateway process on the stack (keyword arguments: extra environment); returns its URL."""
    with _more_gateways(gateway_stack) as start:
        yield start


@pytest.fixture(scope="module")
def module_gateway(gateway_stack: GatewayStack) -> Iterator[Callable[..., str]]:
    """As :func:`extra_gateway`, for the whole test module."""
    with _more_gateways(gateway_stack) as start:
        yield start


@pytest.fixture
def start_upload_gateway(extra_gateway: Callable[..., str], object_store: ObjectStore) -> Callable[..., str]:
    """Start another gateway process with signed uploads to the session's object store; keyword arguments set
    further ``OBJECT_STORE__*`` settings (``image_max_bytes="65536"``). Returns its URL."""

    def start(**settings: str) -> str:
        return extra_gateway(
            FACEMINT_GATEWAY_OBJECT_STORE__ENDPOINT=object_store.endpoint,
            FACEMINT_GATEWAY_OBJECT_STORE__ACCESS_KEY=object_store.access_key,
            FACEMINT_GATEWAY_OBJECT_STORE__SECRET_KEY=object_store.secret_key,
            **{f"FACEMINT_GATEWAY_OBJECT_STORE__{name.upper()}": value for name, value in settings.items()},
        )

    return start


@pytest.fixture
async def db(gateway_stack: GatewayStack) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the stack's database."""
    conn = await asyncpg.connect(gateway_stack.dsn)
    try:
        yield conn
    finally:
        await conn.close()
