#!/usr/bin/env python3
"""Fit the score calibration of each embedding model on labelled face pairs, with the real inference pipeline.

Pairs (development set in ``../shared/data``):

- ``deepface/master.csv``: labelled pairs ``file_x,file_y,Decision`` (``Yes`` = same person);
- per-person folders ``face_recognition/knn_examples/train/<person>/`` and ``facenet_pytorch/test_images/<person>/``:
  every pair of images within a folder is genuine, every pair across folders is an impostor pair.

Each image is analysed by ``facemint_inference``'s pipeline (the pack's detector, alignment and embedding model on
ONNX Runtime, exactly as the service runs them); the largest face of an image is its face. The cosines of the
pairs are fitted by :meth:`facemint_library.calibration.Calibration.fit` and written to
``services/library/src/facemint_library/calibration/<model_id>.json``.

Usage::

    .venv/bin/python services/library/tools/calibrate.py [--pack open|insightface|all] [--data ../shared/data]
        [--out services/library/src/facemint_library/calibration] [--target-far 0.001]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from facemint_inference.engine import Engine, create_runner
from facemint_inference.pipeline import AnalyzeOptions
from facemint_inference.settings import InferenceSettings
from facemint_library.calibration import PACKAGED_DIR, Calibration

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
PERSON_FOLDERS = ("face_recognition/knn_examples/train", "facenet_pytorch/test_images")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


@dataclass(frozen=True)
class FaceVector:
    """The largest face of an image: its unit embedding and what the pipeline said about it."""

    vector: npt.NDArray[np.float32]
    quality: float
    faces: int
    model_id: str
    model_version: str


class Embedder:
    """Runs one model pack's pipeline on image files."""

    def __init__(self, pack: str, model_dir: Path | None = None) -> None:
        settings = InferenceSettings(pack=pack, **({"model_dir": model_dir} if model_dir else {}))
        self._executor = ThreadPoolExecutor(max_workers=2)
        self._engine = Engine(settings, create_runner(settings, self._executor), self._executor)
        self._options = AnalyzeOptions.create(min_face_size=20, attributes=["quality"], want_embeddings=True)

    async def load(self) -> None:
        """Load the pack's models; exits with the reason when they are missing."""
        if not await self._engine.load():
            sys.exit(f"calibrate: models unavailable ({self._engine.problem}); run `make models`")

    async def embed_faces(self, path: Path) -> list[FaceVector]:
        """Every face of an image file with an embedding, largest first (empty when unreadable or faceless)."""
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            return []
        [faces] = await self._engine.pipeline.analyze([image], self._options)
        faces = sorted(
            (f for f in faces if f.embedding is not None),
            key=lambda f: f.detection.width * f.detection.height,
            reverse=True,
        )
        return [
            FaceVector(
                f.embedding.values.astype(np.float32),
                float(f.quality or 0.0),
                len(faces),
                f.embedding.model_id,
                f.embedding.model_version,
            )
            for f in faces
            if f.embedding is not None
        ]

    async def embed(self, path: Path) -> FaceVector | None:
        """The largest face of an image file (None when the image has no face or cannot be read)."""
        faces = await self.embed_faces(path)
        return faces[0] if faces else None

    async def embed_all(self, paths: Sequence[Path]) -> dict[Path, FaceVector]:
        """Embeddings of every image that has a face."""
        found: dict[Path, FaceVector] = {}
        for path in paths:
            result = await self.embed(path)
            if result is not None:
                found[path] = result
            else:
                print(f"  no face: {path}", file=sys.stderr)
        return found

    async def close(self) -> None:
        """Release the runner and the executor."""
        await self._engine.runner.close()
        self._executor.shutdown(wait=True)


def person_folders(data: Path) -> dict[str, list[Path]]:
    """Images per person of the per-person folders (person = folder name)."""
    people: dict[str, list[Path]] = {}
    for root in PERSON_FOLDERS:
        for folder in sorted((data / root).glob("*")):
            if folder.is_dir():
                images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                if images:
                    people[folder.name] = images
    return people


def labelled_pairs(data: Path) -> list[tuple[Path, Path, bool]]:
    """Every labelled pair: deepface's master.csv, then within/across the per-person folders."""
    pairs: list[tuple[Path, Path, bool]] = []
    with (data / "deepface" / "master.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            decision = row["Decision"].strip()
            pairs.append((data / "deepface" / row["file_x"], data / "deepface" / row["file_y"], decision == "Yes"))
    people = person_folders(data)
    for images in people.values():
        pairs += [(a, b, True) for a, b in itertools.combinations(images, 2)]
    for (_, xs), (_, ys) in itertools.combinations(people.items(), 2):
        pairs += [(a, b, False) for a in xs for b in ys]
    return pairs


async def calibrate(pack: str, data: Path, out: Path, target_far: float) -> Calibration:
    """Embed every image of the pairs with a pack and fit its calibration; write ``<out>/<model_id>.json``."""
    pairs = labelled_pairs(data)
    images = sorted({p for a, b, _ in pairs for p in (a, b)})
    embedder = Embedder(pack)
    await embedder.load()
    start = time.perf_counter()
    try:
        vectors = await embedder.embed_all(images)
    finally:
        await embedder.close()
    elapsed = time.perf_counter() - start
    genuine: list[float] = []
    impostor: list[float] = []
    for a, b, same in pairs:
        if a in vectors and b in vectors:
            (genuine if same else impostor).append(float(vectors[a].vector @ vectors[b].vector))
    first = next(iter(vectors.values()))
    calibration = Calibration.fit(first.model_id, first.model_version, genuine, impostor, target_far)
    qualities = np.array([v.quality for v in vectors.values()])
    data_note = {
        "fitted_on": "deepface/master.csv pairs + per-person folders "
        + ", ".join(PERSON_FOLDERS)
        + f" ({len(vectors)} of {len(images)} images with a face; largest face per image)",
        "pack": pack,
        "reference_quality_min": round(float(qualities.min()), 4),
        "reference_quality_p05": round(float(np.percentile(qualities, 5)), 4),
        "reference_quality_median": round(float(np.median(qualities)), 4),
    }
    calibration = Calibration(
        calibration.model_id, calibration.model_version, calibration.anchors, {**calibration.stats, **data_note}
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{calibration.model_id}.json"
    path.write_text(json.dumps(calibration.to_dict(), indent=2) + "\n")
    stats = calibration.stats
    print(
        f"{calibration.model_id}: {len(vectors)} images embedded in {elapsed:.1f} s; "
        f"{stats['genuine_pairs']} genuine / {stats['impostor_pairs']} impostor pairs; "
        f"cosine at 0.70 = {calibration.cosine_at_threshold:.4f}; "
        f"FAR {stats['far_at_threshold']:.4f} ({stats['false_accepts']}), "
        f"TAR {stats['tar_at_threshold']:.4f} ({stats['false_rejects']} rejected) -> {path}"
    )
    return calibration


def main(argv: Sequence[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", choices=["open", "insightface", "all"], default="all")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=PACKAGED_DIR)
    parser.add_argument("--target-far", type=float, default=1e-3)
    args = parser.parse_args(argv)
    if not (args.data / "deepface" / "master.csv").is_file():
        sys.exit(f"calibrate: {args.data}/deepface/master.csv not found (pass --data)")
    packs = ["open", "insightface"] if args.pack == "all" else [args.pack]
    for pack in packs:
        asyncio.run(calibrate(pack, args.data, args.out, args.target_far))


if __name__ == "__main__":
    main()
