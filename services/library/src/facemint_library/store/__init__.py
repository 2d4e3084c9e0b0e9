"""Vector storage behind one small interface, with two implementations chosen by configuration.

- :class:`EdgeStore`: Qdrant's Rust engine embedded in the process (``qdrant-edge-py``), data under ``data_dir``;
  the single-machine default.
- :class:`QdrantServerStore`: a Qdrant server through ``qdrant_client.AsyncQdrantClient``; the cluster default.
  ``location=":memory:"`` runs the client's local mode, which exercises the same client calls in tests.

Layout, Qdrant server: one collection ("space") per embedding model (id, version, dimension), shared by every
library enrolled with that model. Points carry ``account_id``, ``library_uid``, ``person_id`` and ``kind``
(``template`` or ``centroid``) in their payload; every deletion is filtered by account *and* library, every search
by library with the account verified on each hit (:func:`owned_hits`), and ``library_uid`` has a tenant-optimised
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

from facemint_library.settings import LibrarySettings
from facemint_library.store.base import Hit, PointKind, Scope, Space, VectorPoint, VectorStore
from facemint_library.store.edge import EdgeStore
from facemint_library.store.server import QdrantServerStore

__all__ = [
    "EdgeStore",
    "Hit",
    "PointKind",
    "QdrantServerStore",
    "Scope",
    "Space",
    "VectorPoint",
    "VectorStore",
    "make_store",
]


def make_store(settings: LibrarySettings) -> VectorStore:
    """The store selected by ``vector_backend``."""
    if settings.vector_backend == "qdrant":
        return QdrantServerStore(settings.qdrant, settings.hnsw)
    return EdgeStore(settings.data_dir / "vectors", settings.hnsw)
