"""A Qdrant server through ``qdrant_client.AsyncQdrantClient``: one collection per embedding model."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from qdrant_client import AsyncQdrantClient, models

from facemint_library.settings import HnswSettings, QdrantSettings
from facemint_library.store.base import (
    SPACE_PREFIX,
    FloatArray,
    Hit,
    Scope,
    Space,
    VectorPoint,
    VectorStore,
    owned_hits,
    point_payload,
    scope_terms,
)


class QdrantServerStore(VectorStore):
    """A Qdrant server (or qdrant-client's local mode) through the async client."""

    backend = "qdrant"

    def __init__(self, settings: QdrantSettings, hnsw: HnswSettings) -> None:
        self.settings = settings
        self.hnsw = hnsw
        self._client: Any = None
        self._known: set[str] = set()
        self._create_lock = asyncio.Lock()

    @property
    def client(self) -> Any:
        """The connected ``AsyncQdrantClient``."""
        if self._client is None:
            raise RuntimeError("the Qdrant store is not open")
        return self._client

    async def open(self) -> None:
        """Create the client (connections are made lazily)."""
        if self.settings.location:
            self._client = AsyncQdrantClient(location=self.settings.location)
        else:
            self._client = AsyncQdrantClient(
                url=self.settings.url,
                api_key=self.settings.api_key or None,
                timeout=int(self.settings.timeout_seconds),
            )

    async def close(self) -> None:
        """Close the client."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def ping(self) -> None:
        """List collections: fails when the server does not answer."""
        await self.client.get_collections()

    async def ensure_space(self, space: Space) -> None:
        """Create the collection and its payload indexes if missing."""
        if space.name in self._known:
            return
        async with self._create_lock:
            if space.name in self._known:
                return
            if not await self.client.collection_exists(space.name):
                # Sharding and replication are set once, at creation: a restart never changes an existing collection
                # (scale one with Qdrant's own cluster API).
                await self.client.create_collection(
                    space.name,
                    vectors_config=models.VectorParams(size=space.dim, distance=models.Distance.COSINE),
                    shard_number=self.settings.shard_number,
                    replication_factor=self.settings.replication_factor,
                    write_consistency_factor=self.settings.write_consistency_factor,
                    hnsw_config=models.HnswConfigDiff(
                        m=0,
                        ef_construct=self.hnsw.ef_construct,
                        full_scan_threshold=self.hnsw.full_scan_threshold_kb,
                        payload_m=self.hnsw.m,
                    ),
                    quantization_config=models.ScalarQuantization(
                        scalar=models.ScalarQuantizationConfig(
                            type=models.ScalarType.INT8, quantile=0.99, always_ram=True
                        )
                    )
                    if self.hnsw.quantization == "int8"
                    else None,
                )
                indexes: list[tuple[str, Any]] = [
                    ("library_uid", models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)),
                    ("account_id", models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, enable_hnsw=False)),
                    ("person_id", models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, enable_hnsw=False)),
                ]
                with self._local_mode_quiet():
                    for field, schema in indexes:
                        await self.client.create_payload_index(space.name, field, field_schema=schema, wait=True)
            self._known.add(space.name)

    @contextlib.contextmanager
    def _local_mode_quiet(self) -> Iterator[None]:
        """In local mode (tests), silence its notes that payload indexes and HNSW parameters are ignored."""
        with warnings.catch_warnings():
            if self.settings.location:
                warnings.filterwarnings("ignore", message="(Payload indexes have no effect|Local mode performs exact)")
            yield

    @staticmethod
    def _filter(scope: Scope, with_account: bool = True) -> Any:
        terms = scope_terms(scope, with_account)
        return models.Filter(must=[models.FieldCondition(key=k, match=models.MatchValue(value=v)) for k, v in terms])

    async def _exists(self, space: Space) -> bool:
        return space.name in self._known or bool(await self.client.collection_exists(space.name))

    async def upsert(self, space: Space, points: Sequence[VectorPoint]) -> None:
        """Insert or replace points and wait until they are applied."""
        if not points:
            return
        batch = [
            models.PointStruct(
                id=str(p.point_id), vector=p.vector.astype(np.float32).tolist(), payload=point_payload(p)
            )
            for p in points
        ]
        await self.client.upsert(space.name, points=batch, wait=True)

    async def delete_points(self, space: Space, scope: Scope, point_ids: Sequence[uuid.UUID]) -> None:
        """Delete points of the scope by id."""
        if point_ids and await self._exists(space):
            flt = self._filter(scope)
            flt.must.append(models.HasIdCondition(has_id=[str(p) for p in point_ids]))
            await self.client.delete(space.name, points_selector=models.FilterSelector(filter=flt), wait=True)

    async def delete_scope(self, space: Space, scope: Scope) -> None:
        """Delete every point matching the scope."""
        if await self._exists(space):
            selector = models.FilterSelector(filter=self._filter(scope))
            await self.client.delete(space.name, points_selector=selector, wait=True)

    async def search(
        self, space: Space, scope: Scope, queries: FloatArray, limit: int, exact: bool = False
    ) -> list[list[Hit]]:
        """One batched query request for all faces."""
        if len(queries) == 0 or not await self._exists(space):
            return [[] for _ in range(len(queries))]
        flt = self._filter(scope, with_account=False)
        rescore = models.QuantizationSearchParams(rescore=True, oversampling=self.hnsw.oversampling)
        params = models.SearchParams(
            hnsw_ef=max(self.hnsw.ef_search, limit),
            exact=exact,
            quantization=rescore if self.hnsw.quantization == "int8" else None,
        )
        requests = [
            models.QueryRequest(
                query=q.astype(np.float32).tolist(),
                filter=flt,
                limit=limit,
                params=params,
                with_payload=["person_id", "kind", "account_id"],
            )
            for q in queries
        ]
        with self._local_mode_quiet():
            responses = await self.client.query_batch_points(space.name, requests=requests)
        return [owned_hits(scope, response.points) for response in responses]

    async def count(self, space: Space, scope: Scope | None = None) -> int:
        """Exact count."""
        if not await self._exists(space):
            return 0
        result = await self.client.count(space.name, count_filter=self._filter(scope) if scope else None, exact=True)
        return int(result.count)

    async def total(self) -> int:
        """Approximate points over every Facemint collection."""
        total = 0
        for collection in (await self.client.get_collections()).collections:
            if collection.name.startswith(SPACE_PREFIX):
                total += int((await self.client.count(collection.name, exact=False)).count)
        return total
