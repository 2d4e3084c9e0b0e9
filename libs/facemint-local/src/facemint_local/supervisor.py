"""``facemint up``: the whole platform on one machine.

Starts PostgreSQL (migrations applied), NATS JetStream, the S3 object store and the six services as child processes
on 127.0.0.1, waits until every service is ready, prints the gateway URL, the API docs URL and a development API
key, restarts a crashed server or service with backoff (a server on its own port and data directory, so that the
services reconnect to it), and stops everything on Ctrl-C or SIGTERM. All state lives in one data directory, so data
survives restarts.

With ``--replicas N`` (N > 1) it runs the design's scale-out on one machine (ADR 13): N replicas of every stateless
service (each on its own ports, reached by its callers through one gRPC target that lists them all, balanced per
call), a round-robin TCP front on the gateway's port for the gateway's replicas, one library (its vector store is
single-writer), and a 3-node NATS JetStream cluster whose streams have 3 replicas.
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

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from facemint_core.settings import load_settings
from facemint_local.natscluster import NatsCluster, NatsNode
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
    task_orchestrator: int = 50061
    media_decoder: int = 50062
    inference: int = 50063
    library: int = 50064
    webhook_dispatcher: int = 50065
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
    replicas: int = Field(default=1, ge=1, le=8)
    """Processes of each stateless service (gateway, task-orchestrator, media-decoder, inference,
    webhook-dispatcher). The library always runs once: its vector store is single-writer (ADR 13)."""
    nats_nodes: int = Field(default=0, ge=0, le=5)
    """NATS servers: one forms no cluster; several form a JetStream cluster and the streams get
    ``min(3, nodes)`` replicas. 0: one with ``replicas`` 1, three otherwise."""

    @property
    def nats_cluster_size(self) -> int:
        """The number of NATS servers to run."""
        return self.nats_nodes or (1 if self.replicas == 1 else 3)


@dataclass
class RestartState:
    """Restart bookkeeping of one supervised child: count, exponential backoff, when it may start again."""

    count: int = 0
    backoff: float = 0.5
    started_at: float = 0.0
    next_start: float = 0.0


@dataclass
class ServiceProc:
    """One supervised service process (a replica of a service, or the gateway's front)."""

    name: str
    module: str
    env: dict[str, str]
    http_port: int
    grpc_port: int
    proc: ManagedProcess | None = None
    restart: RestartState = field(default_factory=RestartState)
    args: list[str] = field(default_factory=list)


Server = PostgresServer | NatsServer | NatsNode | ObjectStore

SERVICE_ORDER = ("inference", "media-decoder", "library", "task-orchestrator", "webhook-dispatcher", "gateway")
"""The services in start order (callees first); the gateway last, so that it is stopped first."""

FRONT = "gateway-front"
"""The round-robin TCP front on the gateway's public port, when the gateway has several replicas."""

SINGLE_REPLICA = frozenset({"library"})
"""Services that run once whatever ``replicas`` says: the library's qdrant-edge store is one writer's files."""


def _port(p: int) -> int:
    return p or free_port()


@dataclass
class Platform:
    """Servers and services of one local platform."""

    settings: LocalSettings
    postgres: PostgresServer | None = None
    nats: NatsServer | None = None
    nats_cluster: NatsCluster | None = None
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
        """PostgreSQL (+ the services' roles, schemas and migrations), NATS, object store."""
        ports = self.settings.ports
        logs = self.data_dir / "logs"
        self.postgres = PostgresServer(self.data_dir / "postgres", _port(ports.postgres), log_dir=logs)
        self.postgres.start()
        log.info("PostgreSQL ready on 127.0.0.1:%s", self.postgres.port)
        from facemint_core.schemas import migrate_all

        applied = asyncio.run(migrate_all(self.postgres.dsn))
        done = [f"{svc} {', '.join(versions)}" for svc, versions in applied.items() if versions]
        log.info("migrations: %s", f"applied {'; '.join(done)}" if done else "none pending")
        if self.settings.nats_cluster_size == 1:
            self.nats = NatsServer(self.data_dir / "nats", _port(ports.nats), _port(ports.nats_monitor), log_dir=logs)
            self.nats.start()
            log.info("NATS JetStream ready on 127.0.0.1:%s", self.nats.port)
        else:
            size = self.settings.nats_cluster_size
            self.nats_cluster = NatsCluster(
                self.data_dir / "nats-cluster",
                size,
                log_dir=logs,
                ports=[ports.nats + i if ports.nats else 0 for i in range(size)],
                monitor_base=ports.nats_monitor,
            )
            self.nats_cluster.start()
            log.info("NATS JetStream cluster of %d nodes ready on %s", size, self.nats_cluster.url)
        if self.settings.object_store:
            self.objects = ObjectStore(
                self.data_dir / "objects", _port(ports.object_store), log_dir=logs, host=self.settings.object_store_host
            )
            self.objects.start()
            log.info("object store (S3) ready on %s", self.objects.endpoint)
        self.server_restarts = {name: RestartState() for name, _ in self.servers()}

    def servers(self) -> list[tuple[str, Server]]:
        """The started servers under their ``platform.json`` names, in start order."""
        nodes: list[tuple[str, Server]] = [(n.name, n) for n in self.nats_cluster.nodes] if self.nats_cluster else []
        named: list[tuple[str, Server | None]] = [("postgres", self.postgres), ("nats", self.nats), *nodes]
        named.append(("object_store", self.objects))
        return [(name, srv) for name, srv in named if srv is not None]

    @property
    def nats_url(self) -> str:
        """The services' NATS URL: the server, or every node of the cluster."""
        if self.nats_cluster is not None:
            return self.nats_cluster.url
        assert self.nats is not None
        return self.nats.url

    @property
    def stream_replicas(self) -> int:
        """Replicas of every JetStream stream: 3 on a cluster of three or more nodes."""
        return min(3, self.settings.nats_cluster_size)

    def _secrets(self) -> None:
        secret_dir = self.data_dir / "secrets"
        secret_dir.mkdir(parents=True, exist_ok=True)
        token_file = secret_dir / "admin-token"
        if not token_file.exists():
            token_file.write_text(secrets.token_urlsafe(32))
            token_file.chmod(0o600)
        self.admin_token = token_file.read_text().strip()

    def plan_services(self) -> None:
        """Decide ports and environments of the services' replicas (and of the gateway's front, with several)."""
        assert self.postgres
        p = self.settings.ports
        replicas = self.settings.replicas
        count = {name: 1 if name in SINGLE_REPLICA else replicas for name in SERVICE_ORDER}
        ops_ports = sum(count.values())
        ops = iter(range(p.ops_base, p.ops_base + ops_ports)) if p.ops_base else None

        def ops_port() -> int:
            return next(ops) if ops else free_port()

        def ports_of(first: int, n: int) -> list[int]:
            """The first replica on the configured port, the others on free ports."""
            return [_port(first)] + [free_port() for _ in range(n - 1)]

        grpc = {
            "task-orchestrator": ports_of(p.task_orchestrator, count["task-orchestrator"]),
            "media-decoder": ports_of(p.media_decoder, count["media-decoder"]),
            "inference": ports_of(p.inference, count["inference"]),
            "library": ports_of(p.library, count["library"]),
            "webhook-dispatcher": ports_of(p.webhook_dispatcher, count["webhook-dispatcher"]),
        }
        target = {name: grpc_target(ports) for name, ports in grpc.items()}
        nats_url = self.nats_url

        def dsn(service: str) -> str:
            """The service's own role (trust authentication on this local server: no password)."""
            from facemint_core.schemas import role_dsn, schema_of

            assert self.postgres is not None
            return role_dsn(self.postgres.dsn, schema_of(service).role)

        data = self.data_dir
        common = {"PYTHONUNBUFFERED": "1"}
        nats_env = {"NATS__URL": nats_url, "NATS__STREAM_REPLICAS": str(self.stream_replicas)}

        s3: dict[str, str] = {}
        if self.objects is not None:
            s3 = {
                "OBJECT_STORE__ENDPOINT": self.objects.endpoint,
                "OBJECT_STORE__ACCESS_KEY": self.objects.access_key,
                "OBJECT_STORE__SECRET_KEY": self.objects.secret_key,
            }
        cidrs = json.dumps(self.settings.fetch_allow_cidrs)
        endpoints = list(self.settings.fetch_allow_endpoints)
        webhook_endpoints = json.dumps(endpoints)
        if self.objects is not None:
            endpoints.append(f"{self.objects.host}:{self.objects.port}")
        media_endpoints = json.dumps(endpoints)
        # Per service: module, environment prefix, settings (without the prefix).
        specs: dict[str, tuple[str, str, dict[str, str]]] = {
            "inference": ("facemint_inference", "FACEMINT_INFERENCE_", {
                "PACK": self.settings.pack,
                "MODEL_DIR": str(self.settings.model_dir.resolve()),
            }),
            "media-decoder": ("facemint_media_decoder", "FACEMINT_MEDIA_DECODER_", {
                "INFERENCE__TARGET": target["inference"],
                "FETCH__ALLOW_CIDRS": cidrs,
                "FETCH__ALLOW_ENDPOINTS": media_endpoints,
                "DECODE__SPOOL_DIR": str(data / "spool"),
                # The supervisor restarts a crashed object store, which takes 3 s on a quiet 2-core machine and more
                # than the default 8 s under load: tasks in flight wait for it instead of failing.
                "FETCH__RETRY_SECONDS": "30",
            }),
            "library": ("facemint_library", "FACEMINT_LIBRARY_", {
                "DATABASE__DSN": dsn("library"),
                "MEDIA_DECODER_TARGET": target["media-decoder"],
                "DATA_DIR": str(data / "vectors"),
            }),
            "task-orchestrator": ("facemint_task_orchestrator", "FACEMINT_TASK_ORCHESTRATOR_", {
                "DATABASE__DSN": dsn("task-orchestrator"),
                **nats_env,
                "MEDIA_DECODER_TARGET": target["media-decoder"],
                "LIBRARY_TARGET": target["library"],
            }),
            "webhook-dispatcher": ("facemint_webhook_dispatcher", "FACEMINT_WEBHOOK_DISPATCHER_", {
                "DATABASE__DSN": dsn("webhook-dispatcher"),
                **nats_env,
                "ALLOW_HTTP": "true",
                "ALLOW_CIDRS": cidrs,
                "ALLOW_ENDPOINTS": webhook_endpoints,
            }),
            "gateway": ("facemint_gateway", "FACEMINT_GATEWAY_", {
                "DATABASE__DSN": dsn("gateway"),
                "ORCHESTRATOR_TARGET": target["task-orchestrator"],
                "LIBRARY_TARGET": target["library"],
                "WEBHOOK_TARGET": target["webhook-dispatcher"],
                "ADMIN_TOKEN": self.admin_token,
                "ALLOW_HTTP_CALLBACKS": "true",
                **s3,
            }),
        }  # fmt: skip
        front_port = _port(p.gateway)
        self.services = []
        for name in SERVICE_ORDER:
            module, prefix, settings = specs[name]
            for index in range(count[name]):
                if name == "gateway":  # its HTTP port is the public API: the front's when there are several
                    http_port = front_port if count[name] == 1 else free_port()
                else:
                    http_port = ops_port()
                grpc_port = grpc[name][index] if name in grpc else 0
                env = {
                    **common,
                    f"{prefix}HTTP__HOST": "127.0.0.1",
                    f"{prefix}HTTP__PORT": str(http_port),
                    f"{prefix}GRPC__HOST": "127.0.0.1",
                    f"{prefix}GRPC__PORT": str(grpc_port),
                    **{prefix + key: value for key, value in settings.items()},
                }
                self.services.append(ServiceProc(replica_name(name, index), module, env, http_port, grpc_port))
        gateways = [s.http_port for s in self.services if s.module == "facemint_gateway"]
        if len(gateways) > 1:
            args = ["--listen", str(front_port)] + [a for port in gateways for a in ("--backend", str(port))]
            self.services.append(ServiceProc(FRONT, "facemint_local.front", common, front_port, 0, args=args))
        self.gateway_url = f"http://127.0.0.1:{front_port}"

    def _spawn(self, svc: ServiceProc) -> ManagedProcess:
        # The caller's FACEMINT_<SVC>_* variables tune services; the supervisor's own (ports, targets) win.
        env = dict(os.environ)
        env.update(svc.env)
        svc.proc = ManagedProcess(
            svc.name, [sys.executable, "-m", svc.module, *svc.args], self.data_dir / "logs" / f"{svc.name}.log", env=env
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
        self.dev_key = ensure_dev_key(self.gateway_url, self.admin_token, self.data_dir / "secrets" / "dev-api-key")
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
            "nats_url": self.nats_url,
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
        """Stop the gateway (its front and replicas) first, then the other services together, then the servers;
        every child is reaped."""
        entry = [s for s in self.services if s.module in ("facemint_gateway", "facemint_local.front")]
        for group in (entry, [s for s in self.services if s not in entry]):  # first no new work comes in
            procs = [s.proc for s in group if s.proc is not None]
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.stop(self.settings.grace_seconds)
        servers = [srv for name, srv in self.servers() if name != "postgres" and srv.proc is not None]
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
        procs = [s.proc for s in self.services] + [srv.proc for _, srv in self.servers()]
        return [p.pid for p in procs if p is not None and p.pid is not None and p.alive()]


def grpc_target(ports: list[int]) -> str:
    """The gRPC target of a service's replicas: ``127.0.0.1:A``, or ``ipv4:127.0.0.1:A,127.0.0.1:B`` for several
    (the channels balance calls over the addresses: ``facemint_core.grpcutil``)."""
    if len(ports) == 1:
        return f"127.0.0.1:{ports[0]}"
    return "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)


def replica_name(service: str, index: int) -> str:
    """A replica's name in logs and ``platform.json``: the service's own for the first, ``<service>-<n>`` after."""
    return service if index == 0 else f"{service}-{index + 1}"


def svc_ready(svc: ServiceProc) -> bool:
    """True when the service answers 200 on /readyz."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{svc.http_port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


DEV_ACCOUNT_NAME = "Development"


def ensure_dev_key(gateway_url: str, admin_token: str, key_file: Path) -> str:
    """Create the development account and API key through the admin API on first start; return the raw key (kept in
    the data dir). A kept key that no longer works is replaced by a new key of the same account."""
    import httpx

    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        if key_file.exists():
            raw = key_file.read_text().strip()
            if client.get("/v1/usage", headers={"x-api-key": raw}).status_code == 200:
                return raw
        admin = {"authorization": f"Bearer {admin_token}"}
        accounts = client.get("/admin/v1/accounts", params={"limit": 500}, headers=admin)
        accounts.raise_for_status()
        dev = [a for a in accounts.json()["accounts"] if a["name"] == DEV_ACCOUNT_NAME]
        if dev:
            made = client.post(f"/admin/v1/accounts/{dev[0]['account_id']}/keys", json={"name": "dev"}, headers=admin)
            made.raise_for_status()
            raw = made.json()["key"]
        else:
            made = client.post("/admin/v1/accounts", json={"name": DEV_ACCOUNT_NAME, "plan": "scale"}, headers=admin)
            made.raise_for_status()
            raw = made.json()["api_key"]["key"]
    key_file.write_text(raw)
    key_file.chmod(0o600)
    return raw


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
        "--replicas",
        type=int,
        metavar="N",
        help="processes of each stateless service (default 1); with N > 1 also a 3-node NATS cluster with R3 streams",
    )
    parser.add_argument("--nats-nodes", type=int, metavar="N", help="NATS servers (default: 1, or 3 with --replicas)")
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
    if args.replicas is not None or args.nats_nodes is not None:  # validated as the environment's values are
        overrides = {"replicas": args.replicas, "nats_nodes": args.nats_nodes}
        updates = {key: value for key, value in overrides.items() if value is not None}
        try:
            settings = LocalSettings.model_validate({**settings.model_dump(), **updates})
        except ValidationError as exc:
            first = exc.errors()[0]
            parser.error(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}")
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
