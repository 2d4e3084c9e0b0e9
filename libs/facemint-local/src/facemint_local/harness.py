"""Drive the real local platform (``facemint up``) as a subprocess: for end-to-end tests and benchmarks.

Besides starting it: a media server, a webhook receiver, and :func:`kill_server_under_load`, which SIGKILLs one of
the platform's servers while tasks are in flight and measures how the platform recovers.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psutil

PORT_NAMES = (
    "gateway", "postgres", "nats", "nats_monitor", "object_store", "task_orchestrator", "media_decoder", "inference",
    "library", "webhook_dispatcher", "ops_base", "prometheus",
)  # fmt: skip


@dataclass
class RunningPlatform:
    """A running ``facemint up`` and what it wrote to its data directory."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        """Base URL of the public API."""
        return str(self.state["gateway_url"])

    @property
    def api_key(self) -> str:
        """The development API key."""
        return (self.data_dir / "secrets" / "dev-api-key").read_text().strip()

    @property
    def admin_token(self) -> str:
        """The admin token."""
        return (self.data_dir / "secrets" / "admin-token").read_text().strip()

    def reload(self) -> dict[str, Any]:
        """Re-read platform.json."""
        self.state = json.loads((self.data_dir / "platform.json").read_text())
        return self.state

    def service(self, name: str) -> dict[str, Any]:
        """Ports and PID of one service."""
        return dict(self.reload()["services"][name])

    def server(self, name: str) -> dict[str, Any]:
        """Port, PID and restarts of one server (``postgres``, ``nats``, ``object_store``)."""
        return dict(self.reload()["servers"][name])

    def readyz(self, service: str = "gateway") -> int:
        """The HTTP status of a service's ``/readyz`` (0 when it does not answer)."""
        port = self.service(service)["http_port"]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def all_pids(self) -> list[int]:
        """PIDs of every child the supervisor started (servers and services)."""
        state = self.reload()
        pids = [s["pid"] for s in state["services"].values()] + [s["pid"] for s in state["servers"].values()]
        return [p for p in pids if p]

    def stop(self, timeout: float = 90) -> int:
        """SIGTERM the supervisor and wait for it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)


def submit_task(api: httpx.Client, body: dict[str, Any]) -> str:
    """Create a detection task; its id."""
    resp = api.post("/v1/create-detection-task", json=body)
    resp.raise_for_status()
    return str(resp.json()["task_id"])


def wait_task(api: httpx.Client, task_id: str, timeout: float = 600) -> dict[str, Any]:
    """Long-poll (``GET /v1/task/{id}?wait=30``) until the task is terminal; the task document."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = api.get(f"/v1/task/{task_id}", params={"wait": 30}).json()
        if doc["status"] in ("succeeded", "failed", "cancelled"):
            return dict(doc)
    raise TimeoutError(task_id)


@contextlib.contextmanager
def api_client(platform: RunningPlatform, key: str | None = None) -> Iterator[httpx.Client]:
    """A client of the platform's public API with ``key`` (default: the development account's key)."""
    headers = {"x-api-key": key or platform.api_key}
    with httpx.Client(base_url=platform.gateway_url, headers=headers, timeout=30) as client:
        yield client


@contextlib.contextmanager
def account_client(platform: RunningPlatform, name: str, plan: str) -> Iterator[httpx.Client]:
    """A new account created through the admin API, and a client that calls the API with its key."""
    created = httpx.post(
        f"{platform.gateway_url}/admin/v1/accounts",
        json={"name": name, "plan": plan},
        headers={"authorization": f"Bearer {platform.admin_token}"},
    )
    if created.status_code != 201:
        raise RuntimeError(f"account not created: {created.status_code} {created.text}")
    with api_client(platform, created.json()["api_key"]["key"]) as client:
        yield client


MEDIA_HOST = "127.0.0.2"
"""Where tests and benchmarks serve media (``MediaServer(root, host=MEDIA_HOST)``): a loopback address of their own,
the only one a platform from :func:`start_platform` may fetch from besides its object store's S3 port."""


def start_platform(
    data_dir: Path, timeout: float = 240, extra_env: dict[str, str] | None = None, args: list[str] | None = None
) -> RunningPlatform:
    """Run ``python -m facemint_local.supervisor [args]`` on free ports and wait until it reports ready. It may fetch
    media and deliver webhooks to :data:`MEDIA_HOST` (``extra_env`` can say otherwise)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEMINT_")}
    env["FACEMINT_LOCAL_DATA_DIR"] = str(data_dir)
    for name in PORT_NAMES:
        env[f"FACEMINT_LOCAL_PORTS__{name.upper()}"] = "0"
    env["FACEMINT_LOCAL_FETCH_ALLOW_CIDRS"] = json.dumps([f"{MEDIA_HOST}/32"])
    env.update(extra_env or {})
    log_path = data_dir / "supervisor.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "facemint_local.supervisor", *(args or [])],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    platform = RunningPlatform(proc, data_dir, log_path)
    deadline = time.monotonic() + timeout
    state_file = data_dir / "platform.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"facemint up exited with {proc.returncode}:\n{log_path.read_text()[-6000:]}")
        if state_file.exists() and "Facemint is ready" in log_path.read_text():
            platform.reload()
            return platform
        time.sleep(0.3)
    platform.stop()
    raise TimeoutError(f"platform not ready after {timeout} s:\n{log_path.read_text()[-6000:]}")


def pids_alive(pids: list[int]) -> list[int]:
    """The PIDs that still run (zombies count as gone)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


class _LocalHttp:
    """A threaded HTTP server on ``host`` with a free port, served from a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str) -> None:
        self.host = host
        self.httpd = ThreadingHTTPServer((host, 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        """URL of a path on this server."""
        return f"http://{self.host}:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


class MediaServer(_LocalHttp):
    """A static HTTP server serving a folder, on 127.0.0.1 unless told otherwise (a platform from
    :func:`start_platform` fetches from :data:`MEDIA_HOST` only)."""

    def __init__(self, root: Path, host: str = "127.0.0.1") -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

        super().__init__(Handler, host)

    def add(self, name: str, data: bytes) -> str:
        """Write a file and return its URL."""
        (self.root / name).write_bytes(data)
        return self.url(name)


def _signed(secret: str, headers: Any, raw: bytes) -> bool:
    """True when ``X-Facemint-Signature`` is the HMAC-SHA256 of ``timestamp.body`` under ``secret``
    (docs/webhooks.md)."""
    stamp = str(headers.get("x-facemint-timestamp", ""))
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, str(headers.get("x-facemint-signature", "")))


class WebhookReceiver(_LocalHttp):
    """A webhook endpoint on :data:`MEDIA_HOST` unless told otherwise (where a platform from :func:`start_platform`
    may deliver): answers 204 to every POST, after ``delay`` seconds, and records the task id and delivery id of each
    request. With the account's ``secret``, a request whose signature does not verify is also recorded in
    ``bad_signatures``."""

    def __init__(self, host: str = MEDIA_HOST, secret: str | None = None, delay: float = 0.0) -> None:
        self.requests: list[tuple[str, str]] = []
        self.bad_signatures: list[tuple[str, str]] = []
        lock = threading.Lock()
        requests, bad = self.requests, self.bad_signatures

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's method name
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                seen = (str(json.loads(raw)["task_id"]), self.headers.get("x-facemint-delivery", ""))
                with lock:
                    requests.append(seen)
                    if secret is not None and not _signed(secret, self.headers, raw):
                        bad.append(seen)
                time.sleep(delay)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

        super().__init__(Handler, host)

    def deliveries(self, task_ids: set[str], timeout: float = 60) -> dict[str, set[str]]:
        """The delivery ids received per task (attempts of one delivery share its id), once every task has one or
        after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            out: dict[str, set[str]] = defaultdict(set)
            for task_id, delivery in list(self.requests):
                if task_id in task_ids:
                    out[task_id].add(delivery)
            if set(out) == task_ids or time.monotonic() > deadline:
                return {t: out.get(t, set()) for t in task_ids}
            time.sleep(0.2)


TERMINAL = ("succeeded", "failed", "cancelled")


def upload_media(api: httpx.Client, kind: str, data: bytes) -> dict[str, Any]:
    """A signed upload of ``data``: ``POST /v1/uploads``, then the form POST to the object store; returns the
    upload's description (``media_url`` ...)."""
    resp = api.post("/v1/uploads", json={"type": kind})
    if resp.status_code != 201:
        raise AssertionError(f"upload not created: {resp.status_code} {resp.text}")
    doc = resp.json()
    sent = httpx.post(doc["upload_url"], data=doc["fields"], files={"file": ("media", data)}, timeout=60)
    if sent.status_code != 204:
        raise AssertionError(f"upload failed: {sent.status_code} {sent.text}")
    return dict(doc)


@dataclass
class ServerRecovery:
    """What happened after one server was SIGKILLed with tasks in flight; times in seconds after the kill."""

    server: str
    in_flight_at_kill: int
    """Tasks not yet terminal just before the kill."""
    old_pid: int
    new_pid: int
    old_pid_reaped: bool
    """``/proc/<old pid>`` is gone: the supervisor reaped the killed server (no zombie)."""
    gateway_not_ready_seen: bool
    """The gateway's ``/readyz`` answered something other than 200 while the server was down."""
    restarted_seconds: float
    """Until ``platform.json`` named the new PID (the supervisor records it once the server is ready)."""
    gateway_ready_seconds: float
    """Until the gateway's ``/readyz`` answered 200 again after the restart."""
    first_task_seconds: float
    """Until a task submitted once the gateway was ready again had succeeded."""
    all_tasks_seconds: float
    """Until every task (in flight at the kill, and that one) was terminal."""
    tasks: dict[str, dict[str, Any]]
    """The final document of every task, by id."""


def _task(api: httpx.Client, task_id: str) -> dict[str, Any] | None:
    """The task's document, or None while the platform cannot answer (a client would retry)."""
    try:
        resp = api.get(f"/v1/task/{task_id}")
    except httpx.HTTPError:
        return None
    return dict(resp.json()) if resp.status_code == 200 else None


def kill_server_under_load(
    platform: RunningPlatform,
    api: httpx.Client,
    server: str,
    body: dict[str, Any],
    inflight: int,
    *,
    outage_seconds: float = 0.0,
    timeout: float = 150,
) -> ServerRecovery:
    """Submit ``inflight`` tasks, SIGKILL ``server`` at once, then follow the recovery until every task is terminal.

    Args:
        platform: The running platform.
        api: A client of its public API (base URL and API key set).
        server: ``postgres``, ``nats`` or ``object_store``.
        body: The ``create-detection-task`` body of every task.
        inflight: Tasks submitted just before the kill.
        outage_seconds: Hold the supervisor (SIGSTOP) this long after the kill, so that the outage outlasts the
            services' readiness intervals, as a server slow to come back would; 0 measures the real recovery.
        timeout: Seconds after the kill before giving up.
    """

    def submit() -> str:
        resp = api.post("/v1/create-detection-task", json=body)
        if resp.status_code != 201:
            raise AssertionError(f"task not created: {resp.status_code} {resp.text}")
        return str(resp.json()["task_id"])

    pending = {submit() for _ in range(inflight)}
    old_pid = int(platform.server(server)["pid"])
    in_flight = sum(1 for task_id in pending if (_task(api, task_id) or {}).get("status") not in TERMINAL)
    resume = threading.Timer(outage_seconds, platform.proc.send_signal, (signal.SIGCONT,))
    if outage_seconds:
        platform.proc.send_signal(signal.SIGSTOP)
    os.kill(old_pid, signal.SIGKILL)
    killed = time.monotonic()
    if outage_seconds:
        resume.start()
    try:
        deadline = killed + timeout
        new_pid = 0
        not_ready_seen = False
        restarted = ready = first = 0.0
        probe = ""
        tasks: dict[str, dict[str, Any]] = {}
        while pending or not first:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{server}: not recovered after {timeout:.0f} s; pending tasks {sorted(pending)}")
            if not new_pid:
                pid = platform.server(server)["pid"]
                if pid and pid != old_pid:
                    new_pid, restarted = int(pid), time.monotonic() - killed
            status = platform.readyz()
            not_ready_seen |= status != 200 and not ready
            if new_pid and not ready and status == 200:
                ready = time.monotonic() - killed
                probe = submit()
                pending.add(probe)
            for task_id in list(pending):
                doc = _task(api, task_id)
                if doc is not None and doc["status"] in TERMINAL:
                    tasks[task_id] = doc
                    pending.discard(task_id)
                    if task_id == probe:
                        first = time.monotonic() - killed
            time.sleep(0.1)
    finally:
        resume.cancel()
        if outage_seconds:
            platform.proc.send_signal(signal.SIGCONT)  # never leave the supervisor stopped
    return ServerRecovery(
        server=server,
        in_flight_at_kill=in_flight,
        old_pid=old_pid,
        new_pid=new_pid,
        old_pid_reaped=not Path(f"/proc/{old_pid}").exists(),
        gateway_not_ready_seen=not_ready_seen,
        restarted_seconds=restarted,
        gateway_ready_seconds=ready,
        first_task_seconds=first,
        all_tasks_seconds=time.monotonic() - killed,
        tasks=tasks,
    )
