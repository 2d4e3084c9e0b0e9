"""Migration 0002 of the library (library ids per account) keeps the libraries, persons and faces written before it."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import asyncpg
import pytest

from facemint_core.db import apply_migrations, migrations_dir
from facemint_local.servers import PostgresServer

pytestmark = pytest.mark.integration


async def test_rows_written_before_0002_keep_their_library_and_ids_become_per_account(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server.dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    conn = await asyncpg.connect(postgres_server.dsn.rsplit("/", 1)[0] + f"/{name}")
    try:
        before = tmp_path / "migrations"
        before.mkdir()
        for path in sorted(migrations_dir("facemint_library").glob("*.sql")):
            if path.name < "0002":
                shutil.copy(path, before / path.name)
        await apply_migrations(conn, before)
        uid = uuid.uuid4()
        await conn.execute("INSERT INTO libraries (library_id, library_uid, account_id) VALUES ('staff', $1, 'a')", uid)
        await conn.execute(
            "INSERT INTO library_persons (library_id, person_id, centroid_point_id) VALUES ('staff', 'p1', $1)",
            uuid.uuid4(),
        )
        await conn.execute(
            """INSERT INTO library_faces (face_id, library_id, person_id, point_id, embedding, bbox)
               VALUES ('face_1', 'staff', 'p1', $1, '{1,0}', '{0,0,10,10}')""",
            uuid.uuid4(),
        )

        assert (await apply_migrations(conn, migrations_dir("facemint_library")))[0] == "0002"
        assert await conn.fetchval("SELECT library_uid FROM library_persons WHERE person_id = 'p1'") == uid
        assert await conn.fetchval("SELECT library_uid FROM library_faces WHERE face_id = 'face_1'") == uid
        # the same id for another account is now a library of its own
        await conn.execute(
            "INSERT INTO libraries (library_id, library_uid, account_id) VALUES ('staff', $1, 'b')", uuid.uuid4()
        )
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO libraries (library_id, library_uid, account_id) VALUES ('staff', $1, 'a')", uuid.uuid4()
            )
        await conn.execute("DELETE FROM libraries WHERE library_uid = $1", uid)  # cascades to persons and faces
        assert await conn.fetchval("SELECT count(*) FROM library_persons") == 0
        assert await conn.fetchval("SELECT count(*) FROM library_faces") == 0
    finally:
        await conn.close()
        admin = await asyncpg.connect(postgres_server.dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
