"""Library benchmark: vector load and search at 10k / 100k / 1M, service enrolment rate, identification rank-1.

1. **Vector search** through the library's own :class:`~facemint_library.store.EdgeStore` (Qdrant's engine in
   process, the single-machine default), with the production layout: the library's own shard and HNSW graph,
   searched without a filter, the account checked on the hits. Data are face-like synthetic embeddings
   (:mod:`facemint_library.synthetic`: many identities, five samples each; isotropic, which matches the
   impostor-cosine spread measured on real SFace embeddings of the development photos: std 0.086 vs 0.088).
   Queries are fresh samples of enrolled identities. For each size: load time
   (vectors/s), index build time, top-10 latency p50/p99 (one query at a time) and recall@10 against exact search,
   for several ``hnsw_ef``; exact (brute-force) latency for reference.
2. **Enrolment**: ``EnrollFace`` RPCs per second through the gRPC service on a real PostgreSQL (a scripted
   media-decoder stands in for fetching and analysis, which are measured by ``bench.inference``).
3. **Identification** (when the models are installed): gallery = the per-person folders of ``../shared/data``,
   probes = other photos of those people plus one person who is not enrolled; rank-1 accuracy, matches at the
   0.70 threshold with joint assignment, false matches.

Usage::

    .venv/bin/python -m bench.library [--sizes 10000,100000,1000000] [--dims 128] [--ef 128,256,512]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.common import SHARED_DATA, fmt, machine, machine_line, markdown_table, now, write_results
from facemint_inference.packs import PACKS
from facemint_library.assignment import rank_matches
from facemint_library.calibration import Calibrations
from facemint_library.identification import eligible
from facemint_library.settings import HnswSettings
from facemint_library.store import EdgeStore, Scope, Space, VectorPoint
from facemint_library.synthetic import around, identity_samples, unit_rows

PER_IDENTITY = 5
BATCH = 5_000
SCOPE = Scope("acc_bench", "lib_bench")


def _exact_top(queries: npt.NDArray[np.float32], data: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
    """Indices of the exact top-k by cosine (rows are unit vectors), in chunks to bound memory."""
    best: npt.NDArray[np.int64] = np.zeros((len(queries), k), dtype=np.int64)
    scores: npt.NDArray[np.float32] = np.full((len(queries), k), -np.inf, dtype=np.float32)
    for start in range(0, len(data), 200_000):
        block = queries @ data[start : start + 200_000].T
        idx = np.argpartition(-block, k, axis=1)[:, :k] if block.shape[1] > k else np.argsort(-block, axis=1)[:, :k]
        cand_scores = np.take_along_axis(block, idx, axis=1)
        all_scores = np.concatenate([scores, cand_scores], axis=1)
        all_idx = np.concatenate([best, idx + start], axis=1)
        order = np.argsort(-all_scores, axis=1)[:, :k]
        scores = np.take_along_axis(all_scores, order, axis=1)
        best = np.take_along_axis(all_idx, order, axis=1)
    return best


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


async def vector_search(
    size: int, dim: int, efs: Sequence[int], queries: int, hnsw: HnswSettings, workdir: Path, match_cosine: float
) -> dict[str, Any]:
    """Load ``size`` vectors into an EdgeStore library, index them, and measure top-10 search.

    ``match_cosine`` is the decision threshold of the model of that dimension (score 0.70): besides recall@10, the
    recall of the exact top-10 neighbours at or above it is reported, i.e. of the matches the API would return.
    """
    rng = np.random.default_rng(size + dim)
    data, labels = identity_samples(rng, size // PER_IDENTITY, PER_IDENTITY, dim)
    space = Space("bench", "1", dim)
    path = workdir / f"edge-{size}-{dim}"
    shutil.rmtree(path, ignore_errors=True)
    store = EdgeStore(path, hnsw.model_copy(update={"ef_search": efs[0]}))
    await store.open()
    await store.ensure_space(space)
    start = time.perf_counter()
    for i in range(0, size, BATCH):
        batch = [
            VectorPoint(uuid.UUID(int=j + 1), data[j], SCOPE.account_id, SCOPE.library_uid, f"p{labels[j]}", "template")
            for j in range(i, min(size, i + BATCH))
        ]
        await store.upsert(space, batch)
    await store.maintain()  # full segments were indexed during the load; this indexes the remainder
    ingest_s = time.perf_counter() - start
    picked = rng.integers(0, size, queries)
    probe = around(rng, data[picked])  # a new photo of an enrolled identity
    truth = _exact_top(probe, data, 10)
    matches = [{int(j) for j in row if float(probe[i] @ data[j]) >= match_cosine} for i, row in enumerate(truth)]
    result: dict[str, Any] = {
        "vectors": size,
        "dim": dim,
        "identities": size // PER_IDENTITY,
        "ingest_seconds": round(ingest_s, 1),
        "ingest_vectors_per_second": round(size / ingest_s),
        "disk_mib": round(_dir_bytes(path) / 2**20),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "hnsw_m": hnsw.m,
        "ef_construct": hnsw.ef_construct,
        "quantization": hnsw.quantization,
        "segment_kb": hnsw.segment_kb,
        "match_cosine": round(match_cosine, 4),
        "runs": [],
    }
    for ef in [*efs, 0]:
        exact = ef == 0
        store.hnsw.ef_search = ef or efs[0]
        n = min(queries, 30) if exact else queries
        for q in probe[:5]:  # warm-up
            await store.search(space, SCOPE, q[None, :], 10, exact=exact)
        latencies: list[float] = []
        recalls: list[float] = []
        identity_hits: list[bool] = []
        match_found = match_total = 0
        for i, q in enumerate(probe[:n]):
            t0 = time.perf_counter()
            [hits] = await store.search(space, SCOPE, q[None, :], 10, exact=exact)
            latencies.append(time.perf_counter() - t0)
            found = {h.point_id.int - 1 for h in hits}
            recalls.append(len(found & set(truth[i].tolist())) / 10)
            match_found += len(found & matches[i])
            match_total += len(matches[i])
            identity_hits.append(bool(hits) and labels[hits[0].point_id.int - 1] == labels[picked[i]])
        result["runs"].append(
            {
                "search": "exact" if exact else f"hnsw ef={ef}",
                "queries": n,
                "p50_ms": round(float(np.percentile(latencies, 50)) * 1e3, 2),
                "p99_ms": round(float(np.percentile(latencies, 99)) * 1e3, 2),
                "recall_at_10": round(float(np.mean(recalls)), 4),
                "identity_at_1": round(float(np.mean(identity_hits)), 4),
                "match_recall": round(match_found / match_total, 4) if match_total else None,
            }
        )
        run = result["runs"][-1]
        print(
            f"  {size:>9,} x {dim}: {run['search']:<13} p50 {run['p50_ms']:7.2f} ms  p99 {run['p99_ms']:7.2f} ms  "
            f"recall@10 {run['recall_at_10']:.4f}  identity@1 {run['identity_at_1']:.3f}  "
            f"matches {run['match_recall']}",
            flush=True,
        )
    await store.close()
    shutil.rmtree(path, ignore_errors=True)
    return result


async def enrolment_rate(workdir: Path, count: int, concurrency: int) -> dict[str, Any]:
    """``EnrollFace`` RPCs per second on a real PostgreSQL, scripted media-decoder, embedded store."""

    from facemint.library.v1 import library_pb2
    from facemint_core.schemas import migrate_all, service_dsn
    from facemint_library.testing import TEST_CALIBRATIONS, TEST_MODEL, harness_settings, make_face, serve_library
    from facemint_local.servers import PostgresServer

    server = PostgresServer(workdir / "postgres")
    server.start()
    try:
        await migrate_all(server.dsn)
        rng = np.random.default_rng(0)
        vectors, labels = identity_samples(rng, count // 2, 2, 128)
        async with serve_library(
            harness_settings("edge", workdir / "enrol", service_dsn(server.dsn, "library")), TEST_CALIBRATIONS
        ) as lib:
            await lib.stub.CreateLibrary(library_pb2.CreateLibraryRequest(account_id="acc", library_id="bench"))
            for i, v in enumerate(vectors):
                lib.decoder.images[f"u{i}"] = [make_face(v, TEST_MODEL)]
            queue = list(range(count))

            async def worker() -> None:
                while queue:
                    i = queue.pop()
                    await lib.stub.EnrollFace(
                        library_pb2.EnrollFaceRequest(
                            account_id="acc", library_id="bench", person_id=f"p{labels[i]}", image_url=f"u{i}"
                        )
                    )

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            seconds = time.perf_counter() - start
    finally:
        server.stop()
    rate = count / seconds
    print(f"  enrolment: {count} faces in {seconds:.1f} s = {rate:.1f}/s (concurrency {concurrency})", flush=True)
    return {"faces": count, "concurrency": concurrency, "seconds": round(seconds, 2), "per_second": round(rate, 1)}


GALLERY_FOLDERS = ("face_recognition/knn_examples/train", "facenet_pytorch/test_images")
PROBES: dict[str, set[str]] = {
    "face_recognition/knn_examples/test/obama1.jpg": {"obama"},
    "face_recognition/knn_examples/test/alex_lacamoire1.jpg": {"alex_lacamoire"},
    "face_recognition/knn_examples/test/johnsnow_test1.jpg": {"kit_harington"},
    "face_recognition/knn_examples/test/obama_and_biden.jpg": {"obama", "biden"},
    "face_recognition/knn_examples/test/kit_with_rose.jpg": {"kit_harington", "rose_leslie"},
    "face_recognition/obama-240p.jpg": {"obama"},
    "face_recognition/obama-720p.jpg": {"obama"},
    "face_recognition/obama_small.jpg": {"obama"},
    "face_recognition/test_images/obama3.jpg": {"obama"},
    "face_recognition/test_images/obama_partial_face.jpg": {"obama"},
    "face_recognition/alex-lacamoire.png": {"alex_lacamoire"},
    "face_recognition/lin-manuel-miranda.png": set(),  # not enrolled: must stay unmatched
}


async def identification(pack: str, calibrations: Calibrations) -> dict[str, Any] | None:
    """Rank-1 and thresholded identification on the per-person folders, scored like the service."""
    import cv2

    from bench.common import pipeline
    from facemint_inference.pipeline import AnalyzeOptions

    if not (SHARED_DATA / GALLERY_FOLDERS[0]).is_dir():
        print(f"  identification skipped: {SHARED_DATA} has no per-person folders", flush=True)
        return None
    options = AnalyzeOptions.create(min_face_size=20, want_embeddings=True)
    try:
        async with pipeline(pack) as pipe:

            async def faces(path: Path) -> list[npt.NDArray[np.float32]]:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                assert image is not None, path
                [found] = await pipe.analyze([image], options)
                found = sorted(found, key=lambda f: f.detection.width * f.detection.height, reverse=True)
                return [f.embedding.values.astype(np.float32) for f in found if f.embedding is not None]

            gallery: dict[str, list[npt.NDArray[np.float32]]] = {}
            model_id = pipe.pack.embedder.model_id
            for root in GALLERY_FOLDERS:
                for folder in sorted((SHARED_DATA / root).iterdir()):
                    for image in sorted(folder.iterdir()):
                        found = await faces(image)
                        if found:
                            gallery.setdefault(folder.name, []).append(found[0])
            probes = {path: (await faces(SHARED_DATA / path), truth) for path, truth in PROBES.items()}
    except RuntimeError as exc:
        print(f"  identification skipped ({pack}): {exc}", flush=True)
        return None
    calibration = calibrations.get(model_id)
    persons = sorted(gallery)
    templates = [(persons.index(p), v) for p in persons for v in gallery[p]]
    centroids = [unit_rows(np.mean(gallery[p], axis=0, keepdims=True))[0] for p in persons]
    rank1 = total = matched_right = false_matches = unmatched_strangers = strangers = 0
    for _path, (vectors, truth) in probes.items():
        if not vectors:
            continue
        q = np.stack(vectors[: max(1, len(truth))])
        cos = np.full((len(q), len(persons)), -1.0)
        for col, v in templates:
            cos[:, col] = np.maximum(cos[:, col], q @ v)
        cos = np.maximum(cos, q @ np.stack(centroids).T)
        for row in range(len(q)):
            if truth:
                total += 1
                rank1 += persons[int(np.argmax(cos[row]))] in truth
        scores = calibration.scores(cos)
        cohort = [len(persons) - 1] * len(q)  # every person is scored: the others are each face's cohort
        for matches in rank_matches(scores, eligible(scores, cohort, calibration.identification), 1):
            name = persons[matches[0][0]] if matches else None
            if not truth:
                strangers += 1
                unmatched_strangers += name is None
                false_matches += name is not None
            elif name in truth:
                matched_right += 1
            elif name is not None:
                false_matches += 1
    result = {
        "pack": pack,
        "model_id": model_id,
        "gallery_persons": len(persons),
        "gallery_images": len(templates),
        "probe_faces": total,
        "rank1": round(rank1 / total, 4) if total else None,
        "matched_at_threshold": round(matched_right / total, 4) if total else None,
        "false_matches": false_matches,
        "strangers_unmatched": f"{unmatched_strangers}/{strangers}",
    }
    print(f"  identification {pack}: {result}", flush=True)
    return result


def report(data: dict[str, Any]) -> str:
    """The markdown report."""
    rows = []
    for r in data["search"]:
        for run in r["runs"]:
            rows.append(
                [
                    f"{r['vectors']:,}",
                    r["dim"],
                    run["search"],
                    fmt(run["p50_ms"], 2),
                    fmt(run["p99_ms"], 2),
                    fmt(run["recall_at_10"], 4),
                    fmt(run.get("identity_at_1"), 3),
                    fmt(run.get("match_recall"), 4),
                    fmt(r["ingest_seconds"], 0),
                    r["max_rss_mib"],
                ]
            )
    parts = [
        "# Library benchmark",
        f"Run {data['date']} on {machine_line(data['machine'])}; load average at start {data['load_average']}.",
        "Vector search: embedded Qdrant engine (`EdgeStore`), one library holding every vector in its own shard, "
        "searched as the service does (the library's own graph, no filter; the account verified on the hits); "
        f"HNSW m={data['params']['m']}, ef_construct={data['params']['ef_construct']}, segments of at most "
        f"{data['params']['segment_kb']:,} KB of vectors (searched in parallel), "
        f"vectors quantised: {data['params'].get('quantization', 'none')} (rescored with the float vectors, "
        f"oversampling {data['params'].get('oversampling', '-')}); {data['params']['queries']} queries, one at a "
        f"time, top-10; synthetic identities with {PER_IDENTITY} samples each. identity@1: the nearest point is a "
        "sample of the query's identity. Recall of matches: of the exact top-10 neighbours at or above the model's "
        "decision threshold (score 0.70: cosine 0.509 for SFace at 128-d, 0.320 for ArcFace at 512-d), the "
        "share found, i.e. recall of what `identity.matches` can contain.",
        markdown_table(
            [
                "vectors",
                "dim",
                "search",
                "p50 ms",
                "p99 ms",
                "recall@10",
                "identity@1",
                "recall of matches",
                "load + index s",
                "peak RSS MiB",
            ],
            rows,
        ),
    ]
    if data.get("enrolment"):
        e = data["enrolment"]
        parts.append(
            f"Enrolment through gRPC (PostgreSQL + embedded store, scripted media-decoder): {e['faces']} faces in "
            f"{e['seconds']} s = **{e['per_second']}/s** at concurrency {e['concurrency']}."
        )
    ident = [i for i in data.get("identification", []) if i]
    if ident:
        parts.append(
            markdown_table(
                [
                    "pack",
                    "model",
                    "gallery persons/images",
                    "probe faces",
                    "rank-1",
                    "matched at 0.70",
                    "false matches",
                    "strangers unmatched",
                ],
                [
                    [
                        i["pack"],
                        i["model_id"],
                        f"{i['gallery_persons']}/{i['gallery_images']}",
                        i["probe_faces"],
                        fmt(i["rank1"], 3),
                        fmt(i["matched_at_threshold"], 3),
                        i["false_matches"],
                        i["strangers_unmatched"],
                    ]
                    for i in ident
                ],
            )
        )
    parts.append(f"Total time: {data['total_seconds']:.0f} s.")
    return "\n\n".join(parts) + "\n"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every part and return the results."""
    started = time.perf_counter()
    data: dict[str, Any] = {
        "date": now(),
        "machine": machine(),
        "load_average": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "params": {
            "m": args.m,
            "ef_construct": args.ef_construct,
            "queries": args.queries,
            "ef": args.ef,
            "quantization": args.quantization,
            "oversampling": args.oversampling,
            "segment_kb": args.segment_kb,
        },
        "search": [],
        "identification": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-library-", dir=args.workdir) as tmp:
        work = Path(tmp)
        if args.enrolments:
            data["enrolment"] = await enrolment_rate(work, args.enrolments, 4)
        calibrations = Calibrations.load()
        match_cosine = {
            pack.embedder.dim: calibrations.get(pack.embedder.model_id).cosine_at_threshold for pack in PACKS.values()
        }
        hnsw = HnswSettings(
            m=args.m,
            ef_construct=args.ef_construct,
            quantization=args.quantization,
            oversampling=args.oversampling,
            search_threads=args.search_threads,
            segment_kb=args.segment_kb,
        )
        if not args.skip_identification:
            for pack in ("open", "insightface"):
                data["identification"].append(await identification(pack, calibrations))
        for dim in args.dims:
            for size in args.sizes:
                if size >= 1_000_000 and dim > args.max_dim_1m:
                    continue
                result = await vector_search(size, dim, args.ef, args.queries, hnsw, work, match_cosine[dim])
                data["search"].append(result)
                data["total_seconds"] = time.perf_counter() - started
                write_results(args.name, report(data), data)  # keep what is done if a long run is stopped
    data["total_seconds"] = time.perf_counter() - started
    return data


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_ints, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dims", type=_ints, default=[128, 512])
    parser.add_argument("--max-dim-1m", type=int, default=128, help="skip 1M runs of larger dimensions (time)")
    parser.add_argument("--ef", type=_ints, default=[256, 384, 512, 640, 768, 1024])
    parser.add_argument("--m", type=int, default=HnswSettings().m)
    parser.add_argument("--ef-construct", type=int, default=HnswSettings().ef_construct)
    parser.add_argument("--quantization", choices=["int8", "none"], default="int8")
    parser.add_argument("--oversampling", type=float, default=2.0)
    parser.add_argument("--search-threads", type=int, default=0)
    parser.add_argument("--segment-kb", type=int, default=HnswSettings().segment_kb)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--enrolments", type=int, default=300)
    parser.add_argument("--skip-identification", action="store_true")
    parser.add_argument("--name", default="library", help="results file stem: bench/results/<name>-<date>.md")
    parser.add_argument("--workdir", default=None, help="where the temporary stores go (default: system temp)")
    args = parser.parse_args()
    data = asyncio.run(run(args))
    markdown = report(data)
    md, js = write_results(args.name, markdown, data)
    print(markdown)
    print(f"written {md} and {js}")


if __name__ == "__main__":
    main()
