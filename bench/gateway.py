"""Gateway throughput and latency of authenticated requests with rate limiting on (``python -m bench.gateway``).

Starts PostgreSQL, NATS, the task orchestrator and one gateway process on 127.0.0.1, creates an account on a
``bench`` plan whose request limit is far above the load (so every request is counted in PostgreSQL but none is
refused), inserts a succeeded task, then runs ``wrk`` (Debian package ``wrk``) in its own process against:

- ``GET /v1/task/{id}``: authentication (key cache), the rate-limit counter upsert, the orchestrator's gRPC
  ``GetTask`` (a PostgreSQL read) and the public JSON view;
- ``GET /v1/usage``: authentication, the counter upsert and one usage query (no orchestrator).

After each run it checks that the counter rows account for every request wrk made, and records the CPU time each
process spent per request. For scale, the same wrk run also measures a trivial Starlette app (one JSON route, no
middleware, no database) on the same machine at the same time. Writes ``bench/results/gateway-<date>.md`` and
``.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.common import REPO_ROOT, machine, machine_line, markdown_table, now, write_results
from facemint_core.schemas import migrate_all, service_dsn
from facemint_local.procs import ManagedProcess, free_port, wait_until
from facemint_local.servers import NatsServer, PostgresServer

TARGET_RPS = 2_000
TARGET_P99_MS = 50.0
BENCH_PLAN = {"bench": {"requests_per_minute": 1_000_000_000, "concurrent_tasks": 1_000, "monthly_minutes": 10**9}}
RESULT = {
    "frames": [
        {
            "timestamp": 0.0,
            "faces": [{"face_id": "f_01", "bbox": [420, 180, 260, 260], "confidence": 0.98, "attributes": {"age": 28}}],
        }
    ],
    "face_tracks": [],
    "summary": {"total_faces": 1, "unique_identities": 0},
}
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def baseline_app() -> Starlette:
    """The yardstick: a Starlette app with one JSON route (``uvicorn --factory bench.gateway:baseline_app``)."""

    async def hello(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/v1/hello", hello)])


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _hello(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/hello", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _env(**values: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FACEMINT_")} | values


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/s, latency percentiles (ms), request and error counts from ``wrk --latency`` output."""
    percentiles = {f"p{m.group(1)}": _ms(m.group(2)) for m in re.finditer(r"^\s+(\d+)%\s+(\S+)$", output, re.M)}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    if not rps or not total:
        raise RuntimeError(f"cannot parse wrk output:\n{output}")
    return {
        "requests_per_second": float(rps.group(1)),
        "requests": int(total.group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
        **percentiles,
    }


def run_wrk(url: str, key: str, seconds: int, connections: int, threads: int, workdir: Path) -> dict[str, Any]:
    """One wrk run with the API key set by a Lua script."""
    script = workdir / "auth.lua"
    script.write_text(f'wrk.method = "GET"\nwrk.headers["x-api-key"] = "{key}"\n')
    script.chmod(0o600)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
    return parse_wrk(done.stdout)


async def _prepare(dsn: str, gateway: str, admin_token: str) -> tuple[str, str, str]:
    """Create the bench account and a succeeded task; returns (key, key id, task id)."""
    import httpx

    async with httpx.AsyncClient(base_url=gateway, headers={"Authorization": f"Bearer {admin_token}"}) as admin:
        resp = await admin.post("/admin/v1/accounts", json={"name": "bench", "plan": "bench"})
        resp.raise_for_status()
    doc = resp.json()
    account, key = doc["account"]["account_id"], doc["api_key"]["key"]
    task_id = "task_bench0000000000000001"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """INSERT INTO tasks (task_id, account_id, type, status, spec, media, result, completed_at,
                                  event_published)
               VALUES ($1, $2, 'image', 'succeeded', $3, $4, $5, now(), true)""",
            task_id,
            account,
            json.dumps({"type": "image", "media_url": "https://example.com/a.jpg", "attributes": ["age"]}),
            json.dumps({"duration": None, "width": 1920, "height": 1080}),
            json.dumps(RESULT),
        )
    finally:
        await conn.close()
    return key, doc["api_key"]["key_id"], task_id


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes and their children (PostgreSQL's backends)."""
    total = 0.0
    for pid in pids:
        proc = psutil.Process(pid)
        for p in [proc, *proc.children(recursive=True)]:
            try:
                times = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
    return total


async def _counted(dsn: str, key_id: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval("SELECT coalesce(sum(count), 0) FROM rate_limit_counters WHERE key_id = $1", key_id)
        )
    finally:
        await conn.close()


def measure(url: str, key: str, cpu_of: dict[str, list[int]], args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """A 3 s warm-up, then the measured wrk run; adds each watched process's CPU milliseconds per request."""
    run_wrk(url, key, 3, args.connections, args.threads, work)
    before = {name: _cpu_seconds(pids) for name, pids in cpu_of.items()}
    result = run_wrk(url, key, args.seconds, args.connections, args.threads, work)
    for name, pids in cpu_of.items():
        result[f"{name}_cpu_ms_per_request"] = 1000 * (_cpu_seconds(pids) - before[name]) / max(1, result["requests"])
    result["load_average_1m"] = os.getloadavg()[0]
    return result


def _service(name: str, module: str, work: Path, **env: str) -> ManagedProcess:
    proc = ManagedProcess(name, [sys.executable, "-m", module], work / f"{name}.log", env=_env(**env), cwd=REPO_ROOT)
    proc.start()
    return proc


def run(args: argparse.Namespace, work: Path) -> dict[str, dict[str, Any]]:
    """Start everything, run the three measurements, stop everything."""
    postgres = PostgresServer(work / "postgres")
    nats = NatsServer(work / "nats")
    procs: list[ManagedProcess] = []
    runs: dict[str, dict[str, Any]] = {}
    try:
        postgres.start()
        nats.start()
        asyncio.run(migrate_all(postgres.dsn))
        # The administrator's view of the two schemas the bench sets up rows in.
        admin_dsn = postgres.dsn + "?options=-csearch_path%3Dorchestrator%2Cgateway"
        grpc_port, orch_http, gw_port, base_port, nowhere = (free_port() for _ in range(5))
        hooks_grpc, hooks_http = free_port(), free_port()
        dispatcher = _service(
            "webhook-dispatcher",
            "facemint_webhook_dispatcher",
            work,
            FACEMINT_WEBHOOK_DISPATCHER_DATABASE__DSN=service_dsn(postgres.dsn, "webhook-dispatcher"),
            FACEMINT_WEBHOOK_DISPATCHER_NATS__URL=nats.url,
            FACEMINT_WEBHOOK_DISPATCHER_GRPC__PORT=str(hooks_grpc),
            FACEMINT_WEBHOOK_DISPATCHER_HTTP__PORT=str(hooks_http),
        )
        procs.append(dispatcher)  # it owns webhook secrets: the admin API asks it for the bench account's
        wait_until(lambda: _ready(hooks_http), 60, "webhook-dispatcher", interval=0.2)
        orchestrator = _service(
            "orchestrator",
            "facemint_task_orchestrator",
            work,
            FACEMINT_TASK_ORCHESTRATOR_DATABASE__DSN=service_dsn(postgres.dsn, "task-orchestrator"),
            FACEMINT_TASK_ORCHESTRATOR_NATS__URL=nats.url,
            FACEMINT_TASK_ORCHESTRATOR_GRPC__PORT=str(grpc_port),
            FACEMINT_TASK_ORCHESTRATOR_HTTP__PORT=str(orch_http),
            FACEMINT_TASK_ORCHESTRATOR_MEDIA_DECODER_TARGET=f"127.0.0.1:{nowhere}",
            FACEMINT_TASK_ORCHESTRATOR_LIBRARY_TARGET=f"127.0.0.1:{nowhere}",
        )
        procs.append(orchestrator)
        wait_until(lambda: _ready(orch_http), 60, "orchestrator", interval=0.2)
        admin_token = os.urandom(16).hex()
        gateway = _service(
            "gateway",
            "facemint_gateway",
            work,
            FACEMINT_GATEWAY_HTTP__PORT=str(gw_port),
            FACEMINT_GATEWAY_DATABASE__DSN=service_dsn(postgres.dsn, "gateway"),
            FACEMINT_GATEWAY_WEBHOOK_TARGET=f"127.0.0.1:{hooks_grpc}",
            FACEMINT_GATEWAY_ADMIN_TOKEN=admin_token,
            FACEMINT_GATEWAY_ORCHESTRATOR_TARGET=f"127.0.0.1:{grpc_port}",
            FACEMINT_GATEWAY_LOG__LEVEL="WARNING",
            FACEMINT_GATEWAY_ACCOUNTS__PLANS=json.dumps(BENCH_PLAN),
        )
        procs.append(gateway)
        wait_until(lambda: _ready(gw_port), 60, "gateway", interval=0.2)
        base = f"http://127.0.0.1:{gw_port}"
        key, key_id, task_id = asyncio.run(_prepare(admin_dsn, base, admin_token))

        baseline = ManagedProcess(
            "baseline",
            [sys.executable, "-m", "uvicorn", "--factory", "bench.gateway:baseline_app", "--port", str(base_port),
             "--no-access-log", "--log-level", "warning"],
            work / "baseline.log",
            env=_env(),
            cwd=REPO_ROOT,
        )  # fmt: skip
        procs.append(baseline)
        baseline.start()
        wait_until(lambda: _hello(base_port), 30, "baseline app", interval=0.2)
        assert baseline.pid is not None
        runs["trivial Starlette app (yardstick)"] = measure(
            f"http://127.0.0.1:{base_port}/v1/hello", key, {"gateway": [baseline.pid]}, args, work
        )
        baseline.stop()

        assert gateway.pid and orchestrator.pid and postgres.proc and postgres.proc.pid
        cpu_of = {"gateway": [gateway.pid], "orchestrator": [orchestrator.pid], "postgres": [postgres.proc.pid]}
        for name, path in (("GET /v1/task/{id}", f"/v1/task/{task_id}"), ("GET /v1/usage", "/v1/usage")):
            counted_before = asyncio.run(_counted(admin_dsn, key_id))
            result = measure(base + path, key, cpu_of, args, work)
            result["counted_by_limiter"] = asyncio.run(_counted(admin_dsn, key_id)) - counted_before
            runs[name] = result
            print(f"{name}: {result['requests_per_second']:.0f} req/s, p99 {result['p99']:.1f} ms", flush=True)
    finally:
        for proc in reversed(procs):
            proc.stop()
        nats.stop()
        postgres.stop()
    return runs


def report(args: argparse.Namespace, runs: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The markdown report and the JSON data."""
    info = machine()
    data = {"date": now(), "machine": info, "settings": vars(args), "runs": runs}

    def cpu(r: dict[str, Any], name: str) -> str:
        value = r.get(f"{name}_cpu_ms_per_request")
        return "-" if value is None else f"{value:.3f}"

    rows = [
        [
            name,
            f"{r['requests_per_second']:.0f}",
            f"{r['p50']:.2f}",
            f"{r['p99']:.2f}",
            cpu(r, "gateway"),
            cpu(r, "orchestrator"),
            cpu(r, "postgres"),
            r["requests"],
            r.get("counted_by_limiter", "-"),
            r["non_2xx"],
            f"{r['load_average_1m']:.1f}",
        ]
        for name, r in runs.items()
    ]
    table = markdown_table(
        ["route", "req/s", "p50 ms", "p99 ms", "gateway CPU ms/req", "orchestrator CPU ms/req",
         "PostgreSQL CPU ms/req", "requests (wrk)", "counted by the limiter", "non-2xx", "load avg (1 min)"],
        rows,
    )  # fmt: skip
    markdown = f"""# Gateway benchmark ({data["date"]})

Machine: {machine_line(info)}.

`python -m bench.gateway --seconds {args.seconds} --connections {args.connections} --threads {args.threads}`:
one gateway process (uvicorn, uvloop, httptools), the task orchestrator, PostgreSQL 16 and NATS on this machine;
`wrk` ({args.threads} thread, {args.connections} connections, {args.seconds} s after a 3 s warm-up) in a second
process on loopback, sending `x-api-key` from a Lua script. Rate limiting is on: every request increments its
key's counter in PostgreSQL (the bench plan's limit is far above the load, so nothing is refused); "counted by
the limiter" is the growth of the key's counter rows during the warm-up and the run, which covers every request
wrk made. CPU columns: CPU time of each process (PostgreSQL: all its backends) divided by wrk's request count.
The first row is the yardstick: a trivial Starlette app with one JSON route, measured the same way just before.

Target: >= {TARGET_RPS} req/s with p99 < {TARGET_P99_MS:.0f} ms.

{table}

Every process shares the machine's cores: wrk, the gateway, the orchestrator and PostgreSQL's backends, and
whatever else runs on the machine (see the load average).
"""
    return markdown, data


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its results."""
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15, help="duration of each measured wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="facemint-bench-gateway-") as tmp:
        runs = run(args, Path(tmp))
    markdown, data = report(args, runs)
    md_path, _ = write_results("gateway", markdown, data)
    print(f"wrote {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
