"""Measure the pipeline's speed on a 1080p frame with six faces (t1.jpg from ``insightface==2.1``).

For each pack, with ONNX Runtime at one thread per call:

* detection: ms per frame (letterbox, detector, decoding, NMS);
* each per-face output alone (crop, model, decoding): ms per face, i.e. the marginal cost of requesting it;
* a request with every attribute and the embedding, with one executor worker (one thread in all) and with
  ``--workers`` workers (independent model calls of the request then run in parallel).

Each figure is the median of ``--repeat`` runs after a warm-up, as wall time and as process CPU time. On a
machine shared with other work the wall times inflate; the CPU times of the one-worker runs do not, and are
what a quiet core would take.

Usage (from the repository root, after ``make models``)::

    .venv/bin/python services/inference/scripts/profile_pipeline.py [--repeat 15] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from facemint_inference.engine import Engine, create_runner
from facemint_inference.pipeline import ATTRIBUTES, AnalyzeOptions, Face, Pipeline
from facemint_inference.settings import InferenceSettings, OrtSettings
from facemint_local.testmedia import T1, bgr

PackName = Literal["open", "insightface"]
EVERYTHING = AnalyzeOptions.create(attributes=sorted(ATTRIBUTES), want_embeddings=True)


def frame_1080p() -> NDArray[np.uint8]:
    """t1.jpg scaled to 1080 rows and centred on a black 1920 x 1080 frame."""
    image = bgr(T1)
    scale = 1080 / image.shape[0]
    resized = cv2.resize(image, (round(image.shape[1] * scale), 1080), interpolation=cv2.INTER_CUBIC)
    frame = np.zeros((1080, 1920, 3), dtype=np.uint8)
    left = (1920 - resized.shape[1]) // 2
    frame[:, left : left + resized.shape[1]] = resized
    return frame


async def timed(job: Callable[[], Awaitable[object]], repeat: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``job`` over ``repeat`` runs after one warm-up."""
    await job()
    wall, cpu = [], []
    for _ in range(repeat):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        await job()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


async def with_pipeline(pack: PackName, workers: int, body: Callable[[Pipeline], Awaitable[None]]) -> None:
    """Run ``body`` on a loaded pipeline with ``workers`` executor workers and one ONNX Runtime thread per call."""
    settings = InferenceSettings(pack=pack, executor_workers=workers, ort=OrtSettings(intra_op_threads=1))
    with ThreadPoolExecutor(workers) as executor:
        engine = Engine(settings, create_runner(settings, executor), executor)
        if not await engine.load():
            sys.exit(engine.problem)
        await body(engine.pipeline)


async def profile(pack: PackName, workers: int, repeat: int) -> None:
    """Print the figures of one pack."""
    frame = frame_1080p()

    async def single(pipeline: Pipeline) -> None:
        detections = (await pipeline.detect([frame], 0.5))[0]
        count = len(detections)
        wall, cpu = await timed(lambda: pipeline.detect([frame], 0.5), repeat)
        print(f"{pack} pack: 1920x1080 frame, {count} faces, ONNX Runtime 1 thread per call (wall / CPU ms)")
        print(f"  detection ({pipeline.pack.detector.name}): {wall:.1f} / {cpu:.1f} ms per frame")
        outputs = {"embedding": AnalyzeOptions.create(want_embeddings=True)}
        outputs |= {name: AnalyzeOptions.create(attributes=[name]) for name in sorted(ATTRIBUTES)}
        for name, options in outputs.items():

            async def describe(options: AnalyzeOptions = options) -> None:
                await pipeline.describe([frame], [Face(frame=0, detection=d) for d in detections], options)

            wall, cpu = await timed(describe, repeat)
            print(f"  {name}: {wall / count:.1f} / {cpu / count:.1f} ms per face")
        wall, cpu = await timed(lambda: pipeline.analyze([frame], EVERYTHING), repeat)
        print(f"  everything + embedding, 1 worker: {wall:.0f} / {cpu:.0f} ms per frame")

    async def parallel(pipeline: Pipeline) -> None:
        wall, cpu = await timed(lambda: pipeline.analyze([frame], EVERYTHING), repeat)
        print(f"  everything + embedding, {workers} workers: {wall:.0f} / {cpu:.0f} ms per frame")

    await with_pipeline(pack, 1, single)
    await with_pipeline(pack, workers, parallel)


def main() -> None:
    """Print the figures of both packs."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    packs: tuple[PackName, ...] = ("open", "insightface")
    for pack in packs:
        asyncio.run(profile(pack, args.workers, args.repeat))


if __name__ == "__main__":
    main()
