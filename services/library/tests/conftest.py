"""Fixtures of the library service's tests: both vector stores, a test calibration, a running service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from facemint_library.store import VectorStore, make_store
from facemint_library.testing import TEST_CALIBRATIONS, LibraryHarness, harness_settings, serve_library


@pytest.fixture(params=["edge", "qdrant"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each store test runs against both vector stores."""
    return str(request.param)


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[VectorStore]:
    """An open, empty vector store."""
    vector_store = make_store(harness_settings(backend, tmp_path))
    await vector_store.open()
    yield vector_store
    await vector_store.close()


@pytest.fixture
async def library(backend: str, tmp_path: Path, fresh_database: str) -> AsyncIterator[LibraryHarness]:
    """A running library service on a fresh database (accounts ``acc_a`` and ``acc_b`` are the gateway's: the
    library takes the caller's account id as given)."""
    async with serve_library(harness_settings(backend, tmp_path, fresh_database), TEST_CALIBRATIONS) as harness:
        yield harness
