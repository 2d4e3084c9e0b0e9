"""Drive the real local platform (``facemint up``) as a subprocess: for end-to-end tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil

PORT_NAMES = (
    "gateway", "postgres", "nats", "nats_monitor", "object_store", "orchestrator", "media_decoder", "inference",
    "library", "webhook", "ops_base",
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


MEDIA_HOST = "127.0.0.2"
"""Where tests and benchmarks serve media (``MediaServer(root, host=MEDIA_HOST)``): a loopback address of their own,
the only one a platform from :func:`start_platform` may fetch from besides its object store's S3 port."""


def start_platform(data_dir: Path, timeout: float = 240, extra_env: dict[str, str] | None = None) -> RunningPlatform:
    """Run ``python -m facemint_local.supervisor`` on free ports and wait until it reports ready. It may fetch media
    and deliver webhooks to :data:`MEDIA_HOST` (``extra_env`` can say otherwise)."""
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
            [sys.executable, "-m", "facemint_local.supervisor"], stdout=log, stderr=subprocess.STDOUT, env=env
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


class MediaServer:
    """A static HTTP server serving a folder, on 127.0.0.1 unless told otherwise (a platform from
    :func:`start_platform` fetches from :data:`MEDIA_HOST` only)."""

    def __init__(self, root: Path, host: str = "127.0.0.1") -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.host = host

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        """URL of a file in the served folder."""
        return f"http://{self.host}:{self.httpd.server_address[1]}/{name}"

    def add(self, name: str, data: bytes) -> str:
        """Write a file and return its URL."""
        (self.root / name).write_bytes(data)
        return self.url(name)

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()
