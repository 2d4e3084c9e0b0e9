"""PostgreSQL: asyncpg pools and versioned SQL migrations.

Each service with state owns one schema and applies its own migrations (``<package>/migrations``, see
:mod:`facemint_core.schemas`) as its own role, whose ``search_path`` is that schema. Migrations are files
``NNNN_name.sql``, applied in order, each in its own transaction, under an advisory lock per schema so that
concurrent starters apply them once. Each applied version is recorded in the schema's ``schema_migrations`` with its
checksum; an edited, already-applied file stops start-up. A version recorded as :data:`ADOPTED` (a database of the
shared layout taken over by :func:`facemint_core.schemas.adopt_shared_layout`) takes the file's checksum on the next
run.
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

ADOPTED = "adopted"
"""Checksum of a migration that was not run but adopted from an existing database in the state it creates."""


def migrations_dir(package: str) -> Path:
    """The migrations directory of a service package (``facemint_gateway`` -> ``.../facemint_gateway/migrations``)."""
    return Path(str(resources.files(package) / "migrations"))


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


async def apply_migrations(conn: asyncpg.Connection, directory: Path) -> list[str]:
    """Apply pending migrations of ``directory`` to the connection's current schema; return the versions applied
    now. Raises RuntimeError on a checksum mismatch, or when the connection has no current schema."""
    applied_now: list[str] = []
    schema = await conn.fetchval("SELECT current_schema()")
    if schema is None:
        raise RuntimeError("no current schema: connect as the service's role (its search_path is its schema)")
    lock = await conn.fetchval("SELECT hashtextextended('facemint-migrations:' || $1, 0)", schema)
    await conn.execute("SELECT pg_advisory_lock($1)", lock)
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
            if done.get(version) == ADOPTED:
                await conn.execute(
                    "UPDATE schema_migrations SET checksum = $2, name = $3 WHERE version = $1",
                    version,
                    checksum,
                    path.name,
                )
                continue
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
        await conn.execute("SELECT pg_advisory_unlock($1)", lock)
    return applied_now


async def migrate(dsn: str, directory: Path) -> list[str]:
    """Connect (as the service's role), apply the pending migrations of ``directory``, disconnect."""
    conn = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(conn, directory)
    finally:
        await conn.close()
