"""The same behaviour from both vector stores: the embedded Qdrant engine and qdrant-client (:memory:)."""

from __future__ import annotations

import asyncio
import http.server
import importlib.metadata
import json
import threading
import uuid
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import qdrant_edge as qe

from facemint_library.settings import HnswSettings, LibrarySettings, QdrantSettings
from facemint_library.store import EdgeStore, QdrantServerStore, Scope, Space, VectorPoint, VectorStore, make_store
from facemint_library.synthetic import identity_samples, unit_rows
from facemint_library.testing import harness_settings

SPACE = Space("test-model", "1", 32)


def points(vectors: np.ndarray, account: str, library: str, persons: list[str]) -> list[VectorPoint]:
    return [
        VectorPoint(uuid.uuid4(), v, account, library, person, "template")
        for v, person in zip(vectors, persons, strict=True)
    ]


async def test_search_returns_the_nearest_points_of_the_scope_with_cosine_scores(store: VectorStore) -> None:
    rng = np.random.default_rng(1)
    vectors, labels = identity_samples(rng, 20, 3, SPACE.dim)
    await store.ensure_space(SPACE)
    await store.upsert(SPACE, points(vectors, "acc", "lib", [f"p{i}" for i in labels]))
    queries = vectors[[0, 30]]
    hits = await store.search(SPACE, Scope("acc", "lib"), queries, limit=5)
    assert [len(h) for h in hits] == [5, 5]
    exact = unit_rows(queries) @ unit_rows(vectors).T
    for row, query_hits in enumerate(hits):
        assert query_hits[0].person_id == f"p{labels[[0, 30][row]]}"
        assert np.allclose([h.score for h in query_hits], np.sort(exact[row])[::-1][:5], atol=1e-4)
        assert all(h.kind == "template" for h in query_hits)


async def test_search_never_crosses_accounts_or_libraries(store: VectorStore) -> None:
    rng = np.random.default_rng(2)
    vectors = unit_rows(rng.standard_normal((4, SPACE.dim), dtype=np.float32))
    await store.ensure_space(SPACE)
    await store.upsert(SPACE, points(vectors[:2], "acc_a", "lib1", ["a1", "a2"]))
    await store.upsert(SPACE, points(vectors[2:], "acc_b", "lib1", ["b1", "b2"]))
    await store.upsert(SPACE, points(vectors[:2], "acc_a", "lib2", ["c1", "c2"]))
    hits = await store.search(SPACE, Scope("acc_a", "lib1"), vectors, limit=10)
    assert {h.person_id for row in hits for h in row} == {"a1", "a2"}
    hits = await store.search(SPACE, Scope("acc_b", "lib2"), vectors, limit=10)
    assert hits == [[], [], [], []]


async def test_deletions_remove_points_by_id_person_and_library(store: VectorStore) -> None:
    rng = np.random.default_rng(3)
    vectors = unit_rows(rng.standard_normal((6, SPACE.dim), dtype=np.float32))
    await store.ensure_space(SPACE)
    batch = points(vectors, "acc", "lib", ["p1", "p1", "p2", "p2", "p3", "p3"])
    await store.upsert(SPACE, batch)
    await store.upsert(SPACE, points(vectors[:1], "acc", "other", ["p1"]))
    lib = Scope("acc", "lib")
    assert await store.count(SPACE, lib) == 6
    await store.delete_points(SPACE, lib, [batch[0].point_id])
    assert await store.count(SPACE, lib) == 5
    await store.delete_scope(SPACE, Scope("acc", "lib", "p2"))
    assert await store.count(SPACE, Scope("acc", "lib", "p2")) == 0
    hits = await store.search(SPACE, lib, vectors, limit=10)
    assert {h.person_id for row in hits for h in row} == {"p1", "p3"}
    await store.delete_scope(SPACE, lib)
    assert await store.count(SPACE, lib) == 0
    assert await store.count(SPACE, Scope("acc", "other")) == 1
    assert await store.total() == 1


async def test_upsert_replaces_a_point_with_the_same_id(store: VectorStore) -> None:
    rng = np.random.default_rng(4)
    a, b = unit_rows(rng.standard_normal((2, SPACE.dim), dtype=np.float32))
    point_id = uuid.uuid4()
    await store.ensure_space(SPACE)
    await store.upsert(SPACE, [VectorPoint(point_id, a, "acc", "lib", "p", "centroid")])
    await store.upsert(SPACE, [VectorPoint(point_id, b, "acc", "lib", "p", "centroid")])
    assert await store.count(SPACE) == 1
    [[hit]] = await store.search(SPACE, Scope("acc", "lib"), b[None, :], limit=3)
    assert hit.point_id == point_id and hit.kind == "centroid" and abs(hit.score - 1.0) < 1e-5


async def test_a_space_that_was_never_created_is_empty(store: VectorStore) -> None:
    query = np.ones((2, SPACE.dim), dtype=np.float32)
    assert await store.search(SPACE, Scope("acc", "lib"), query, limit=3) == [[], []]
    assert await store.count(SPACE) == 0
    await store.delete_scope(SPACE, Scope("acc", "lib"))
    await store.delete_points(SPACE, Scope("acc", "lib"), [uuid.uuid4()])


async def test_spaces_of_different_models_are_separate(store: VectorStore) -> None:
    other = Space("other-model", "2", 16)
    rng = np.random.default_rng(5)
    await store.ensure_space(SPACE)
    await store.ensure_space(other)
    await store.upsert(SPACE, points(unit_rows(rng.standard_normal((3, 32), dtype=np.float32)), "a", "l", ["x"] * 3))
    await store.upsert(other, points(unit_rows(rng.standard_normal((2, 16), dtype=np.float32)), "a", "l", ["y"] * 2))
    assert (await store.count(SPACE), await store.count(other), await store.total()) == (3, 2, 5)
    assert SPACE.name != other.name and "/" not in Space("m/x", "v 1", 8).name


async def test_edge_and_qdrant_client_agree_on_the_same_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    vectors, labels = identity_samples(rng, 50, 4, SPACE.dim)
    batch = points(vectors, "acc", "lib", [f"p{i}" for i in labels])
    queries = vectors[::17]
    results = []
    for backend in ("edge", "qdrant"):
        store = make_store(harness_settings(backend, tmp_path / backend))
        await store.open()
        await store.ensure_space(SPACE)
        await store.upsert(SPACE, batch)
        results.append(await store.search(SPACE, Scope("acc", "lib"), queries, limit=10, exact=True))
        await store.close()
    edge, qdrant = results
    for a, b in zip(edge, qdrant, strict=True):
        assert [h.point_id for h in a] == [h.point_id for h in b]
        assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-5)


async def loaded(
    settings: LibrarySettings, seed: int, identities: int, per_identity: int
) -> tuple[VectorStore, np.ndarray, np.ndarray]:
    """An open store of ``settings`` holding one library of synthetic identities (persons ``p<label>``)."""
    store = make_store(settings)
    await store.open()
    vectors, labels = identity_samples(np.random.default_rng(seed), identities, per_identity, SPACE.dim)
    await store.ensure_space(SPACE)
    await store.upsert(SPACE, points(vectors, "acc", "lib", [f"p{i}" for i in labels]))
    return store, vectors, labels


async def test_edge_store_survives_maintenance_and_a_restart(tmp_path: Path) -> None:
    settings = harness_settings("edge", tmp_path)
    store, vectors, _ = await loaded(settings, 7, 30, 2)
    assert isinstance(store, EdgeStore)
    await store.maintain()
    await store.close()
    store = make_store(settings)
    await store.open()
    assert await store.count(SPACE, Scope("acc", "lib")) == 60
    [hits] = await store.search(SPACE, Scope("acc", "lib"), vectors[:1], limit=1)
    assert hits[0].person_id == "p0"
    await store.close()


async def test_edge_store_indexes_a_growing_library_in_bounded_segments(tmp_path: Path) -> None:
    settings = harness_settings("edge", tmp_path)
    hnsw = HnswSettings(segment_kb=128, full_scan_threshold_kb=16, ef_search=64)  # 1024 vectors of 32-d
    store = make_store(settings.model_copy(update={"hnsw": hnsw}))
    assert isinstance(store, EdgeStore)
    await store.open()
    vectors, labels = identity_samples(np.random.default_rng(5), 660, 5, SPACE.dim)
    await store.ensure_space(SPACE)
    for start in range(0, len(vectors), 1100):  # each batch fills a segment: it is indexed on its own
        chunk = slice(start, start + 1100)
        await store.upsert(SPACE, points(vectors[chunk], "acc", "lib", [f"p{i}" for i in labels[chunk]]))
    info = store._shards[(SPACE.name, "lib")].info()
    assert (info.points_count, info.indexed_vectors_count) == (3300, 3300)
    assert info.segments_count >= 3
    await store.maintain()  # a segment limit also bounds merges: the segments stay apart
    assert store._shards[(SPACE.name, "lib")].info().segments_count >= 3
    queries = vectors[::331]
    hits = await store.search(SPACE, Scope("acc", "lib"), queries, limit=1)
    assert [h[0].person_id for h in hits] == [f"p{labels[i]}" for i in range(0, len(vectors), 331)]
    await store.close()


@pytest.mark.parametrize("quantization", ["int8", "none"])
async def test_search_returns_exact_cosines_with_and_without_quantization(
    backend: str, tmp_path: Path, quantization: str
) -> None:
    # With int8 vectors the candidates must still come back with their exact float cosines (rescoring). A library
    # this small is scanned, not graphed; the graph path at 100k-1M is measured by `make bench-library`.
    settings = harness_settings(backend, tmp_path)
    settings = settings.model_copy(update={"hnsw": HnswSettings(quantization=quantization)})
    store, vectors, labels = await loaded(settings, 11, 400, 3)
    if isinstance(store, EdgeStore):
        await store.maintain()
    queries = vectors[::97]
    hits = await store.search(SPACE, Scope("acc", "lib"), queries, limit=5)
    exact = unit_rows(queries) @ unit_rows(vectors).T
    for row, query_hits in enumerate(hits):
        assert query_hits[0].person_id == f"p{labels[row * 97]}"
        assert np.allclose([h.score for h in query_hits], np.sort(exact[row])[::-1][:5], atol=1e-4)
    await store.close()


async def test_edge_store_keeps_each_library_in_its_own_shard_and_drops_it_with_the_library(tmp_path: Path) -> None:
    store = make_store(harness_settings("edge", tmp_path))
    assert isinstance(store, EdgeStore)
    await store.open()
    rng = np.random.default_rng(8)
    vectors = unit_rows(rng.standard_normal((4, SPACE.dim), dtype=np.float32))
    await store.upsert(SPACE, points(vectors[:2], "acc", "lib_a", ["a1", "a2"]))
    await store.upsert(SPACE, points(vectors[2:], "acc", "lib_b", ["b1", "b2"]))
    shards = store.data_dir / SPACE.name
    assert sorted(p.name for p in shards.iterdir()) == ["lib_a", "lib_b"]
    await store.delete_scope(SPACE, Scope("acc", "lib_a"))
    assert sorted(p.name for p in shards.iterdir()) == ["lib_b"]
    assert await store.search(SPACE, Scope("acc", "lib_a"), vectors, limit=4) == [[], [], [], []]
    await store.upsert(SPACE, points(vectors[:1], "acc", "lib_a", ["a3"]))  # the library id can be used again
    assert (await store.count(SPACE, Scope("acc", "lib_a")), await store.count(SPACE)) == (1, 3)
    await store.close()


async def test_edge_store_splits_a_shard_of_the_old_per_model_layout_into_library_shards(tmp_path: Path) -> None:
    # Stores written before per-library shards held one shard per model, libraries told apart by payload.
    root = tmp_path / "vectors"
    old = qe.EdgeShard.create(
        str(root / SPACE.name), qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=SPACE.dim, distance=qe.Distance.Cosine))
    )
    rng = np.random.default_rng(9)
    vectors = unit_rows(rng.standard_normal((2500, SPACE.dim), dtype=np.float32))
    libraries = ["lib_a" if i % 3 else "lib_b" for i in range(len(vectors))]
    ids = [uuid.uuid4() for _ in vectors]
    old.update(
        qe.UpdateOperation.upsert_points(
            [
                qe.Point(pid, v.tolist(), dict(account_id="acc", library_uid=lib, person_id=f"p{i}", kind="template"))
                for i, (pid, v, lib) in enumerate(zip(ids, vectors, libraries, strict=True))
            ]
        )
    )
    old.flush()
    old.close()
    store = EdgeStore(root, HnswSettings())
    await store.open()
    assert sorted(p.name for p in (root / SPACE.name).iterdir()) == ["lib_a", "lib_b"]
    assert await store.count(SPACE, Scope("acc", "lib_a")) == libraries.count("lib_a")
    assert await store.count(SPACE, Scope("acc", "lib_b")) == libraries.count("lib_b")
    [[hit]] = await store.search(SPACE, Scope("acc", "lib_b"), vectors[3:4], limit=1)
    assert (hit.point_id, hit.person_id, hit.kind) == (ids[3], "p3", "template")
    assert abs(hit.score - 1.0) < 1e-4
    await store.close()
    assert not list(root.glob("*.old")) and not list(root.glob("*.split"))


class _QdrantRestStandIn(http.server.BaseHTTPRequestHandler):
    """Answers the three calls QdrantServerStore makes to set up a collection, recording their bodies. A stand-in,
    not a Qdrant: no Qdrant server can be installed from the registries this project builds from."""

    created: ClassVar[list[dict[str, Any]]] = []
    version_asked = threading.Event()  # the client checks the server's version from a thread of its own

    def _answer(self, result: object) -> None:
        body = json.dumps({"result": result, "status": "ok", "time": 0.0}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the client's version check (GET /), then GET /collections/<name>/exists
        if self.path == "/":
            version = importlib.metadata.version("qdrant-client")  # a server of the client's own release
            body = json.dumps({"title": "qdrant - vector search engine", "version": version}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.version_asked.set()
            return
        self._answer({"exists": False})

    def do_PUT(self) -> None:  # noqa: N802 - PUT /collections/<name> and /collections/<name>/index
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if self.path.split("?")[0].endswith("/index"):
            self._answer({"operation_id": 1, "status": "completed"})
        else:
            self.created.append(body)
            self._answer(True)

    def log_message(self, *args: object) -> None:
        pass


async def test_collections_are_created_with_the_configured_shards_and_replicas() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QdrantRestStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = QdrantSettings(
        url=f"http://127.0.0.1:{server.server_port}", shard_number=3, replication_factor=3, write_consistency_factor=2
    )
    store = QdrantServerStore(settings, HnswSettings())
    await store.open()
    try:
        await store.ensure_space(Space("sface", "2021dec", 128))
        assert await asyncio.to_thread(_QdrantRestStandIn.version_asked.wait, 10)
    finally:
        await store.close()
        server.shutdown()
        server.server_close()
    (created,) = _QdrantRestStandIn.created
    assert (created["shard_number"], created["replication_factor"], created["write_consistency_factor"]) == (3, 3, 2)
