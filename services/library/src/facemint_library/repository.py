"""Library metadata in PostgreSQL (tables of migrations ``0002_library.sql`` and ``0007_library_ids_per_account.sql``).

Functions take an asyncpg connection so that the service can run several of them, plus the matching vector-store
writes, inside one transaction. Library ids are per account: a library is looked up by (account, id), so another
account's library with the same id is simply not found (:class:`NotFound`). Persons and faces belong to a library
through its internal ``library_uid``; the functions on them take the :class:`LibraryRow`.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import numpy as np
import numpy.typing as npt

from facemint_core.errors import Conflict, InvalidRequest, NotFound


@dataclass(frozen=True)
class LibraryRow:
    """A library with its counts."""

    library_id: str
    library_uid: uuid.UUID
    account_id: str
    name: str
    description: str
    embedding_model_id: str
    embedding_model_version: str
    embedding_dim: int
    created_at: datetime
    person_count: int = 0
    face_count: int = 0

    @property
    def bound(self) -> bool:
        """Whether a first face has bound the library to an embedding model."""
        return bool(self.embedding_model_id)


@dataclass(frozen=True)
class FaceRow:
    """A reference face."""

    face_id: str
    person_id: str
    point_id: uuid.UUID
    bbox: tuple[float, float, float, float]
    quality: float
    created_at: datetime


@dataclass(frozen=True)
class PersonRow:
    """A person with its reference faces."""

    person_id: str
    name: str
    metadata_json: str
    centroid_point_id: uuid.UUID
    created_at: datetime
    faces: list[FaceRow] = field(default_factory=list)


def encode_cursor(last_key: str) -> str:
    """An opaque keyset cursor after ``last_key``."""
    return base64.urlsafe_b64encode(json.dumps({"after": last_key}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The key a cursor continues after ('' for no cursor); InvalidRequest when it is not one of ours."""
    if not cursor:
        return ""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        after = data["after"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidRequest("'cursor' is not a valid cursor from a previous response") from None
    if not isinstance(after, str):
        raise InvalidRequest("'cursor' is not a valid cursor from a previous response")
    return after


_LIBRARY_COLUMNS = """l.library_id, l.library_uid, l.account_id, l.name, l.description, l.embedding_model_id,
    l.embedding_model_version, l.embedding_dim, l.created_at"""
_LIBRARY_COUNTS = """,
    (SELECT count(*) FROM library_persons p WHERE p.library_uid = l.library_uid) AS person_count,
    (SELECT count(*) FROM library_faces f WHERE f.library_uid = l.library_uid) AS face_count"""


def _library(row: asyncpg.Record) -> LibraryRow:
    return LibraryRow(
        library_id=row["library_id"],
        library_uid=row["library_uid"],
        account_id=row["account_id"],
        name=row["name"],
        description=row["description"],
        embedding_model_id=row["embedding_model_id"],
        embedding_model_version=row["embedding_model_version"],
        embedding_dim=row["embedding_dim"],
        created_at=row["created_at"],
        person_count=row.get("person_count", 0) or 0,
        face_count=row.get("face_count", 0) or 0,
    )


def _face(row: asyncpg.Record) -> FaceRow:
    x, y, w, h = (float(v) for v in row["bbox"])
    return FaceRow(
        row["face_id"], row["person_id"], row["point_id"], (x, y, w, h), float(row["quality"]), row["created_at"]
    )


async def create_library(
    conn: asyncpg.Connection, account_id: str, library_id: str, name: str, description: str
) -> LibraryRow:
    """Insert a library; Conflict when the account already has one with this id."""
    row = await conn.fetchrow(
        f"""INSERT INTO libraries AS l (library_id, library_uid, account_id, name, description)
            VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, library_id) DO NOTHING RETURNING {_LIBRARY_COLUMNS}""",
        library_id,
        uuid.uuid4(),
        account_id,
        name,
        description,
    )
    if row is None:
        raise Conflict(f"library '{library_id}' already exists")
    return _library(row)


async def get_library(
    conn: asyncpg.Connection, account_id: str, library_id: str, for_update: bool = False
) -> LibraryRow:
    """The account's library, with counts (without them when locking it); NotFound when the account has none."""
    where = "WHERE l.account_id = $1 AND l.library_id = $2"
    if for_update:
        sql = f"SELECT {_LIBRARY_COLUMNS} FROM libraries l {where} FOR UPDATE"
    else:
        sql = f"SELECT {_LIBRARY_COLUMNS}{_LIBRARY_COUNTS} FROM libraries l {where}"
    row = await conn.fetchrow(sql, account_id, library_id)
    if row is None:
        raise NotFound(f"library '{library_id}' does not exist")
    return _library(row)


async def list_libraries(conn: asyncpg.Connection, account_id: str, limit: int, after: str) -> list[LibraryRow]:
    """The account's libraries ordered by id, after a keyset position, at most ``limit``."""
    rows = await conn.fetch(
        f"""SELECT {_LIBRARY_COLUMNS}{_LIBRARY_COUNTS} FROM libraries l
            WHERE l.account_id = $1 AND l.library_id > $2 ORDER BY l.library_id LIMIT $3""",
        account_id,
        after,
        limit,
    )
    return [_library(r) for r in rows]


async def update_library(conn: asyncpg.Connection, lib: LibraryRow, name: str | None, description: str | None) -> None:
    """Change the name and/or description (None keeps the value)."""
    await conn.execute(
        """UPDATE libraries SET name = COALESCE($2, name), description = COALESCE($3, description), updated_at = now()
           WHERE library_uid = $1""",
        lib.library_uid,
        name,
        description,
    )


async def bind_model(conn: asyncpg.Connection, lib: LibraryRow, model_id: str, version: str, dim: int) -> None:
    """Bind a library to the embedding model of its first face."""
    await conn.execute(
        """UPDATE libraries SET embedding_model_id = $2, embedding_model_version = $3, embedding_dim = $4,
           updated_at = now() WHERE library_uid = $1""",
        lib.library_uid,
        model_id,
        version,
        dim,
    )


async def delete_library(conn: asyncpg.Connection, lib: LibraryRow) -> None:
    """Delete a library with its persons and faces."""
    await conn.execute("DELETE FROM libraries WHERE library_uid = $1", lib.library_uid)


async def upsert_person(
    conn: asyncpg.Connection, lib: LibraryRow, person_id: str, name: str, metadata_json: str
) -> PersonRow:
    """Create the person or update its name/metadata when given; the row stays locked until the transaction ends."""
    row = await conn.fetchrow(
        """INSERT INTO library_persons AS p (library_uid, person_id, name, metadata, centroid_point_id)
           VALUES ($1, $2, $3, $4::jsonb, $5)
           ON CONFLICT (library_uid, person_id) DO UPDATE SET
               name = COALESCE(NULLIF(EXCLUDED.name, ''), p.name),
               metadata = COALESCE(EXCLUDED.metadata, p.metadata),
               updated_at = now()
           RETURNING person_id, name, metadata::text AS metadata_json, centroid_point_id, created_at""",
        lib.library_uid,
        person_id,
        name,
        metadata_json or None,
        uuid.uuid4(),
    )
    assert row is not None
    return PersonRow(
        row["person_id"], row["name"], row["metadata_json"] or "", row["centroid_point_id"], row["created_at"]
    )


async def lock_person(conn: asyncpg.Connection, lib: LibraryRow, person_id: str) -> PersonRow:
    """Lock a person row for the transaction; NotFound when absent."""
    row = await conn.fetchrow(
        """SELECT person_id, name, metadata::text AS metadata_json, centroid_point_id, created_at
           FROM library_persons WHERE library_uid = $1 AND person_id = $2 FOR UPDATE""",
        lib.library_uid,
        person_id,
    )
    if row is None:
        raise NotFound(f"person '{person_id}' does not exist in library '{lib.library_id}'")
    return PersonRow(
        row["person_id"], row["name"], row["metadata_json"] or "", row["centroid_point_id"], row["created_at"]
    )


async def count_faces(conn: asyncpg.Connection, lib: LibraryRow, person_id: str) -> int:
    """Number of reference faces of a person."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM library_faces WHERE library_uid = $1 AND person_id = $2", lib.library_uid, person_id
        )
    )


async def insert_face(
    conn: asyncpg.Connection,
    lib: LibraryRow,
    person_id: str,
    face_id: str,
    point_id: uuid.UUID,
    embedding: npt.NDArray[np.float32],
    bbox: tuple[float, float, float, float],
    quality: float,
    raw_norm: float,
) -> FaceRow:
    """Insert a reference face."""
    row = await conn.fetchrow(
        """INSERT INTO library_faces (face_id, library_uid, person_id, point_id, embedding, bbox, quality, raw_norm)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           RETURNING face_id, person_id, point_id, bbox, quality, created_at""",
        face_id,
        lib.library_uid,
        person_id,
        point_id,
        embedding.astype(np.float32).tolist(),
        list(bbox),
        quality,
        raw_norm,
    )
    assert row is not None
    return _face(row)


async def person_embeddings(conn: asyncpg.Connection, lib: LibraryRow, person_id: str) -> npt.NDArray[np.float32]:
    """The stored (normalised) reference embeddings of a person, one per row."""
    rows = await conn.fetch(
        "SELECT embedding FROM library_faces WHERE library_uid = $1 AND person_id = $2 ORDER BY created_at, face_id",
        lib.library_uid,
        person_id,
    )
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.array([r["embedding"] for r in rows], dtype=np.float32)


async def get_face(conn: asyncpg.Connection, lib: LibraryRow, person_id: str, face_id: str) -> FaceRow:
    """One face of a person; NotFound when absent."""
    row = await conn.fetchrow(
        """SELECT face_id, person_id, point_id, bbox, quality, created_at FROM library_faces
           WHERE library_uid = $1 AND person_id = $2 AND face_id = $3""",
        lib.library_uid,
        person_id,
        face_id,
    )
    if row is None:
        raise NotFound(f"face '{face_id}' does not exist for person '{person_id}'")
    return _face(row)


async def delete_face(conn: asyncpg.Connection, face_id: str) -> None:
    """Delete one face row."""
    await conn.execute("DELETE FROM library_faces WHERE face_id = $1", face_id)


async def delete_person(conn: asyncpg.Connection, lib: LibraryRow, person_id: str) -> None:
    """Delete a person with its faces."""
    await conn.execute(
        "DELETE FROM library_persons WHERE library_uid = $1 AND person_id = $2", lib.library_uid, person_id
    )


async def _faces_of(conn: asyncpg.Connection, lib: LibraryRow, person_ids: list[str]) -> dict[str, list[FaceRow]]:
    rows = await conn.fetch(
        """SELECT face_id, person_id, point_id, bbox, quality, created_at FROM library_faces
           WHERE library_uid = $1 AND person_id = ANY($2::text[]) ORDER BY created_at, face_id""",
        lib.library_uid,
        person_ids,
    )
    faces: dict[str, list[FaceRow]] = {}
    for row in rows:
        faces.setdefault(row["person_id"], []).append(_face(row))
    return faces


def _person(row: asyncpg.Record, faces: list[FaceRow]) -> PersonRow:
    return PersonRow(
        row["person_id"], row["name"], row["metadata_json"] or "", row["centroid_point_id"], row["created_at"], faces
    )


async def get_person(conn: asyncpg.Connection, lib: LibraryRow, person_id: str) -> PersonRow:
    """A person with its faces; NotFound when absent."""
    row = await conn.fetchrow(
        """SELECT person_id, name, metadata::text AS metadata_json, centroid_point_id, created_at
           FROM library_persons WHERE library_uid = $1 AND person_id = $2""",
        lib.library_uid,
        person_id,
    )
    if row is None:
        raise NotFound(f"person '{person_id}' does not exist in library '{lib.library_id}'")
    faces = await _faces_of(conn, lib, [person_id])
    return _person(row, faces.get(person_id, []))


async def list_persons(conn: asyncpg.Connection, lib: LibraryRow, limit: int, after: str) -> list[PersonRow]:
    """Persons ordered by id after a keyset position, with their faces."""
    rows = await conn.fetch(
        """SELECT person_id, name, metadata::text AS metadata_json, centroid_point_id, created_at
           FROM library_persons WHERE library_uid = $1 AND person_id > $2 ORDER BY person_id LIMIT $3""",
        lib.library_uid,
        after,
        limit,
    )
    faces = await _faces_of(conn, lib, [r["person_id"] for r in rows])
    return [_person(r, faces.get(r["person_id"], [])) for r in rows]


async def person_names(conn: asyncpg.Connection, lib: LibraryRow, person_ids: list[str]) -> dict[str, str]:
    """Names of the persons that exist, by id (unknown ids are absent)."""
    rows = await conn.fetch(
        "SELECT person_id, name FROM library_persons WHERE library_uid = $1 AND person_id = ANY($2::text[])",
        lib.library_uid,
        person_ids,
    )
    return {r["person_id"]: r["name"] for r in rows}
