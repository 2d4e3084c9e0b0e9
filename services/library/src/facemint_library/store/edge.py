"""The embedded engine: Qdrant's Rust engine in the process (``qdrant-edge-py``), one shard per library."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from facemint_library.settings import HnswSettings
from facemint_library.store.base import (
    SPACE_PREFIX,
    FloatArray,
    Hit,
    Scope,
    Space,
    VectorPoint,
    VectorStore,
    as_uuid,
    owned_hits,
    point_payload,
    scope_terms,
)

log = logging.getLogger(__name__)

_EDGE_CONFIG = "edge_config.json"


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
        for space_dir in sorted(self.data_dir.glob(f"{SPACE_PREFIX}*")):
            if (space_dir / _EDGE_CONFIG).exists():
                await self._migrate(space_dir)
        for space_dir in sorted(self.data_dir.glob(f"{SPACE_PREFIX}*")):
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
                    qe.Point(as_uuid(record.id), list(record.vector), payload)
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
        terms = scope_terms(scope)
        return qe.Filter(must=[qe.FieldCondition(key, match=qe.MatchValue(value)) for key, value in terms])

    async def upsert(self, space: Space, points: Sequence[VectorPoint]) -> None:
        """Insert or replace points (into the shard of each point's library)."""
        by_library: dict[str, list[Any]] = {}
        for p in points:
            vector = p.vector.astype(np.float32).tolist()
            by_library.setdefault(p.library_uid, []).append(qe.Point(p.point_id, vector, point_payload(p)))
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
        return [owned_hits(scope, rows) for rows in results]

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
