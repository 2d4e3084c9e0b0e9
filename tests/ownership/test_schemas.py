"""Each service owns one PostgreSQL schema and role (ADR 14): the grants hold, and a database of the shared layout
(every table in ``public``, migrations 0001-0006 of facemint-core before the split) upgrades with its data."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from facemint_core.db import ADOPTED, apply_migrations, migrations_dir
from facemint_core.schemas import SCHEMAS, apply_own_migrations, migrate_all, role_dsn
from facemint_local.servers import PostgresServer

pytestmark = pytest.mark.integration

SHARED_LAYOUT = Path(__file__).parent / "shared_layout"


@pytest.fixture
async def new_database(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """An empty database (no roles' schemas yet); yields its administrator DSN."""
    name = f"own_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server.dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield postgres_server.dsn.rsplit("/", 1)[0] + f"/{name}"
    admin = await asyncpg.connect(postgres_server.dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _tables(dsn: str) -> dict[str, set[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT schemaname, tablename, tableowner FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
            "'information_schema')"
        )
    finally:
        await conn.close()
    found: dict[str, set[str]] = {}
    for r in rows:
        found.setdefault(r["schemaname"], set()).add(f"{r['tablename']}:{r['tableowner']}")
    return found


async def test_each_role_owns_its_schema_and_cannot_reach_any_other(new_database: str) -> None:
    await migrate_all(new_database)
    # The ownership table of docs/architecture.md: which tables each schema holds, owned by which role.
    assert await _tables(new_database) == {
        e.schema: {f"{t}:{e.role}" for t in (*e.tables, "schema_migrations")} for e in SCHEMAS
    }
    for entry in SCHEMAS:
        conn = await asyncpg.connect(role_dsn(new_database, entry.role))
        try:
            assert await conn.fetchval("SELECT current_schema()") == entry.schema
            for table in entry.tables:
                await conn.fetchval(f"SELECT count(*) FROM {table}")  # its own: readable (and owned, above)
            for other in SCHEMAS:
                if other is entry:
                    continue
                for table in other.tables:
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await conn.fetchval(f'SELECT count(*) FROM "{other.schema}"."{table}"')
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await conn.execute(f'DELETE FROM "{other.schema}"."{table}"')
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(f'CREATE TABLE "{other.schema}".intruder (x int)')
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("CREATE TABLE public.intruder (x int)")
        finally:
            await conn.close()
    assert await migrate_all(new_database) == {e.service: [] for e in SCHEMAS}  # a second run has nothing to do
    # A service given another role's (or the administrator's) DSN refuses to migrate rather than misplace tables.
    for dsn, service in ((role_dsn(new_database, "facemint_gateway"), "library"), (new_database, "gateway")):
        conn = await asyncpg.connect(dsn)
        try:
            with pytest.raises(RuntimeError, match="must connect as its role"):
                await apply_own_migrations(conn, service)
        finally:
            await conn.close()


async def test_roles_named_before_the_rename_take_their_service_name_with_what_they_own(tmp_path: Path) -> None:
    # Roles belong to the whole cluster, not to one database: a cluster of its own, so that no other test's roles move.
    server = PostgresServer(tmp_path / "postgres")
    server.start()
    try:
        await migrate_all(server.dsn)
        # Until issue #14 each role was named after its schema; two services' packages (and roles) have other names.
        renamed = [e for e in SCHEMAS if e.role != f"facemint_{e.schema}"]
        assert {e.service for e in renamed} == {"task-orchestrator", "webhook-dispatcher"}
        admin = await asyncpg.connect(server.dsn)
        try:
            for entry in renamed:
                conn = await asyncpg.connect(role_dsn(server.dsn, entry.role))
                try:
                    await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
                finally:
                    await conn.close()
                # The database as the version before the rename left it: the role's former name owns everything.
                await admin.execute(f'ALTER ROLE "{entry.role}" RENAME TO "facemint_{entry.schema}"')

            assert await migrate_all(server.dsn) == {e.service: [] for e in SCHEMAS}
            roles = await admin.fetch(r"SELECT rolname FROM pg_roles WHERE rolname LIKE 'facemint\_%'")
            assert {r["rolname"] for r in roles} == {e.role for e in SCHEMAS}
        finally:
            await admin.close()
        for entry in renamed:
            conn = await asyncpg.connect(role_dsn(server.dsn, entry.role))
            try:
                assert await conn.fetchval("SELECT current_schema()") == entry.schema
                assert await conn.fetchval("SELECT n FROM kept") == 42
                assert await conn.fetchval("SELECT count(*) FROM schema_migrations") >= 1
            finally:
                await conn.close()
    finally:
        server.stop()


async def _fill_shared_layout(dsn: str) -> None:
    """Today's rows in the shared layout: an account with a rotated secret, a key, tasks (billed by the old trigger),
    a library with a person and a face, a delivery with an attempt, an idempotency record."""
    conn = await asyncpg.connect(dsn)
    try:
        assert await apply_migrations(conn, SHARED_LAYOUT) == ["0001", "0002", "0003", "0004", "0005", "0006"]
        await conn.execute(
            """INSERT INTO accounts (account_id, name, plan, webhook_secret, webhook_secret_previous,
                                     webhook_secret_previous_expires_at, webhook_secret_rotated_at, concurrent_tasks)
               VALUES ('acct_a', 'A', 'pro', 'secret-new', 'secret-old', now() + interval '1 hour', now(), 7),
                      ('acct_b', 'B', 'free', 'secret-b', NULL, NULL, NULL, NULL)"""
        )
        await conn.execute(
            """INSERT INTO api_keys (key_id, account_id, prefix, key_hash, name)
               VALUES ('key_a', 'acct_a', 'fm_aaaa', 'hash-a', 'default')"""
        )
        await conn.execute(
            """INSERT INTO tasks (task_id, account_id, type, status, spec, created_at, completed_at, analysed_seconds,
                                  creation_id)
               VALUES ('task_1', 'acct_a', 'video', 'succeeded', '{"type": "video"}', now(), now(), 90, 'c1'),
                      ('task_2', 'acct_a', 'image', 'succeeded', '{"type": "image"}', now(), now(), NULL, NULL),
                      ('task_3', 'acct_b', 'image', 'running', '{"type": "image"}', now(), NULL, NULL, NULL)"""
        )
        await conn.execute(
            """INSERT INTO libraries (library_id, library_uid, account_id, name)
               VALUES ('lib_a', gen_random_uuid(), 'acct_a', 'Staff');
               INSERT INTO library_persons (library_id, person_id, name, centroid_point_id)
               VALUES ('lib_a', 'p1', 'Ada', gen_random_uuid());
               INSERT INTO library_faces (face_id, library_id, person_id, point_id, embedding, bbox)
               VALUES ('face_1', 'lib_a', 'p1', gen_random_uuid(), '{0.6,0.8}', '{1,2,3,4}')"""
        )
        await conn.execute(
            """INSERT INTO webhook_deliveries (delivery_id, account_id, task_id, event, url, payload, state,
                                               schedule_seconds, attempt_count, event_at)
               VALUES ('dlv_1', 'acct_a', 'task_1', 'task.succeeded', 'https://hooks.example/a', '\\x7b7d',
                       'delivered', '{5,30}', 1, now());
               INSERT INTO webhook_attempts (delivery_id, number, attempted_at, finished_at, status_code)
               VALUES ('dlv_1', 1, now(), now(), 200)"""
        )
        await conn.execute(
            """INSERT INTO idempotency_keys (scope, idempotency_key, fingerprint, status, locked_until)
               VALUES ('acct_a', 'idem-1', 'fp', 201, now())"""
        )
        # The trigger of 0004/0006 billed the two succeeded tasks: 90 s of video and 1 s of image.
        assert await conn.fetchval("SELECT seconds FROM usage_monthly WHERE account_id = 'acct_a'") == 91
    finally:
        await conn.close()


async def _layout(dsn: str) -> dict[str, list[tuple[str, ...]]]:
    """Columns, indexes and constraints of every service schema, for comparing two databases."""
    conn = await asyncpg.connect(dsn)
    schemas = [e.schema for e in SCHEMAS]
    try:
        columns = await conn.fetch(
            """SELECT table_schema, table_name, column_name, data_type, is_nullable, coalesce(column_default, '')
               FROM information_schema.columns WHERE table_schema = ANY($1)""",
            schemas,
        )
        indexes = await conn.fetch(
            "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = ANY($1)", schemas
        )
        constraints = await conn.fetch(
            """SELECT n.nspname, c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
               FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = ANY($1)""",
            schemas,
        )
        persistence = await conn.fetch(
            """SELECT n.nspname, c.relname, c.relpersistence::text FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY($1) AND c.relkind = 'r'""",
            schemas,
        )
        functions = await conn.fetch("SELECT proname FROM pg_proc WHERE proname LIKE 'facemint_%'")
    finally:
        await conn.close()
    return {
        "columns": sorted(tuple(map(str, r.values())) for r in columns),
        "indexes": sorted(tuple(map(str, r.values())) for r in indexes),
        "constraints": sorted(tuple(map(str, r.values())) for r in constraints),
        "persistence": sorted(tuple(map(str, r.values())) for r in persistence),
        "functions": sorted(tuple(map(str, r.values())) for r in functions),
    }


async def test_a_shared_layout_database_upgrades_with_its_data(new_database: str, postgres_server) -> None:  # type: ignore[no-untyped-def]
    await _fill_shared_layout(new_database)
    applied = await migrate_all(new_database)
    # Adopted at 0001: only the migrations written after the shared layout run.
    later = {e.service: sorted(p.name[:4] for p in migrations_dir(e.package).glob("*.sql"))[1:] for e in SCHEMAS}
    assert applied == later

    def role(service_role: str) -> str:
        return role_dsn(new_database, service_role)

    gateway = await asyncpg.connect(role("facemint_gateway"))
    try:
        accounts = await gateway.fetch("SELECT account_id, plan, concurrent_tasks FROM accounts ORDER BY account_id")
        assert [tuple(r.values()) for r in accounts] == [("acct_a", "pro", 7), ("acct_b", "free", None)]
        assert await gateway.fetchval("SELECT account_id FROM api_keys WHERE key_hash = 'hash-a'") == "acct_a"
        assert await gateway.fetchval("SELECT status FROM idempotency_keys WHERE idempotency_key = 'idem-1'") == 201
        columns = await gateway.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'accounts' AND table_schema = 'gateway'"
        )
        assert not [c for c in columns if c["column_name"].startswith("webhook_secret")]
    finally:
        await gateway.close()

    orchestrator = await asyncpg.connect(role("facemint_task_orchestrator"))
    try:
        tasks = await orchestrator.fetch("SELECT task_id, status, billed_seconds FROM tasks ORDER BY task_id")
        assert [tuple(r.values()) for r in tasks] == [
            ("task_1", "succeeded", 90.0),
            ("task_2", "succeeded", 1.0),
            ("task_3", "running", 0.0),
        ]
        month = datetime.now(UTC).date().replace(day=1)
        usage = await orchestrator.fetchrow("SELECT seconds, tasks FROM usage_monthly WHERE account_id = 'acct_a'")
        assert usage is not None and (usage["seconds"], usage["tasks"]) == (91, 2)
        assert await orchestrator.fetchval("SELECT month FROM usage_monthly WHERE account_id = 'acct_a'") == month
        # No trigger bills behind the orchestrator's back any more: metering is its own code's (quota.meter).
        await orchestrator.execute(
            "UPDATE tasks SET status = 'succeeded', completed_at = now() WHERE task_id = 'task_3'"
        )
        assert await orchestrator.fetchval("SELECT count(*) FROM usage_monthly WHERE account_id = 'acct_b'") == 0
    finally:
        await orchestrator.close()

    library = await asyncpg.connect(role("facemint_library"))
    try:
        row = await library.fetchrow(
            """SELECT l.account_id, p.name, f.embedding FROM libraries l JOIN library_persons p USING (library_uid)
               JOIN library_faces f USING (library_uid, person_id)"""
        )
        assert row is not None and (row["account_id"], row["name"]) == ("acct_a", "Ada")
        assert row["embedding"] == pytest.approx([0.6, 0.8])
    finally:
        await library.close()

    webhook = await asyncpg.connect(role("facemint_webhook_dispatcher"))
    try:
        delivery = await webhook.fetchrow("SELECT account_id, state, payload FROM webhook_deliveries")
        assert delivery is not None and tuple(delivery.values()) == ("acct_a", "delivered", b"{}")
        assert await webhook.fetchval("SELECT status_code FROM webhook_attempts WHERE delivery_id = 'dlv_1'") == 200
        secrets = await webhook.fetch(
            "SELECT account_id, secret, previous, previous_expires_at > now() AS open FROM webhook_secrets "
            "ORDER BY account_id"
        )
        assert [tuple(r.values()) for r in secrets] == [
            ("acct_a", "secret-new", "secret-old", True),
            ("acct_b", "secret-b", None, None),
        ]
        # The adopted baseline took its file's checksum on the run after the adoption.
        assert await webhook.fetchval("SELECT checksum FROM schema_migrations WHERE version = '0001'") != ADOPTED
    finally:
        await webhook.close()

    # The upgraded database has exactly the layout a new one gets from the services' own migrations.
    fresh_name = f"own_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server.dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{fresh_name}"')
        fresh = postgres_server.dsn.rsplit("/", 1)[0] + f"/{fresh_name}"
        await migrate_all(fresh)
        assert await _layout(new_database) == await _layout(fresh)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{fresh_name}" WITH (FORCE)')
        await admin.close()
