"""PostgreSQL: asyncpg pools and versioned SQL migrations.

Migrations are files ``NNNN_name.sql`` in :data:`MIGRATIONS_DIR`, applied in order, each in its own transaction,
under an advisory lock so that concurrent starters apply them once. Each applied version is recorded in
``schema_migrations`` with its checksum; an edited, already-applied file stops start-up.
"""

from __future__ import annotations

import hashlib
import logging
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg

from facemint_core.settings import DatabaseSettings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(str(resources.files("facemint_core") / "migrations"))
_LOCK_KEY = 0x46414345  # "FACE"


async def keep_session(_conn: asyncpg.Connection) -> None:
    """What a connection needs when it goes back to the pool beyond asyncpg's own cleanup: nothing.

    asyncpg always rolls back an open transaction and drops listeners on release; its default reset then also
    runs ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``, one more round trip for every pooled
    query. Pooled connections here never carry session state: advisory locks are transaction-scoped
    (``pg_advisory_xact_lock``), LISTEN and the migration lock use dedicated connections, nothing runs a session
    ``SET`` and cursors live inside transactions.
    """


async def create_pool(settings: DatabaseSettings) -> asyncpg.Pool:
    """Create a connection pool."""
    pool = await asyncpg.create_pool(
        settings.dsn,
        min_size=settings.min_pool_size,
        max_size=settings.max_pool_size,
        command_timeout=30,
        reset=keep_session,
    )
    assert pool is not None
    return pool


def _migration_files(directory: Path) -> list[tuple[str, Path]]:
    files = sorted(p for p in directory.glob("*.sql") if p.name[:4].isdigit())
    return [(p.name.split("_", 1)[0], p) for p in files]


async def apply_migrations(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; return the versions applied now. Raises RuntimeError on a checksum mismatch."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version text PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done: dict[str, Any] = {
            r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        for version, path in _migration_files(directory):
            sql = path.read_text()
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if version in done:
                if done[version] != checksum:
                    raise RuntimeError(f"migration {path.name} changed after it was applied")
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    version,
                    path.name,
                    checksum,
                )
            log.info("migration applied", extra={"migration": path.name})
            applied_now.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


async def migrate(dsn: str) -> list[str]:
    """Connect, apply pending migrations, disconnect."""
    conn = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()
