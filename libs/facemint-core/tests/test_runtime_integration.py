"""Integration tests of the core runtime with real servers: gRPC, JetStream, PostgreSQL migrations, shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import asyncpg
import grpc
import nats
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from facemint.orchestrator.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from facemint_core import errors, streams
from facemint_core.db import apply_migrations
from facemint_core.grpcutil import open_channel, start_grpc_server
from facemint_core.jetstream import Poison, PullWorker, Retry, connect, ensure_pull_consumer, ensure_stream, publish
from facemint_core.lifecycle import ServiceRuntime
from facemint_core.logging import request_id_var, task_id_var
from facemint_core.settings import NatsSettings, ServiceSettings
from facemint_local.natscluster import NatsCluster
from facemint_local.otlp import OtlpReceiver
from facemint_local.procs import free_port, port_open, wait_until

pytestmark = pytest.mark.integration


class _Tasks(orchestrator_pb2_grpc.TaskServiceServicer):
    async def GetTask(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        if request.task_id == "ids":  # the ids the server interceptor bound from the call's metadata
            return orchestrator_pb2.Task(task_id=task_id_var.get(), account_id=request_id_var.get())
        if request.task_id == "missing":
            raise errors.NotFound("task missing does not exist")
        if request.task_id == "boom":
            raise RuntimeError("bug")
        return orchestrator_pb2.Task(task_id=request.task_id, status=orchestrator_pb2.TASK_STATUS_QUEUED)


async def test_grpc_server_maps_errors_and_serves_health() -> None:
    runtime = ServiceRuntime("demo", ServiceSettings())
    await start_grpc_server(
        runtime,
        lambda s: orchestrator_pb2_grpc.add_TaskServiceServicer_to_server(_Tasks(), s),
        ["facemint.orchestrator.v1.TaskService"],
    )
    await runtime.readiness.evaluate()
    channel = open_channel(f"127.0.0.1:{runtime.grpc_port}", typed_errors=False)
    stub = orchestrator_pb2_grpc.TaskServiceStub(channel)
    try:
        assert (await stub.GetTask(orchestrator_pb2.GetTaskRequest(task_id="t1"), timeout=5)).task_id == "t1"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetTask(orchestrator_pb2.GetTaskRequest(task_id="missing"), timeout=5)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        rebuilt = errors.from_rpc_error(caught.value)
        assert isinstance(rebuilt, errors.NotFound) and "missing" in rebuilt.message
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetTask(orchestrator_pb2.GetTaskRequest(task_id="boom"), timeout=5)
        assert isinstance(errors.from_rpc_error(caught.value), errors.InternalError)
        assert "bug" not in (caught.value.details() or "")
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        runtime.readiness.shutting_down = True
        await runtime.readiness.evaluate()
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await channel.close()
        await runtime.shutdown()


async def test_a_service_channel_sends_the_ids_and_raises_the_peers_facemint_error() -> None:
    runtime = ServiceRuntime("demo", ServiceSettings())
    await start_grpc_server(
        runtime,
        lambda s: orchestrator_pb2_grpc.add_TaskServiceServicer_to_server(_Tasks(), s),
        ["facemint.orchestrator.v1.TaskService"],
    )
    try:
        async with open_channel(f"127.0.0.1:{runtime.grpc_port}") as channel:
            stub = orchestrator_pb2_grpc.TaskServiceStub(channel)
            request_id_var.set("req_abc")
            task_id_var.set("task_xyz")
            seen = await stub.GetTask(orchestrator_pb2.GetTaskRequest(task_id="ids"), timeout=5)
            assert (seen.task_id, seen.account_id) == ("task_xyz", "req_abc")
            with pytest.raises(errors.NotFound, match="task missing does not exist"):
                await stub.GetTask(orchestrator_pb2.GetTaskRequest(task_id="missing"), timeout=5)
            with pytest.raises(errors.InternalError, match="internal error"):
                await stub.GetTask(orchestrator_pb2.GetTaskRequest(task_id="boom"), timeout=5)
    finally:
        await runtime.shutdown()


async def test_pull_worker_acks_retries_and_terms_poison(nats_server) -> None:  # type: ignore[no-untyped-def]
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    stream = f"T{time.monotonic_ns()}"
    await ensure_stream(js, stream, [f"{stream}.>"], work_queue=True)
    await ensure_stream(js, stream, [f"{stream}.>"], work_queue=True)  # idempotent
    await ensure_pull_consumer(js, stream, "w", ack_wait_seconds=2, max_deliver=3)
    await ensure_pull_consumer(js, stream, "w", ack_wait_seconds=2, max_deliver=3)
    seen: dict[str, int] = {}
    poisoned: list[str] = []
    done = asyncio.Event()

    async def handler(msg) -> None:  # type: ignore[no-untyped-def]
        body = msg.data.decode()
        seen[body] = seen.get(body, 0) + 1
        if body == "flaky" and seen[body] < 2:
            raise Retry("try again", delay=0.1)
        if body == "poison":
            raise Poison("never")
        if body == "always-fails":
            raise Retry("still failing", delay=0.1)
        if len(poisoned) == 2 and seen.get("ok") and seen.get("flaky") == 2:
            done.set()

    async def on_poison(msg, reason: str) -> None:  # type: ignore[no-untyped-def]
        poisoned.append(msg.data.decode())
        if len(poisoned) == 2 and seen.get("ok") and seen.get("flaky") == 2:
            done.set()

    worker = PullWorker(js, stream, "w", handler, concurrency=2, ack_wait_seconds=2, max_deliver=3, on_poison=on_poison)
    worker.start()
    for body in ("ok", "flaky", "poison", "always-fails"):
        await publish(js, f"{stream}.job", body.encode(), msg_id=body)
    await publish(js, f"{stream}.job", b"ok", msg_id="ok")  # de-duplicated by Nats-Msg-Id
    await asyncio.wait_for(done.wait(), 20)
    await worker.stop(2)
    assert seen["ok"] == 1 and seen["flaky"] == 2 and seen["poison"] == 1 and seen["always-fails"] == 3
    assert sorted(poisoned) == ["always-fails", "poison"]
    for _ in range(50):  # acks and terms are asynchronous: give the server a moment
        if (await js.stream_info(stream)).state.messages == 0:
            break
        await asyncio.sleep(0.05)
    assert (await js.stream_info(stream)).state.messages == 0  # work queue: acked and termed messages are gone
    labels = {"stream": stream, "consumer": "w"}
    assert REGISTRY.get_sample_value("facemint_jetstream_terminated_messages_total", labels) == 2
    assert REGISTRY.get_sample_value("facemint_jetstream_consumer_pending_messages", labels) is not None
    await nc.close()


async def test_migrations_apply_once_and_refuse_an_edited_file(postgres_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    admin = await asyncpg.connect(postgres_server.dsn)
    name = f"m{time.monotonic_ns()}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (x int);")
    (tmp_path / "0002_b.sql").write_text("CREATE TABLE b (y int);")
    conn = await asyncpg.connect(postgres_server.dsn.rsplit("/", 1)[0] + f"/{name}")
    try:
        assert await apply_migrations(conn, tmp_path) == ["0001", "0002"]
        assert await apply_migrations(conn, tmp_path) == []
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == ["0001", "0002"]
        (tmp_path / "0002_b.sql").write_text("CREATE TABLE b (y bigint);")
        with pytest.raises(RuntimeError, match="0002_b.sql changed"):
            await apply_migrations(conn, tmp_path)
    finally:
        await conn.close()


def test_sigterm_marks_not_ready_then_finishes_in_flight_work(tmp_path: Path) -> None:
    """A real service process: SIGTERM makes /readyz 503 at once, lets the stop hook finish, then exits 0."""
    port = free_port()
    marker = tmp_path / "finished"
    script = textwrap.dedent(
        f"""
        import asyncio
        from pathlib import Path
        from facemint_core.lifecycle import run_service
        from facemint_core.settings import ServiceSettings, HttpSettings

        async def setup(runtime):
            async def slow_stop(grace):
                await asyncio.sleep(1.0)
                Path({str(marker)!r}).write_text("done")
            runtime.on_stop("in-flight", slow_stop)

        s = ServiceSettings(http=HttpSettings(port={port}), shutdown_grace_seconds=5)
        run_service("demo", s, setup)
        """
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
                        assert json.load(resp)["status"] == "ready"
                        break
                except OSError:
                    time.sleep(0.1)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as resp:
                assert b"python_info" in resp.read()
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(15) == 0
            assert marker.read_text() == "done"
            logs = [json.loads(line) for line in proc.stdout.read().decode().splitlines() if line.startswith("{")]  # type: ignore[union-attr]
            messages = [entry["message"] for entry in logs]
            assert "shutdown requested" in messages and messages[-1] == "stopped"
        finally:
            if proc.poll() is None:
                proc.kill()


async def test_pooled_connections_skip_the_reset_query_but_never_keep_an_open_transaction(postgres_server) -> None:  # type: ignore[no-untyped-def]
    from facemint_core.db import create_pool
    from facemint_core.settings import DatabaseSettings

    pool = await create_pool(DatabaseSettings(dsn=postgres_server.dsn, min_pool_size=1, max_pool_size=1))
    try:
        conn = await pool.acquire()
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        tx = conn.transaction()
        await tx.start()  # an unmanaged transaction left open, as an error path might
        await conn.execute("CREATE TEMP TABLE left_behind (x int) ON COMMIT DROP")
        await pool.release(conn)
        async with pool.acquire() as again:
            assert await again.fetchval("SELECT pg_backend_pid()") == backend  # same session, no reconnect
            assert not again.is_in_transaction()
            assert await again.fetchval("SELECT to_regclass('pg_temp.left_behind')") is None  # rolled back
            await again.execute("SET application_name = 'kept'")  # session state is not reset: none may be set
        async with pool.acquire() as third:
            assert await third.fetchval("SHOW application_name") == "kept"
    finally:
        await pool.close()


async def test_streams_keep_three_replicas_when_a_service_restarts_with_the_default(tmp_path: Path) -> None:
    """On a 3-node cluster, streams created R3 stay R3 when a service starts again with the default setting (1)."""
    cluster = NatsCluster(tmp_path)
    cluster.start()
    nc = await connect(NatsSettings(url=cluster.url), "test")
    try:
        js = nc.jetstream()
        await streams.ensure_jobs_stream(js, replicas=3)
        await streams.ensure_events_stream(js, replicas=3)
        await streams.ensure_jobs_stream(js)  # what a restarted orchestrator without the setting does
        await streams.ensure_events_stream(js)
        for name in (streams.JOBS_STREAM, streams.EVENTS_STREAM):
            info = await js.stream_info(name)
            assert info.config.num_replicas == 3
            assert info.cluster is not None and len(info.cluster.replicas or []) == 2  # the leader plus two
    finally:
        await nc.close()
        cluster.stop()


def _tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it (openssl), as (ca, cert, key)."""
    ca, ca_key, cert, key, csr = (folder / n for n in ("ca.pem", "ca.key", "server.pem", "server.key", "server.csr"))
    ext = folder / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    for argv in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=facemint-test-ca",
         "-keyout", str(ca_key), "-out", str(ca)],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr)],
        ["x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "1",
         "-extfile", str(ext), "-out", str(cert)],
    ):  # fmt: skip
        subprocess.run(["openssl", *argv], check=True, capture_output=True)
    return ca, cert, key


def test_spans_reach_the_collector_over_tls_with_the_configured_headers(tmp_path: Path) -> None:
    ca, cert, key = _tls_files(tmp_path)
    receiver = OtlpReceiver(tls=(key.read_bytes(), cert.read_bytes()))
    # Tracing is set up once per process (a global provider): a child process does it, as a service would.
    script = textwrap.dedent(f"""
        from pathlib import Path
        from facemint_core import tracing
        from facemint_core.settings import TracingSettings
        settings = TracingSettings(otlp_endpoint="127.0.0.1:{receiver.port}", tls_ca_file=Path({str(ca)!r}),
                                   headers={{"x-api-key": "secret-1"}}, sample_ratio=1.0)
        provider = tracing.setup_tracing("tls-check", settings)
        with tracing.span("over tls"):
            pass
        provider.shutdown()
    """)
    try:
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60, capture_output=True)
    finally:
        receiver.close()
    assert [(s["service"], s["name"]) for s in receiver.spans] == [("tls-check", "over tls")]
    assert receiver.metadata[0]["x-api-key"] == "secret-1"


async def test_nats_connection_uses_tls_verified_against_the_configured_ca(tmp_path: Path) -> None:
    ca, cert, key = _tls_files(tmp_path)
    port = free_port()
    nats_server = str(Path(sys.executable).parent / "nats-server")
    argv = [nats_server, "-a", "127.0.0.1", "-p", str(port), "--tls", "--tlscert", str(cert), "--tlskey", str(key)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.to_thread(wait_until, lambda: port_open(port), 20, "NATS with TLS")
        url = f"tls://127.0.0.1:{port}"
        nc = await connect(NatsSettings(url=url, tls_ca_file=ca), "test")
        try:
            await nc.publish("facemint.test", b"over tls")
            await nc.flush(timeout=5)
            assert nc.is_connected
        finally:
            await nc.close()
        with pytest.raises(ssl.SSLCertVerificationError):  # the server's certificate is unknown without the CA
            await asyncio.wait_for(
                nats.connect(url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False), 10
            )
    finally:
        server.kill()
        server.wait(5)
