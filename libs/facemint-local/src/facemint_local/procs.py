"""Child processes that die with their parent, are stopped by PID, and log to a file."""

from __future__ import annotations

import os
import pwd
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path


def launcher(user: str | None = None) -> list[str]:
    """A ``setpriv`` prefix: the child gets SIGTERM if its parent dies (no orphans even when the parent is
    SIGKILLed) and, with ``user``, runs as that user with that user's group only. ``setpriv`` execs the command,
    so the recorded PID is the server's own."""
    prefix = ["setpriv", "--pdeathsig", "TERM"]
    if user is not None:
        entry = pwd.getpwnam(user)
        prefix += ["--reuid", str(entry.pw_uid), "--regid", str(entry.pw_gid), "--clear-groups"]
    return [*prefix, "--"]


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now and that this process has not handed out before.

    Ports are drawn at random below the kernel's ephemeral range, so that the port cannot be handed to an
    outgoing connection in the time between this call and the server binding it. A platform picks all its
    services' ports before it starts them, so a port is remembered once handed out: two picks that happened to
    draw the same port (a few percent per platform start, ~25 ports out of ~12 000) made one service fail to bind.
    """
    low, _ = _ephemeral_range()
    span = range(20000, max(20001, min(low, 32768)))
    rng = random.SystemRandom()
    with _handed_out_lock:
        if len(_handed_out) > len(span) // 2:  # a long-lived process has used half the range: start over
            _handed_out.clear()
        for _ in range(200):
            port = rng.choice(span)
            if port in _handed_out:
                continue
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``predicate`` until it holds; raise TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


class ManagedProcess:
    """One child process started from argv, its output appended to a log file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.user = user
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The child's PID while started."""
        return self.popen.pid if self.popen else None

    def start(self) -> None:
        """Start the child (its stdout and stderr go to the log file)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                [*launcher(self.user), *self.argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
            )

    def alive(self) -> bool:
        """True while the child runs."""
        return self.popen is not None and self.popen.poll() is None

    def returncode(self) -> int | None:
        """Exit status once the child has exited."""
        return self.popen.poll() if self.popen else None

    def terminate(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Ask the child to shut down (SIGTERM unless told otherwise) without waiting."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(sig)

    def stop(self, grace: float = 10.0, sig: signal.Signals = signal.SIGTERM) -> None:
        """Signal (SIGTERM by default), wait up to ``grace`` seconds, then SIGKILL; always reaps the child."""
        if self.popen is None:
            return
        self.terminate(sig)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)
        self.popen = None

    def kill(self) -> None:
        """SIGKILL immediately (tests of crash recovery)."""
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)

    def tail(self, lines: int = 20) -> str:
        """The last lines of the child's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
