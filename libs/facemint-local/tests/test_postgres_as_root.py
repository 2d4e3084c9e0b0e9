"""As root, PostgreSQL's cluster lives under ``/var/lib/facemint/clusters``, linked from the data directory (ADR 0010).

Its data survive a restart, a cluster left in the data directory by an earlier version is moved there, and a cluster
whose data directory is gone is deleted at the next start unless its server still runs. Run as another user,
PostgreSQL keeps its cluster in the data directory and none of this applies.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import asyncpg
import pytest

from facemint_local.servers import PG_SYSTEM_USER, SYSTEM_DIR, PostgresServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL from /var/lib/facemint"),
]


def started(data_dir: Path) -> PostgresServer:
    server = PostgresServer(data_dir)
    server.start()
    return server


def cluster_of(data_dir: Path) -> Path:
    """The cluster directory ``data_dir``'s link points to."""
    return (data_dir / "pgdata").resolve().parent


async def test_data_survive_a_restart_and_an_in_place_cluster_is_moved_to_the_system_dir(tmp_path: Path) -> None:
    server = started(tmp_path)
    conn = await asyncpg.connect(server.dsn)
    await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
    await conn.close()
    server.stop()
    first = cluster_of(tmp_path)
    assert first.parent == SYSTEM_DIR / "clusters"
    assert (first / "pgdata").owner() == PG_SYSTEM_USER
    (tmp_path / "pgdata").unlink()
    shutil.move(first / "pgdata", tmp_path / "pgdata")  # the layout of earlier versions
    server = started(tmp_path)
    try:
        assert (tmp_path / "pgdata").is_symlink()
        assert cluster_of(tmp_path).parent == SYSTEM_DIR / "clusters"
        conn = await asyncpg.connect(server.dsn)
        assert await conn.fetchval("SELECT n FROM kept") == 7
        await conn.close()
    finally:
        server.stop()
    assert not first.exists()  # the emptied cluster directory was deleted as an orphan


def test_a_cluster_is_deleted_with_its_data_directory_unless_its_server_runs(tmp_path: Path) -> None:
    stopped = started(tmp_path / "stopped")
    stopped.stop()
    running = started(tmp_path / "running")
    orphan, busy = cluster_of(tmp_path / "stopped"), cluster_of(tmp_path / "running")
    shutil.rmtree(tmp_path / "stopped")
    shutil.rmtree(tmp_path / "running")
    other = started(tmp_path / "other")
    try:
        assert not orphan.exists()
        assert busy.exists()
    finally:
        other.stop()
        running.stop()
    other = started(tmp_path / "other")
    other.stop()
    assert not busy.exists()
