"""Who owns which PostgreSQL state: one schema and one login role per service with state (ADR 14).

Each role owns its schema, has ``search_path`` set to it and has no privilege on any other schema (``public``
included: its default grants to PUBLIC are revoked), so a service can neither read nor write another's tables.
:func:`create_roles` (run by a database administrator: ``facemint migrate``, the local platform, the chart's
bootstrap Job) creates the roles and schemas; each service then applies its own migrations as its role
(:func:`facemint_core.db.apply_migrations`). :func:`adopt_shared_layout` takes over a database created by the
shared migration stream that came before (facemint-core's 0001-0006, every table in ``public``).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import asyncpg

from facemint_core.db import ADOPTED, apply_migrations, migrate, migrations_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSchema:
    """The schema, role and migrations of one service with state."""

    service: str
    schema: str
    role: str
    package: str
    tables: tuple[str, ...]

    @property
    def baseline(self) -> str:
        """The version its first migration (the state adopted from the shared layout) has."""
        return "0001"


SCHEMAS = (
    ServiceSchema(
        "gateway", "gateway", "facemint_gateway", "facemint_gateway",
        ("accounts", "api_keys", "rate_limit_counters", "idempotency_keys"),
    ),
    ServiceSchema("task-orchestrator", "orchestrator", "facemint_task_orchestrator", "facemint_task_orchestrator",
                  ("tasks", "usage_monthly")),
    ServiceSchema("library", "library", "facemint_library", "facemint_library",
                  ("libraries", "library_persons", "library_faces")),
    ServiceSchema("webhook-dispatcher", "webhook", "facemint_webhook_dispatcher", "facemint_webhook_dispatcher",
                  ("webhook_deliveries", "webhook_attempts", "webhook_secrets")),
)  # fmt: skip
"""Every service with PostgreSQL state; media-decoder and inference have none."""


def schema_of(service: str) -> ServiceSchema:
    """The entry of a service by its name (``gateway``, ``task-orchestrator``, ``library``, ``webhook-dispatcher``)."""
    for entry in SCHEMAS:
        if entry.service == service:
            return entry
    raise KeyError(service)


async def apply_own_migrations(conn: asyncpg.Connection, service: str) -> list[str]:
    """Apply a service's pending migrations to its schema, on a connection as its role; return the versions applied.

    Raises:
        RuntimeError: The connection's schema is not the service's (it was given another role's or an
            administrator's DSN, whose tables would land in the wrong schema).
    """
    entry = schema_of(service)
    current = await conn.fetchval("SELECT current_schema()")
    if current != entry.schema:
        raise RuntimeError(
            f"{service} must connect as its role {entry.role} (schema {entry.schema}); this connection's schema is "
            f"{current}: give it that role's DSN"
        )
    return await apply_migrations(conn, migrations_dir(entry.package))


def role_dsn(admin_dsn: str, role: str, password: str | None = None) -> str:
    """``admin_dsn`` with the user (and password) replaced by ``role``'s: same host, port, database and options,
    but no ``options`` (a test's ``-csearch_path``: the role's own search_path is its schema)."""
    parts = urlsplit(admin_dsn)
    user = quote(role, safe="") + (":" + quote(password, safe="") if password else "")
    host = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "options"])
    return urlunsplit(parts._replace(netloc=f"{user}@{host}", query=query))


def service_dsn(admin_dsn: str, service: str) -> str:
    """The DSN of a service's role (no password) on the database of ``admin_dsn``: what the local platform and the
    tests give each service."""
    return role_dsn(admin_dsn, schema_of(service).role)


async def create_roles(admin: asyncpg.Connection, passwords: Mapping[str, str] | None = None) -> None:
    """Create (or bring up to date) every service's login role and schema; idempotent.

    Args:
        admin: A connection as a role that may create roles and schemas in the database.
        passwords: Password per role name; a role without one gets none (trust or peer authentication).
    """
    passwords = passwords or {}
    async with admin.transaction():
        # Objects nobody owns any more are reachable only by the administrator (PostgreSQL <= 14 let every role
        # create tables in public; the roles here must not see, or leave, anything outside their own schema).
        await admin.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        for entry in SCHEMAS:
            await _rename_former_role(admin, entry)
            exists = await admin.fetchval("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", entry.role)
            verb = "ALTER" if exists else "CREATE"
            password = passwords.get(entry.role)
            with_password = " PASSWORD %L" if password else ""
            sql = f"SELECT format('{verb} ROLE %I LOGIN{with_password}', $1::text, $2::text)"
            await admin.execute(await admin.fetchval(sql, entry.role, password or ""))
            await admin.execute(
                await admin.fetchval(
                    "SELECT format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', $1::text, $2::text)",
                    entry.schema,
                    entry.role,
                )
            )
            await admin.execute(
                await admin.fetchval(
                    "SELECT format('ALTER ROLE %I SET search_path = %I', $1::text, $2::text)", entry.role, entry.schema
                )
            )


async def _rename_former_role(admin: asyncpg.Connection, entry: ServiceSchema) -> None:
    """Give a role created before issue #14 its service's name; nothing when there is none.

    Each role was named after its schema (``facemint_`` + schema) until the roles took the name of their service's
    package; two differ (the task-orchestrator's and the webhook-dispatcher's). Renaming keeps what the role owns
    (schema, tables, migrations applied) and its ``search_path``; PostgreSQL clears an MD5 password on rename, and
    :func:`create_roles` sets the role's password right after. When both names exist, nothing is renamed.
    """
    former = f"facemint_{entry.schema}"
    if former == entry.role:
        return
    found = await admin.fetch("SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", [former, entry.role])
    if [r["rolname"] for r in found] == [former]:
        await admin.execute(
            await admin.fetchval("SELECT format('ALTER ROLE %I RENAME TO %I', $1::text, $2::text)", former, entry.role)
        )
        log.info("role renamed", extra={"role": former, "renamed_to": entry.role})


_SHARED_LAYOUT_SPLIT = """
-- Billing moves to the task-orchestrator (facemint_task_orchestrator.quota): no trigger parses tasks any more.
DROP TRIGGER IF EXISTS tasks_bill ON public.tasks;
DROP FUNCTION IF EXISTS public.facemint_bill_task();
DROP FUNCTION IF EXISTS public.facemint_billable_seconds(text, text, text, double precision);
-- Accounts are the gateway's: nothing else refers to them.
ALTER TABLE public.libraries DROP CONSTRAINT IF EXISTS libraries_account_id_fkey;
ALTER TABLE public.webhook_deliveries DROP CONSTRAINT IF EXISTS webhook_deliveries_account_id_fkey;
-- The webhook secrets move from the gateway's accounts to the webhook-dispatcher (as its 0001 creates them).
CREATE TABLE webhook.webhook_secrets (
    account_id          text PRIMARY KEY,
    secret              text NOT NULL,
    previous            text,
    previous_expires_at timestamptz,
    rotated_at          timestamptz
);
INSERT INTO webhook.webhook_secrets (account_id, secret, previous, previous_expires_at, rotated_at)
SELECT account_id, webhook_secret, webhook_secret_previous, webhook_secret_previous_expires_at,
       webhook_secret_rotated_at
FROM public.accounts;
ALTER TABLE public.accounts
    DROP COLUMN webhook_secret,
    DROP COLUMN webhook_secret_previous,
    DROP COLUMN webhook_secret_previous_expires_at,
    DROP COLUMN webhook_secret_rotated_at;
ALTER TABLE public.schema_migrations RENAME TO shared_schema_migrations;
"""


async def adopt_shared_layout(admin: asyncpg.Connection) -> bool:
    """Move the tables of a database created by the shared migration stream into the services' schemas.

    After :func:`create_roles`. The database must have that stream's 0001-0006 applied (the last layout before
    schemas); afterwards every table is in its owner's schema, owned by its role, in the state that service's
    0001 creates (recorded as :data:`facemint_core.db.ADOPTED`), and the old ``schema_migrations`` is kept as
    ``public.shared_schema_migrations``. One transaction. Returns False when there is nothing to adopt.

    Raises:
        RuntimeError: The shared layout is at another version than 0006.
    """
    async with admin.transaction():
        if await admin.fetchval("SELECT to_regclass('public.schema_migrations')") is None:
            return False
        versions = [r["version"] for r in await admin.fetch("SELECT version FROM public.schema_migrations")]
        if sorted(versions) != [f"{n:04d}" for n in range(1, 7)]:
            raise RuntimeError(f"the shared layout is at {sorted(versions)}; only 0001-0006 can be adopted")
        await admin.execute(_SHARED_LAYOUT_SPLIT)
        for entry in SCHEMAS:
            for table in entry.tables:
                source = "webhook" if table == "webhook_secrets" else "public"
                if source == "public":
                    await admin.execute(f'ALTER TABLE public."{table}" SET SCHEMA "{entry.schema}"')
                await admin.execute(f'ALTER TABLE "{entry.schema}"."{table}" OWNER TO "{entry.role}"')
            await admin.execute(
                f"""CREATE TABLE "{entry.schema}".schema_migrations (
                        version text PRIMARY KEY,
                        name text NOT NULL,
                        checksum text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now());
                    ALTER TABLE "{entry.schema}".schema_migrations OWNER TO "{entry.role}";"""
            )
            await admin.execute(
                f'INSERT INTO "{entry.schema}".schema_migrations (version, name, checksum) VALUES ($1, $2, $3)',
                entry.baseline,
                "adopted from the shared layout (0001-0006)",
                ADOPTED,
            )
        log.info("shared layout adopted into the services' schemas")
        return True


async def migrate_all(admin_dsn: str, passwords: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Create the roles and schemas, adopt a shared-layout database, then apply the migrations of each service
    whose package is installed here, as its role (an image carries one service: the others apply theirs when they
    start). Returns the versions applied now, per service applied."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await create_roles(admin, passwords)
        await adopt_shared_layout(admin)
    finally:
        await admin.close()
    passwords = passwords or {}
    return {
        entry.service: await migrate(
            role_dsn(admin_dsn, entry.role, passwords.get(entry.role)), migrations_dir(entry.package)
        )
        for entry in SCHEMAS
        if importlib.util.find_spec(entry.package) is not None
    }
