"""Webhook dispatcher benchmark: sustained deliveries/s to a local receiver, and lag from terminal state to attempt.

Starts a real PostgreSQL, NATS JetStream, the dispatcher (``python -m facemint_webhook_dispatcher``) and a
receiver (uvicorn, in its own process) on 127.0.0.1, then publishes ``TaskEvent``s the way the orchestrator does:

1. **steady**: a fixed rate (``--rate`` events/s for ``--duration`` s): lag percentiles, the target is p99 <= 1 s;
2. **burst**: ``--burst`` events published at once: deliveries/s sustained until the backlog is gone.

Lag is measured twice: to the first attempt (the claim's database time minus the event's ``occurred_at``) and to
the receiver (arrival time at the receiver minus ``occurred_at``). Run: ``python -m bench.webhooks``; the table is
printed and written to ``bench/results/webhooks-<date>.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import nats

from bench.common import fmt, machine, machine_line, markdown_table, now, write_results
from facemint.common.v1 import common_pb2
from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core import streams
from facemint_core.jetstream import publish
from facemint_core.schemas import migrate_all, service_dsn
from facemint_local.procs import ManagedProcess, free_port, port_open, wait_until
from facemint_local.servers import NatsServer, PostgresServer

TARGET_P99_SECONDS = 1.0
RESULT = {"faces": [{"bbox": [120.5, 80.25, 64.0, 64.0], "confidence": 0.98, "attributes": {"age": 31}}] * 8}


def receiver_main(port: int, out: Path) -> None:
    """Run the receiver: answers 200 at once and appends ``<delivery id> <arrival unix time>`` per request."""
    import uvicorn

    log = open(out, "a", buffering=1)  # noqa: SIM115 - open for the process's lifetime

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        arrived = time.time()
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        delivery = dict(scope["headers"]).get(b"x-facemint-delivery", b"").decode()
        log.write(f"{delivery} {arrived:.6f}\n")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50, p95, p99 and max of a sample (None when empty)."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": statistics.median(ordered), "p95": pick(0.95), "p99": pick(0.99), "max": ordered[-1]}


class Bench:
    """The servers, the dispatcher and the receiver of one run."""

    def __init__(self, workdir: Path, args: argparse.Namespace) -> None:
        self.workdir = workdir
        self.args = args
        self.pg = PostgresServer(workdir / "pg")
        self.nats = NatsServer(workdir / "nats")
        self.receiver_port = free_port()
        self.receiver_log = workdir / "received.txt"
        self.procs: list[ManagedProcess] = []
        self.dsn = ""
        self.account_id = "acc_bench"

    def start(self) -> None:
        """Start PostgreSQL, NATS, the receiver and the dispatcher."""
        self.pg.start()
        self.nats.start()
        self.dsn = self.pg.dsn + "?options=-csearch_path%3Dwebhook"  # the administrator, in the dispatcher's schema
        asyncio.run(self._prepare())
        base = {k: v for k, v in os.environ.items() if not k.startswith("FACEMINT_")}
        receiver = ManagedProcess(
            "receiver",
            [sys.executable, "-m", "bench.webhooks", "--receiver", str(self.receiver_port), str(self.receiver_log)],
            self.workdir / "receiver.log",
            env=base,
        )
        receiver.start()
        self.procs.append(receiver)
        wait_until(lambda: port_open(self.receiver_port), 30, "receiver")
        http_port = free_port()
        dispatcher = ManagedProcess(
            "webhook-dispatcher",
            [sys.executable, "-m", "facemint_webhook_dispatcher"],
            self.workdir / "dispatcher.log",
            env=base
            | {
                "FACEMINT_WEBHOOK_DISPATCHER_DATABASE__DSN": service_dsn(self.dsn, "webhook-dispatcher"),
                "FACEMINT_WEBHOOK_DISPATCHER_DATABASE__MAX_POOL_SIZE": "20",
                "FACEMINT_WEBHOOK_DISPATCHER_NATS__URL": self.nats.url,
                "FACEMINT_WEBHOOK_DISPATCHER_GRPC__PORT": str(free_port()),
                "FACEMINT_WEBHOOK_DISPATCHER_HTTP__PORT": str(http_port),
                "FACEMINT_WEBHOOK_DISPATCHER_ALLOW_HTTP": "true",
                "FACEMINT_WEBHOOK_DISPATCHER_ALLOW_CIDRS": '["127.0.0.1/32"]',
                "FACEMINT_WEBHOOK_DISPATCHER_CONCURRENCY": str(self.args.concurrency),
                "FACEMINT_WEBHOOK_DISPATCHER_EVENTS__CONCURRENCY": str(self.args.event_concurrency),
                "FACEMINT_WEBHOOK_DISPATCHER_LOG__LEVEL": "WARNING",
            },
        )
        dispatcher.start()
        self.procs.append(dispatcher)
        wait_until(lambda: port_open(http_port), 60, "webhook dispatcher")

    async def _prepare(self) -> None:
        await migrate_all(self.pg.dsn)
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                "INSERT INTO webhook_secrets (account_id, secret) VALUES ($1, $2)",
                self.account_id,
                "0" * 64,
            )
        finally:
            await conn.close()

    def stop(self) -> None:
        """Stop everything (by PID)."""
        for proc in reversed(self.procs):
            proc.stop(10)
        self.nats.stop()
        self.pg.stop()

    async def run_phase(self, name: str, count: int, rate: float | None) -> dict[str, Any]:
        """Publish ``count`` events (at ``rate``/s, or all at once) and wait until every one is delivered."""
        nc = await nats.connect(self.nats.url)
        js = nc.jetstream()
        await streams.ensure_events_stream(js)
        url = f"http://127.0.0.1:{self.receiver_port}/hook"
        cpu_before = self.dispatcher_cpu_seconds()
        start = time.time()
        pending: list[asyncio.Future[Any]] = []
        for i in range(count):
            if rate:
                delay = start + i / rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            pending.append(asyncio.ensure_future(self._publish(js, url, f"{name}-{i}")))
            if len(pending) >= 200:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        published = time.time()
        conn = await asyncpg.connect(self.dsn)
        try:
            while True:
                done = await conn.fetchval(
                    "SELECT count(*) FROM webhook_deliveries WHERE task_id LIKE $1 AND state = 'delivered'",
                    f"task_{name}-%",
                )
                if done >= count:
                    break
                if time.time() - published > 300:
                    raise TimeoutError(f"{name}: {done}/{count} delivered after 5 minutes")
                await asyncio.sleep(0.2)
            rows = await conn.fetch(
                """SELECT d.delivery_id, extract(epoch FROM d.event_at)::float8 AS event_at,
                          extract(epoch FROM a.attempted_at)::float8 AS attempted_at
                   FROM webhook_deliveries d JOIN webhook_attempts a USING (delivery_id)
                   WHERE d.task_id LIKE $1 AND a.number = 1""",
                f"task_{name}-%",
            )
            attempts = await conn.fetchval(
                """SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d USING (delivery_id)
                   WHERE d.task_id LIKE $1""",
                f"task_{name}-%",
            )
        finally:
            await nc.close()
            await conn.close()
        cpu = self.dispatcher_cpu_seconds() - cpu_before
        arrivals = self._arrivals()
        event_at = {r["delivery_id"]: r["event_at"] for r in rows}
        received = [arrivals[d] for d in event_at if d in arrivals]
        elapsed = max(received) - start
        return {
            "phase": name,
            "events": count,
            "rate": rate,
            "attempts": attempts,
            "seconds": elapsed,
            "deliveries_per_second": count / elapsed,
            "dispatcher_cpu_ms_per_delivery": 1000 * cpu / count,
            "lag_to_attempt": percentiles([r["attempted_at"] - r["event_at"] for r in rows]),
            "lag_to_receiver": percentiles([arrivals[d] - t for d, t in event_at.items() if d in arrivals]),
        }

    async def _publish(self, js: Any, url: str, key: str) -> None:
        task_id = f"task_{key}"
        view = {"task_id": task_id, "status": "succeeded", "type": "image", "result": RESULT}
        event = orchestrator_pb2.TaskEvent(
            event="task.succeeded",
            task_id=task_id,
            account_id=self.account_id,
            status=orchestrator_pb2.TASK_STATUS_SUCCEEDED,
            callback_url=url,
            task=common_pb2.JsonDocument(json=json.dumps(view, separators=(",", ":")).encode()),
        )
        event.occurred_at.FromDatetime(datetime.now(UTC))
        await publish(js, streams.event_subject("succeeded"), event.SerializeToString(), f"{task_id}:succeeded")

    def dispatcher_cpu_seconds(self) -> float:
        """CPU time (user + system) the dispatcher process has used so far."""
        pid = self.procs[-1].pid
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _arrivals(self) -> dict[str, float]:
        first: dict[str, float] = {}
        for line in self.receiver_log.read_text().splitlines():
            delivery, at = line.split()
            first.setdefault(delivery, float(at))
        return first


def report(results: list[dict[str, Any]], args: argparse.Namespace, info: dict[str, Any]) -> str:
    """The markdown report."""
    rows = []
    for r in results:
        a, b = r["lag_to_attempt"], r["lag_to_receiver"]
        rows.append(
            [
                r["phase"],
                r["events"],
                f"{r['rate']:.0f}/s" if r["rate"] else "all at once",
                fmt(r["deliveries_per_second"], 0),
                fmt(r["dispatcher_cpu_ms_per_delivery"], 1),
                fmt(a["p50"]),
                fmt(a["p99"]),
                fmt(b["p50"]),
                fmt(b["p95"]),
                fmt(b["p99"]),
                fmt(b["max"]),
            ]
        )
    table = markdown_table(
        [
            "phase",
            "events",
            "published",
            "deliveries/s",
            "dispatcher CPU ms/delivery",
            "lag to attempt p50 (s)",
            "p99 (s)",
            "lag to receiver p50 (s)",
            "p95 (s)",
            "p99 (s)",
            "max (s)",
        ],
        rows,
    )
    verdicts = ", ".join(
        f"{r['rate']:g}/s {'met' if r['lag_to_receiver']['p99'] <= TARGET_P99_SECONDS else 'NOT met'}"
        for r in results
        if r["rate"]
    )
    return "\n".join(
        [
            "# Webhook dispatcher benchmark",
            "",
            f"- date: {now()}",
            f"- machine: {machine_line(info)}",
            f"- dispatcher: 1 process, concurrency {args.concurrency} attempts, {args.event_concurrency} event "
            "handlers; PostgreSQL, NATS JetStream and the receiver (uvicorn) on the same machine",
            "- lag: from the event's `occurred_at` (terminal state) to the first attempt's claim in the database, and"
            " to the request's arrival at the receiver",
            f"- target: p99 lag to the receiver <= {TARGET_P99_SECONDS:.0f} s at a steady rate: **{verdicts}**",
            f"- load average (1 min) at the start and the end: {args.load_before:.1f}, {os.getloadavg()[0]:.1f}",
            "",
            table,
            "",
        ]
    )


def main() -> None:
    """Parse arguments, run both phases, print and write the report."""
    if len(sys.argv) == 4 and sys.argv[1] == "--receiver":
        receiver_main(int(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description="Webhook dispatcher throughput and lag.")
    parser.add_argument("--rates", type=float, nargs="+", default=[25.0, 50.0, 100.0], help="events/s, steady phases")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of each steady phase")
    parser.add_argument("--burst", type=int, default=5000, help="events of the burst phase")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="attempts in flight (FACEMINT_WEBHOOK_DISPATCHER_CONCURRENCY)"
    )
    parser.add_argument("--event-concurrency", type=int, default=8, help="event handlers (EVENTS__CONCURRENCY)")
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    info = machine()
    with tempfile.TemporaryDirectory(prefix="fm-bench-webhooks-") as tmp:
        bench = Bench(Path(tmp), args)
        try:
            bench.start()
            results = [
                asyncio.run(bench.run_phase(f"steady-{rate:g}", int(rate * args.duration), rate)) for rate in args.rates
            ]
            results.append(asyncio.run(bench.run_phase("burst", args.burst, None)))
        finally:
            bench.stop()
    markdown = report(results, args, info)
    print(markdown)
    data = {"machine": info, "date": now(), "args": vars(args), "results": results}
    md, _ = write_results("webhooks", markdown, data)
    print(f"written: {md}")


if __name__ == "__main__":
    main()
