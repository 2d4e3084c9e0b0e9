"""``facemint up``: the whole platform on one machine.

Starts PostgreSQL (migrations applied), NATS JetStream, the S3 object store and the six services as child processes
on 127.0.0.1, waits until every service is ready, prints the gateway URL, the API docs URL and a development API
key, restarts a crashed server or service with backoff (a server on its own port and data directory, so that the
services reconnect to it), and stops everything on Ctrl-C or SIGTERM. All state lives in one data directory, so data
survives restarts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from facemint_core.settings import load_settings
from facemint_local.observability import LocalPrometheus, service_targets
from facemint_local.procs import ManagedProcess, free_port
from facemint_local.servers import NatsServer, ObjectStore, PostgresServer

log = logging.getLogger("facemint.up")


class Ports(BaseModel):
    """Listening ports on 127.0.0.1 (0 = pick a free port at start)."""

    gateway: int = 8080
    postgres: int = 54329
    nats: int = 4222
    nats_monitor: int = 8222
    object_store: int = 8333
    orchestrator: int = 50061
    media_decoder: int = 50062
    inference: int = 50063
    library: int = 50064
    webhook: int = 50065
    ops_base: int = 9091
    prometheus: int = 9090


class LocalSettings(BaseSettings):
    """Settings of the local platform (environment prefix ``FACEMINT_LOCAL_``)."""

    model_config = SettingsConfigDict(env_prefix="FACEMINT_LOCAL_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Path("var")
    ports: Ports = Ports()
    pack: str = Field(default="open", pattern="^(open|insightface)$")
    model_dir: Path = Path("triton-models")
    ready_timeout_seconds: float = Field(default=120.0, gt=0)
    grace_seconds: float = Field(default=10.0, ge=0)
    max_restart_backoff_seconds: float = Field(default=30.0, gt=0)
    object_store: bool = True
    observability: bool = False
    """Also start Prometheus (``--observability``, :mod:`facemint_local.observability`) with the rules files of
    ``rules_dir``, the chart's (relative to the working directory, like ``model_dir``)."""
    rules_dir: Path = Path("deploy/helm/facemint/files/alerts")
    object_store_host: str = "127.0.0.1"
    fetch_allow_cidrs: list[str] = []
    """Networks the media-decoder and webhook-dispatcher may reach although private, e.g. ``["127.0.0.2/32"]`` for
    a local media server or webhook receiver. None by default: all of loopback would open every internal port of
    this machine (the object store's filer, NATS monitoring, the services' ops ports) to media and webhook URLs."""
    fetch_allow_endpoints: list[str] = []
    """Single ``address:port`` endpoints allowed likewise. The media-decoder is always allowed the object store's
    S3 endpoint (exactly that port), so that uploaded media can be fetched through their presigned URLs."""


@dataclass
class RestartState:
    """Restart bookkeeping of one supervised child: count, exponential backoff, when it may start again."""

    count: int = 0
    backoff: float = 0.5
    started_at: float = 0.0
    next_start: float = 0.0


@dataclass
class ServiceProc:
    """One supervised service process."""

    name: str
    module: str
    env: dict[str, str]
    http_port: int
    grpc_port: int
    proc: ManagedProcess | None = None
    restart: RestartState = field(default_factory=RestartState)


Server = PostgresServer | NatsServer | ObjectStore


def _port(p: int) -> int:
    return p or free_port()


@dataclass
class Platform:
    """Servers and services of one local platform."""

    settings: LocalSettings
    postgres: PostgresServer | None = None
    nats: NatsServer | None = None
    objects: ObjectStore | None = None
    services: list[ServiceProc] = field(default_factory=list)
    server_restarts: dict[str, RestartState] = field(default_factory=dict)
    dev_key: str = ""
    admin_token: str = ""
    gateway_url: str = ""
    stop_requested: threading.Event = field(default_factory=threading.Event)

    @property
    def data_dir(self) -> Path:
        """Absolute data directory."""
        return self.settings.data_dir.resolve()

    def start_servers(self) -> None:
        """PostgreSQL (+ migrations), NATS, object store."""
        ports = self.settings.ports
        logs = self.data_dir / "logs"
        self.postgres = PostgresServer(self.data_dir / "postgres", _port(ports.postgres), log_dir=logs)
        self.postgres.start()
        log.info("PostgreSQL ready on 127.0.0.1:%s", self.postgres.port)
        from facemint_core.db import migrate

        applied = asyncio.run(migrate(self.postgres.dsn))
        log.info("migrations: %s", f"applied {', '.join(applied)}" if applied else "none pending")
        self.nats = NatsServer(self.data_dir / "nats", _port(ports.nats), _port(ports.nats_monitor), log_dir=logs)
        self.nats.start()
        log.info("NATS JetStream ready on 127.0.0.1:%s", self.nats.port)
        if self.settings.object_store:
            self.objects = ObjectStore(
                self.data_dir / "objects", _port(ports.object_store), log_dir=logs, host=self.settings.object_store_host
            )
            self.objects.start()
            log.info("object store (S3) ready on %s", self.objects.endpoint)
        self.server_restarts = {name: RestartState() for name, _ in self.servers()}

    def servers(self) -> list[tuple[str, Server]]:
        """The started servers under their ``platform.json`` names, in start order."""
        named = (("postgres", self.postgres), ("nats", self.nats), ("object_store", self.objects))
        return [(name, srv) for name, srv in named if srv is not None]

    def _secrets(self) -> None:
        secret_dir = self.data_dir / "secrets"
        secret_dir.mkdir(parents=True, exist_ok=True)
        token_file = secret_dir / "admin-token"
        if not token_file.exists():
            token_file.write_text(secrets.token_urlsafe(32))
            token_file.chmod(0o600)
        self.admin_token = token_file.read_text().strip()
        assert self.postgres is not None
        self.dev_key = asyncio.run(ensure_dev_key(self.postgres.dsn, secret_dir / "dev-api-key"))

    def plan_services(self) -> None:
        """Decide ports and environments of the six services."""
        assert self.postgres and self.nats
        p = self.settings.ports
        ops = iter(range(p.ops_base, p.ops_base + 10)) if p.ops_base else None

        def ops_port() -> int:
            return next(ops) if ops else free_port()

        grpc = {
            "orchestrator": _port(p.orchestrator),
            "media_decoder": _port(p.media_decoder),
            "inference": _port(p.inference),
            "library": _port(p.library),
            "webhook": _port(p.webhook),
        }
        target = {k: f"127.0.0.1:{v}" for k, v in grpc.items()}
        dsn, nats_url = self.postgres.dsn, self.nats.url
        data = self.data_dir
        common = {"PYTHONUNBUFFERED": "1"}

        def svc(name: str, module: str, prefix: str, grpc_port: int, env: dict[str, str]) -> ServiceProc:
            http_port = ops_port() if name != "gateway" else _port(p.gateway)
            base = {
                f"{prefix}HTTP__HOST": "127.0.0.1",
                f"{prefix}HTTP__PORT": str(http_port),
                f"{prefix}GRPC__HOST": "127.0.0.1",
                f"{prefix}GRPC__PORT": str(grpc_port),
            }
            return ServiceProc(name, module, {**common, **base, **env}, http_port, grpc_port)

        s3: dict[str, str] = {}
        if self.objects is not None:
            s3 = {
                "FACEMINT_GATEWAY_OBJECT_STORE__ENDPOINT": self.objects.endpoint,
                "FACEMINT_GATEWAY_OBJECT_STORE__ACCESS_KEY": self.objects.access_key,
                "FACEMINT_GATEWAY_OBJECT_STORE__SECRET_KEY": self.objects.secret_key,
            }
        cidrs = json.dumps(self.settings.fetch_allow_cidrs)
        endpoints = list(self.settings.fetch_allow_endpoints)
        webhook_endpoints = json.dumps(endpoints)
        if self.objects is not None:
            endpoints.append(f"{self.objects.host}:{self.objects.port}")
        media_endpoints = json.dumps(endpoints)
        self.services = [
            svc("inference", "facemint_inference", "FACEMINT_INFERENCE_", grpc["inference"], {
                "FACEMINT_INFERENCE_PACK": self.settings.pack,
                "FACEMINT_INFERENCE_MODEL_DIR": str(self.settings.model_dir.resolve()),
            }),
            svc("media-decoder", "facemint_media_decoder", "FACEMINT_MEDIA_DECODER_", grpc["media_decoder"], {
                "FACEMINT_MEDIA_DECODER_INFERENCE__TARGET": target["inference"],
                "FACEMINT_MEDIA_DECODER_FETCH__ALLOW_CIDRS": cidrs,
                "FACEMINT_MEDIA_DECODER_FETCH__ALLOW_ENDPOINTS": media_endpoints,
                "FACEMINT_MEDIA_DECODER_DECODE__SPOOL_DIR": str(data / "spool"),
                # The supervisor restarts a crashed object store, which takes 3 s on a quiet 2-core machine and more
                # than the default 8 s under load: tasks in flight wait for it instead of failing.
                "FACEMINT_MEDIA_DECODER_FETCH__RETRY_SECONDS": "30",
            }),
            svc("library", "facemint_library", "FACEMINT_LIBRARY_", grpc["library"], {
                "FACEMINT_LIBRARY_DATABASE__DSN": dsn,
                "FACEMINT_LIBRARY_MEDIA_DECODER_TARGET": target["media_decoder"],
                "FACEMINT_LIBRARY_DATA_DIR": str(data / "vectors"),
            }),
            svc("task-orchestrator", "facemint_orchestrator", "FACEMINT_ORCHESTRATOR_", grpc["orchestrator"], {
                "FACEMINT_ORCHESTRATOR_DATABASE__DSN": dsn,
                "FACEMINT_ORCHESTRATOR_NATS__URL": nats_url,
                "FACEMINT_ORCHESTRATOR_MEDIA_DECODER_TARGET": target["media_decoder"],
                "FACEMINT_ORCHESTRATOR_LIBRARY_TARGET": target["library"],
            }),
            svc("webhook-dispatcher", "facemint_webhook", "FACEMINT_WEBHOOK_", grpc["webhook"], {
                "FACEMINT_WEBHOOK_DATABASE__DSN": dsn,
                "FACEMINT_WEBHOOK_NATS__URL": nats_url,
                "FACEMINT_WEBHOOK_ALLOW_HTTP": "true",
                "FACEMINT_WEBHOOK_ALLOW_CIDRS": cidrs,
                "FACEMINT_WEBHOOK_ALLOW_ENDPOINTS": webhook_endpoints,
            }),
            svc("gateway", "facemint_gateway", "FACEMINT_GATEWAY_", 0, {
                "FACEMINT_GATEWAY_DATABASE__DSN": dsn,
                "FACEMINT_GATEWAY_ORCHESTRATOR_TARGET": target["orchestrator"],
                "FACEMINT_GATEWAY_LIBRARY_TARGET": target["library"],
                "FACEMINT_GATEWAY_WEBHOOK_TARGET": target["webhook"],
                "FACEMINT_GATEWAY_ADMIN_TOKEN": self.admin_token,
                "FACEMINT_GATEWAY_ALLOW_HTTP_CALLBACKS": "true",
                **s3,
            }),
        ]  # fmt: skip
        gateway = self.services[-1]
        self.gateway_url = f"http://127.0.0.1:{gateway.http_port}"

    def _spawn(self, svc: ServiceProc) -> ManagedProcess:
        # The caller's FACEMINT_<SVC>_* variables tune services; the supervisor's own (ports, targets) win.
        env = dict(os.environ)
        env.update(svc.env)
        svc.proc = ManagedProcess(
            svc.name, [sys.executable, "-m", svc.module], self.data_dir / "logs" / f"{svc.name}.log", env=env
        )
        svc.proc.start()
        return svc.proc

    def start_services(self) -> None:
        """Start every service and wait until all report ready."""
        self._secrets()
        self.plan_services()
        for svc in self.services:
            self._spawn(svc)
            log.info("started %s (pid %s)", svc.name, svc.proc.pid if svc.proc else "?")
        deadline = time.monotonic() + self.settings.ready_timeout_seconds
        pending = {s.name for s in self.services}
        while pending and time.monotonic() < deadline:
            if self.stop_requested.is_set():
                raise InterruptedError("stop requested during start-up")
            for svc in self.services:
                if svc.name in pending and svc.proc is not None and svc.proc.alive() and svc_ready(svc):
                    pending.discard(svc.name)
                    log.info("%s ready", svc.name)
                elif svc.restart.count >= 3:
                    tail = svc.proc.tail(30) if svc.proc else ""
                    raise RuntimeError(f"{svc.name} keeps exiting during start-up:\n{tail}")
            self.supervise_once()
            time.sleep(0.2)
        if pending:
            raise TimeoutError(f"not ready after {self.settings.ready_timeout_seconds:.0f} s: {', '.join(pending)}")
        self.write_state()

    def supervise_once(self) -> None:
        """Restart servers, then services, that exited: each after exponential backoff, reaped, logged, and
        recorded in ``platform.json``. A server comes back on its own port and data directory, so that the services'
        clients reconnect to it."""
        changed = False
        for name, srv in self.servers():
            changed |= self._supervise(name, srv.proc, self.server_restarts[name], partial(self._restart, srv))
        for svc in self.services:
            changed |= self._supervise(svc.name, svc.proc, svc.restart, partial(self._spawn, svc))
        if changed:
            self.write_state()

    def _supervise(
        self, name: str, proc: ManagedProcess | None, state: RestartState, start: Callable[[], ManagedProcess]
    ) -> bool:
        """One supervision step of one child; True when it was started again."""
        now = time.monotonic()
        if proc is None or proc.alive():  # alive() polls, so an exited child is reaped at once (no zombie)
            if proc is not None and now - state.started_at > 60:
                state.backoff = 0.5
            return False
        if state.next_start == 0.0:
            state.next_start = now + state.backoff
            log.warning("%s exited with status %s; restarting in %.1f s", name, proc.returncode(), state.backoff)
            state.backoff = min(state.backoff * 2, self.settings.max_restart_backoff_seconds)
            return False
        if now < state.next_start:
            return False
        state.next_start = 0.0
        state.count += 1
        try:
            started = start()
        except (OSError, RuntimeError, TimeoutError) as exc:
            log.error("%s did not restart (restart #%d): %s", name, state.count, exc)
            return False
        state.started_at = time.monotonic()
        log.warning("%s restarted (restart #%d, pid %s)", name, state.count, started.pid)
        return True

    def _restart(self, srv: Server) -> ManagedProcess:
        """Start a server again (same port and data directory) and wait until it is ready; stop it if it is not."""
        try:
            srv.start()
        except (RuntimeError, TimeoutError):
            srv.stop(self.settings.grace_seconds)
            raise
        assert srv.proc is not None
        return srv.proc

    def write_state(self) -> None:
        """Write ``platform.json`` in the data directory: URLs, ports and PIDs of everything running."""
        servers = {
            name: {
                "pid": srv.proc.pid if srv.proc else None,
                "port": srv.port,
                "restarts": self.server_restarts[name].count,
            }
            for name, srv in self.servers()
        }
        state = {
            "gateway_url": self.gateway_url,
            "supervisor_pid": os.getpid(),
            "servers": servers,
            "services": {
                s.name: {
                    "pid": s.proc.pid if s.proc else None,
                    "http_port": s.http_port,
                    "grpc_port": s.grpc_port,
                    "restarts": s.restart.count,
                }
                for s in self.services
            },
        }
        target = self.data_dir / "platform.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(target)

    def stop(self) -> None:
        """Stop services (gateway first, then the others together), then the servers; every child is reaped."""
        procs = [s.proc for s in reversed(self.services) if s.proc is not None]
        if procs:
            procs[0].stop(self.settings.grace_seconds)  # the gateway: no new work comes in
        for proc in procs[1:]:
            proc.terminate()
        for proc in procs[1:]:
            proc.stop(self.settings.grace_seconds)
        servers = [srv for srv in (self.objects, self.nats) if srv is not None and srv.proc is not None]
        for srv in servers:
            assert srv.proc is not None
            srv.proc.terminate()
        for srv in servers:
            srv.stop(self.settings.grace_seconds)
        if self.postgres is not None:
            self.postgres.stop(self.settings.grace_seconds)
        log.info("all processes stopped")

    def child_pids(self) -> list[int]:
        """PIDs of every running child (servers and services)."""
        procs = [s.proc for s in self.services] + [
            srv.proc for srv in (self.postgres, self.nats, self.objects) if srv is not None
        ]
        return [p.pid for p in procs if p is not None and p.pid is not None and p.alive()]


def svc_ready(svc: ServiceProc) -> bool:
    """True when the service answers 200 on /readyz."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{svc.http_port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


async def ensure_dev_key(dsn: str, key_file: Path) -> str:
    """Create the development account and API key on first start; return the raw key (kept in the data dir)."""
    import asyncpg

    from facemint_core.apikeys import generate_key, hash_key

    conn = await asyncpg.connect(dsn)
    try:
        if key_file.exists():
            raw = key_file.read_text().strip()
            if await conn.fetchval("SELECT 1 FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", hash_key(raw)):
                return raw
        await conn.execute(
            """INSERT INTO accounts (account_id, name, plan, webhook_secret)
               VALUES ('acct_dev', 'Development', 'scale', $1) ON CONFLICT (account_id) DO NOTHING""",
            secrets.token_hex(32),
        )
        key = generate_key()
        await conn.execute(
            "INSERT INTO api_keys (key_id, account_id, prefix, key_hash, name) VALUES ($1, 'acct_dev', $2, $3, 'dev')",
            key.key_id,
            key.prefix,
            key.key_hash,
        )
    finally:
        await conn.close()
    key_file.write_text(key.raw)
    key_file.chmod(0o600)
    return key.raw


def start_prometheus(platform: Platform) -> LocalPrometheus:
    """Prometheus scraping every service of ``platform``, with the rules of the components it runs."""
    settings = platform.settings
    prometheus = LocalPrometheus(platform.data_dir, settings.ports.prometheus, settings.rules_dir.resolve())
    targets = service_targets((s.module, s.http_port) for s in platform.services)
    prometheus.configure(targets, {service for service, _ in targets})
    prometheus.start()
    log.info("Prometheus ready on %s", prometheus.url)
    return prometheus


def main(argv: list[str] | None = None) -> int:
    """Run the local platform until Ctrl-C / SIGTERM."""
    parser = argparse.ArgumentParser(prog="facemint up", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, help="data directory (default: FACEMINT_LOCAL_DATA_DIR or ./var)")
    parser.add_argument("--pack", choices=["open", "insightface"], help="model pack")
    parser.add_argument(
        "--observability", action="store_true", help="also start Prometheus with the alerting and SLO rules"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [facemint] %(message)s", stream=sys.stderr)
    settings = load_settings(LocalSettings)
    if args.data_dir:
        settings.data_dir = args.data_dir
    if args.pack:
        settings.pack = args.pack
    settings.observability |= args.observability
    platform = Platform(settings)
    prometheus: LocalPrometheus | None = None

    def on_signal(signum: int, _: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        platform.stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    try:
        platform.start_servers()
        platform.start_services()
        if settings.observability:
            prometheus = start_prometheus(platform)
        elapsed = time.monotonic() - started
        print(
            f"\nFacemint is ready ({elapsed:.1f} s)\n"
            f"  Gateway:  {platform.gateway_url}\n"
            f"  API docs: {platform.gateway_url}/docs\n"
            f"  Dev API key: {platform.dev_key}\n"
            f"  Data dir: {platform.data_dir}  (logs in {platform.data_dir / 'logs'})\n"
            + (f"  Prometheus: {prometheus.url}\n" if prometheus else "")
            + "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while not platform.stop_requested.wait(0.5):
            platform.supervise_once()
            if prometheus:
                prometheus.supervise_once()
    except Exception as exc:
        log.error("start-up failed: %s", exc)
        if prometheus:
            prometheus.stop()
        platform.stop()
        return 1
    if prometheus:
        prometheus.stop()
    platform.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
