"""Pytest fixtures that start real servers on 127.0.0.1 (free ports) and stop them by PID.

Registered by the repository's root ``conftest.py``. Session-scoped: one PostgreSQL, one NATS, one object store and
one Triton serve the whole test run; tests isolate themselves by using fresh database names / stream names where
needed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NoReturn

import asyncpg
import pytest

from facemint_local.servers import NatsServer, ObjectStore, PostgresServer
from facemint_local.testmedia import repo_root
from facemint_local.triton import TritonServer, ensure_triton_env, generate_local_repository


def models_missing(message: str) -> NoReturn:
    """Stop a test whose models are not made: a skip for a bare ``pytest``, a failure under ``make test`` (which
    makes the models first and sets ``FACEMINT_REQUIRE_MODELS=1``, so a missing model never passes as a skip)."""
    if os.environ.get("FACEMINT_REQUIRE_MODELS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the test session."""
    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A real NATS server with JetStream for the test session."""
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    """A real S3-compatible object store for the test session."""
    server = ObjectStore(tmp_path_factory.mktemp("objects"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """A real Triton server (the binary bundled in nvidia-pytriton) serving every model ``make models`` produced.

    The models come from ``$FACEMINT_INFERENCE_MODEL_DIR`` (the inference service's own setting), else the
    repository's ``triton-models``; they are served through a generated Python-backend repository that runs the same
    ONNX files. The Triton venv is built once into ``.cache/triton-venv``. Skips when no model exists yet.
    """
    root = repo_root()
    source = Path(os.environ.get("FACEMINT_INFERENCE_MODEL_DIR") or root / "triton-models")
    base = tmp_path_factory.mktemp("triton")
    if not generate_local_repository(source, base / "repository"):
        models_missing(f"no models in {source}: run `make models`")
    server = TritonServer(base / "repository", ensure_triton_env(root / ".cache"), log_dir=base)
    server.start()
    yield server
    server.stop()


async def create_database(admin_dsn: str, prefix: str = "t") -> str:
    """A new database with every service's role, schema and migrations (as each role applies them in production).

    Returns an administrator DSN whose ``search_path`` (libpq ``options``, which asyncpg, psql and pg_dump all
    read) names every service's schema, for tests that set up or
    inspect rows of several services; a service under test may use it, or its own role's DSN
    (:func:`facemint_core.schemas.role_dsn`).
    """
    from facemint_core.schemas import SCHEMAS, migrate_all

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    await migrate_all(dsn)
    return dsn + "?options=-csearch_path%3D" + "%2C".join(entry.schema for entry in SCHEMAS)


@pytest.fixture
async def fresh_database(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """A new database made by :func:`create_database`; yields its DSN and drops it afterwards."""
    dsn = await create_database(postgres_server.dsn)
    yield dsn
    admin = await asyncpg.connect(postgres_server.dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1].split("?")[0]}" WITH (FORCE)')
    finally:
        await admin.close()
