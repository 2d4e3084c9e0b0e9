"""Vector storage behind one small interface, with two implementations chosen by configuration.

- :class:`EdgeStore`: Qdrant's Rust engine embedded in the process (``qdrant-edge-py``), data under ``data_dir``;
  the single-machine default.
- :class:`QdrantServerStore`: a Qdrant server through ``qdrant_client.AsyncQdrantClient``; the cluster default.
  ``location=":memory:"`` runs the client's local mode, which exercises the same client calls in tests.

Layout, Qdrant server: one collection ("space") per embedding model (id, version, dimension), shared by every
library enrolled with that model. Points carry ``account_id``, ``library_uid``, ``person_id`` and ``kind``
(``template`` or ``centroid``) in their payload; every deletion is filtered by account *and* library, every search
by library with the account verified on each hit (:func:`_owned_hits`), and ``library_uid`` has a tenant-optimised
keyword index. The collection has no global HNSW graph (``m=0``): each library gets its own graph (``payload_m``)
once it outgrows ``full_scan_threshold_kb``; smaller libraries are searched exactly through the payload index.
One collection per model rather than per library because a Qdrant server's cost is per collection (segments, WAL,
optimizer threads), and payload partitioning with per-tenant graphs is its recommended multi-tenant layout.

Layout, embedded engine: one shard per library of each space (:class:`EdgeStore`): a shard is cheap in process,
and a search then needs no filter at all, which is what makes 1M-vector libraries fast (ADR 0007). A shard is
indexed in segments of at most ``HnswSettings.segment_kb``, which one search walks in parallel (ADR 0008).

Both: vectors of different models never share a collection or shard, so the model binding stays explicit. Vectors
are scalar-quantised to int8 by default (``HnswSettings``): graphs are built and searched on the bytes, and the
best candidates are rescored with the float vectors.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
import re
import shutil
import uuid
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import qdrant_edge as qe
from qdrant_client import AsyncQdrantClient, models

from facemint_library.settings import HnswSettings, LibrarySettings, QdrantSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
PointKind = Literal["template", "centroid"]
FloatArray = npt.NDArray[np.float32]

_SPACE_PREFIX = "faces__"
_EDGE_CONFIG = "edge_config.json"


@dataclass(frozen=True)
class Space:
    """The collection of one embedding model."""

    model_id: str
    model_version: str
    dim: int

    @property
    def name(self) -> str:
        """A collection / directory name that is safe everywhere."""

        def clean(value: str) -> str:
            return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-") or "none"

        return f"{_SPACE_PREFIX}{clean(self.model_id)}__{clean(self.model_version)}__{self.dim}"


@dataclass(frozen=True)
class Scope:
    """What a search or deletion may touch: one library of one account, optionally one person."""

    account_id: str
    library_uid: str
    person_id: str | None = None


@dataclass(frozen=True)
class VectorPoint:
    """A vector with its ownership payload."""

    point_id: uuid.UUID
    vector: FloatArray
    account_id: str
    library_uid: str
    person_id: str
    kind: PointKind


@dataclass(frozen=True)
class Hit:
    """One nearest point: its person and its cosine similarity to the query."""

    point_id: uuid.UUID
    person_id: str
    kind: str
    score: float


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _payload(point: VectorPoint) -> dict[str, str]:
    return {
        "account_id": point.account_id,
        "library_uid": point.library_uid,
        "person_id": point.person_id,
        "kind": point.kind,
    }


def _scope_terms(scope: Scope, with_account: bool = True) -> list[tuple[str, str]]:
    terms = [("account_id", scope.account_id)] if with_account else []
    terms.append(("library_uid", scope.library_uid))
    if scope.person_id is not None:
        terms.append(("person_id", scope.person_id))
    return terms


def _owned_hits(scope: Scope, rows: Sequence[Any]) -> list[Hit]:
    """Hits of a library's search, each checked against the scope's account.

    Searches are confined to one library (its own shard, or a ``library_uid`` filter on a server): a library uid
    belongs to exactly one account (the service checks ownership in PostgreSQL before searching), and a second
    condition checked at every point the graph visits made 1M-vector searches ~1.7x slower. The account is still
    verified on what comes back, so a point of another tenant can never reach a caller even if a uid were shared.
    """
    hits = []
    for point in rows:
        payload = point.payload or {}
        if payload.get("account_id") != scope.account_id:
            log.error("vector search returned a point of another account; dropped", extra={"point": str(point.id)})
            continue
        hits.append(Hit(_as_uuid(point.id), str(payload["person_id"]), str(payload["kind"]), float(point.score)))
    return hits


class VectorStore(abc.ABC):
    """Stores face vectors per embedding model and answers filtered nearest-neighbour queries."""

    backend: str = "abstract"

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect to / load the store."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and release everything."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Return when the store answers; raise otherwise (readiness)."""

    @abc.abstractmethod
    async def ensure_space(self, space: Space) -> None:
        """Create the model's collection and its payload indexes if they do not exist."""

    @abc.abstractmethod
    async def upsert(self, space: Space, points: Sequence[VectorPoint]) -> None:
        """Insert or replace points (durable when this returns)."""

    @abc.abstractmethod
    async def delete_points(self, space: Space, scope: Scope, point_ids: Sequence[uuid.UUID]) -> None:
        """Delete points of the scope by id (missing ids are ignored)."""

    @abc.abstractmethod
    async def delete_scope(self, space: Space, scope: Scope) -> None:
        """Delete every point of a library, or of one person in it."""

    @abc.abstractmethod
    async def search(
        self, space: Space, scope: Scope, queries: FloatArray, limit: int, exact: bool = False
    ) -> list[list[Hit]]:
        """Nearest points within ``scope`` for each row of ``queries``, best first (cosine similarity)."""

    @abc.abstractmethod
    async def count(self, space: Space, scope: Scope | None = None) -> int:
        """Exact number of points in a space, or in a scope of it."""

    @abc.abstractmethod
    async def total(self) -> int:
        """Number of points in every space (for the vectors gauge)."""


# --------------------------------------------------------------------------------------------------------------
# Embedded Qdrant engine (qdrant-edge-py)
# --------------------------------------------------------------------------------------------------------------


class EdgeStore(VectorStore):
    """Qdrant's engine in process: one shard per library, under ``data_dir/<space>/<library uid>/``.

    Each library is a shard of its own with a plain HNSW graph, so a search walks that graph with no filter at all:
    at 1M vectors a filtered search on a shared shard (``library_uid`` checked at every visited point) was ~2.5x
    slower at the same recall (ADR 0007). Tenants are apart on disk; deleting a library drops its directory. A
    shard costs one open file and ~0.6 MiB of memory, so thousands of libraries fit on one machine.

    The engine has no background threads of its own, so :meth:`maintain` (called periodically by the service and
    after bulk loads) runs the segment optimizers that build HNSW graphs and vacuum deleted points. Blocking calls
    run in a small thread pool; writes to one shard are serialised by a lock. Limitation of ``qdrant-edge-py`` 0.9:
    ``optimize`` holds the Python GIL while it builds a graph, so the whole process pauses for that time (seconds
    to a minute per 30k new 128-d vectors on 2 busy cores); large, growing libraries belong on a Qdrant server.
    Stores written by earlier versions (one shard per model, libraries told apart by payload) are split into
    per-library shards when the store opens (:meth:`_migrate`).
    """

    backend = "edge"

    def __init__(self, data_dir: Path, hnsw: HnswSettings, threads: int = 2) -> None:
        self.data_dir = data_dir
        self.hnsw = hnsw
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="edge-store")
        self._shards: dict[tuple[str, str], Any] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._create_lock = asyncio.Lock()

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args))

    def _config(self, dim: int) -> Any:
        int8 = self.hnsw.quantization == "int8"
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
            hnsw_config=qe.HnswIndexConfig(
                m=self.hnsw.m, ef_construct=self.hnsw.ef_construct, full_scan_threshold=self.hnsw.full_scan_threshold_kb
            ),
            quantization_config=qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, always_ram=True)
            if int8
            else None,
            # Segments under the full-scan threshold are searched exactly, so only larger ones get a graph.
            optimizers=qe.EdgeOptimizersConfig(
                max_segment_size=self.hnsw.segment_kb,
                indexing_threshold=min(self.hnsw.full_scan_threshold_kb, self.hnsw.segment_kb),
            ),
            max_search_threads=self.hnsw.search_threads or None,
        )

    def _search_params(self, limit: int, exact: bool) -> Any:
        rescore = qe.QuantizationSearchParams(rescore=True, oversampling=self.hnsw.oversampling)
        quantized = self.hnsw.quantization == "int8"
        return qe.SearchParams(
            hnsw_ef=max(self.hnsw.ef_search, limit), exact=exact, quantization=rescore if quantized else None
        )

    async def open(self) -> None:
        """Load every library shard found under ``data_dir`` (splitting shards of the old layout first)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for space_dir in sorted(self.data_dir.glob(f"{_SPACE_PREFIX}*")):
            if (space_dir / _EDGE_CONFIG).exists():
                await self._migrate(space_dir)
        for space_dir in sorted(self.data_dir.glob(f"{_SPACE_PREFIX}*")):
            for path in sorted(space_dir.iterdir()):
                if not (path / _EDGE_CONFIG).exists():  # a shard whose creation did not complete: it held nothing
                    shutil.rmtree(path, ignore_errors=True)
                    continue
                key = (space_dir.name, path.name)
                self._shards[key] = await self._run(qe.EdgeShard.load, str(path))
                self._locks[key] = asyncio.Lock()
        log.info("vector shards loaded", extra={"shards": len(self._shards)})

    async def _migrate(self, old: Path) -> None:
        """Split a per-model shard of the old layout into per-library shards (crash-safe: the old shard is only
        removed once the new ones are complete)."""
        staging = old.with_name(old.name + ".split")
        shutil.rmtree(staging, ignore_errors=True)
        source = await self._run(qe.EdgeShard.load, str(old))
        config = self._config(int(json.loads((old / _EDGE_CONFIG).read_text())["vectors"][""]["size"]))
        created: dict[str, Any] = {}
        offset = None
        while True:
            request = qe.ScrollRequest(offset=offset, limit=1000, with_payload=True, with_vector=True)
            records, offset = await self._run(source.scroll, request)
            by_library: dict[str, list[Any]] = {}
            for record in records:
                payload = dict(record.payload or {})
                by_library.setdefault(str(payload.get("library_uid", "")), []).append(
                    qe.Point(_as_uuid(record.id), list(record.vector), payload)
                )
            for library_uid, points in by_library.items():
                if library_uid not in created:
                    created[library_uid] = await self._run(self._new_shard, staging / library_uid, config)
                await self._run(created[library_uid].update, qe.UpdateOperation.upsert_points(points))
            if offset is None:
                break
        for shard in [*created.values(), source]:
            await self._run(shard.flush)
            await self._run(shard.close)
        staging.mkdir(exist_ok=True)
        moved = old.with_name(old.name + ".old")
        old.rename(moved)
        staging.rename(old)
        shutil.rmtree(moved)
        log.info("vector shard split into library shards", extra={"space": old.name, "libraries": len(created)})

    @staticmethod
    def _new_shard(path: Path, config: Any) -> Any:
        path.parent.mkdir(parents=True, exist_ok=True)
        shard = qe.EdgeShard.create(str(path), config)
        for field in ("account_id", "person_id"):  # deletion filters; the graph needs no payload links
            index = qe.KeywordIndexParams(enable_hnsw=False)
            shard.update(qe.UpdateOperation.create_field_index(field, index))
        shard.flush()
        return shard

    async def close(self) -> None:
        """Flush and close every shard."""
        for shard in self._shards.values():
            await self._run(shard.flush)
            await self._run(shard.close)
        self._shards.clear()
        self._pool.shutdown(wait=True)

    async def ping(self) -> None:
        """The engine is in process: ready once the data directory is usable."""
        if not self.data_dir.is_dir():
            raise RuntimeError(f"vector data directory {self.data_dir} is missing")

    async def ensure_space(self, space: Space) -> None:
        """Nothing to do: a library's shard is created with its first vector."""

    async def _writable(self, space: Space, library_uid: str) -> tuple[str, str]:
        """The key of a library's shard, created when missing."""
        key = (space.name, library_uid)
        if key not in self._shards:
            async with self._create_lock:
                if key not in self._shards:
                    path = self.data_dir / space.name / library_uid
                    shutil.rmtree(path, ignore_errors=True)  # a half-created shard from a crash
                    self._shards[key] = await self._run(self._new_shard, path, self._config(space.dim))
                    self._locks[key] = asyncio.Lock()
                    log.info("vector shard created", extra={"space": space.name, "library_uid": library_uid})
        return key

    async def _write(self, key: tuple[str, str], operation: Any) -> None:
        async with self._locks[key]:
            shard = self._shards.get(key)
            if shard is None:  # the library was deleted meanwhile
                return
            await self._run(shard.update, operation)
            await self._run(shard.flush)
        self._dirty.add(key)

    @staticmethod
    def _filter(scope: Scope) -> Any:
        terms = _scope_terms(scope)
        return qe.Filter(must=[qe.FieldCondition(key, match=qe.MatchValue(value)) for key, value in terms])

    async def upsert(self, space: Space, points: Sequence[VectorPoint]) -> None:
        """Insert or replace points (into the shard of each point's library)."""
        by_library: dict[str, list[Any]] = {}
        for p in points:
            vector = p.vector.astype(np.float32).tolist()
            by_library.setdefault(p.library_uid, []).append(qe.Point(p.point_id, vector, _payload(p)))
        for library_uid, batch in by_library.items():
            key = await self._writable(space, library_uid)
            await self._write(key, qe.UpdateOperation.upsert_points(batch))
            await self._seal_if_full(key, space.dim)

    async def _seal_if_full(self, key: tuple[str, str], dim: int) -> None:
        """Index the vectors not yet in a graph once they fill a segment (``segment_kb``), so that a large library
        is a set of bounded segments that one search walks in parallel rather than one huge graph (the engine's
        optimizer indexes whatever has accumulated as one segment and never splits it)."""
        async with self._locks[key]:
            shard = self._shards.get(key)
            if shard is None:
                return
            info = await self._run(shard.info)
            unindexed_kb = (int(info.points_count) - int(info.indexed_vectors_count)) * dim * 4 / 1024
            if unindexed_kb >= self.hnsw.segment_kb:
                await self._run(shard.optimize)

    async def delete_points(self, space: Space, scope: Scope, point_ids: Sequence[uuid.UUID]) -> None:
        """Delete points of the scope's library by id."""
        key = (space.name, scope.library_uid)
        if point_ids and key in self._shards:
            await self._write(key, qe.UpdateOperation.delete_points(list(point_ids)))

    async def delete_scope(self, space: Space, scope: Scope) -> None:
        """Delete one person's points, or a whole library by dropping its shard."""
        key = (space.name, scope.library_uid)
        if key not in self._shards:
            return
        if scope.person_id is not None:
            await self._write(key, qe.UpdateOperation.delete_points_by_filter(self._filter(scope)))
            return
        async with self._locks[key]:
            shard = self._shards.pop(key, None)
            self._dirty.discard(key)
            if shard is not None:
                await self._run(shard.close)
                await self._run(shutil.rmtree, self.data_dir / space.name / scope.library_uid)

    async def search(
        self, space: Space, scope: Scope, queries: FloatArray, limit: int, exact: bool = False
    ) -> list[list[Hit]]:
        """Batched nearest-neighbour search in the library's own shard (no filter needed)."""
        shard = self._shards.get((space.name, scope.library_uid))
        if shard is None or len(queries) == 0:
            return [[] for _ in range(len(queries))]
        params = self._search_params(limit, exact)
        requests = [
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(q.astype(np.float32).tolist()),
                params=params,
                with_payload=["person_id", "kind", "account_id"],
            )
            for q in queries
        ]
        results = await self._run(shard.query_batch, qe.QueryBatchRequest(requests))
        return [_owned_hits(scope, rows) for rows in results]

    async def count(self, space: Space, scope: Scope | None = None) -> int:
        """Exact count, of one library (or one person in it) or of the whole space."""
        if scope is None:
            keys = [key for key in self._shards if key[0] == space.name]
            request = qe.CountRequest(exact=True)
        else:
            keys = [(space.name, scope.library_uid)] if (space.name, scope.library_uid) in self._shards else []
            request = qe.CountRequest(exact=True, filter=self._filter(scope))
        return sum([int(await self._run(self._shards[key].count, request)) for key in keys])

    async def total(self) -> int:
        """Points in every shard."""
        total = 0
        for shard in list(self._shards.values()):
            info = await self._run(shard.info)
            total += int(info.points_count)
        return total

    async def maintain(self) -> bool:
        """Run the optimizers of every shard written since the last call; True if any segment changed."""
        changed = False
        for key in list(self._dirty):
            self._dirty.discard(key)
            lock = self._locks.get(key)
            if lock is None:
                continue
            async with lock:
                shard = self._shards.get(key)
                if shard is not None:
                    changed |= bool(await self._run(shard.optimize))
        return changed


# --------------------------------------------------------------------------------------------------------------
# Qdrant server (qdrant-client)
# --------------------------------------------------------------------------------------------------------------


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
        terms = _scope_terms(scope, with_account)
        return models.Filter(must=[models.FieldCondition(key=k, match=models.MatchValue(value=v)) for k, v in terms])

    async def _exists(self, space: Space) -> bool:
        return space.name in self._known or bool(await self.client.collection_exists(space.name))

    async def upsert(self, space: Space, points: Sequence[VectorPoint]) -> None:
        """Insert or replace points and wait until they are applied."""
        if not points:
            return
        batch = [
            models.PointStruct(id=str(p.point_id), vector=p.vector.astype(np.float32).tolist(), payload=_payload(p))
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
        return [_owned_hits(scope, response.points) for response in responses]

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
            if collection.name.startswith(_SPACE_PREFIX):
                total += int((await self.client.count(collection.name, exact=False)).count)
        return total


def make_store(settings: LibrarySettings) -> VectorStore:
    """The store selected by ``vector_backend``."""
    if settings.vector_backend == "qdrant":
        return QdrantServerStore(settings.qdrant, settings.hnsw)
    return EdgeStore(settings.data_dir / "vectors", settings.hnsw)
