"""Inference speed of both model packs (``make bench-inference``).

    .venv/bin/python -m bench.inference [--pack open|insightface] [--seconds S] [--profile]

On a 1920 x 1080 photo with six faces (insightface's ``t1.jpg`` from the pinned ``insightface==2.1`` wheel, scaled
by 1.5 and cut to 1080 rows; faces 150-210 px), already decoded, through the service's own pipeline:

* detection: ms per frame (letterbox, detector, decoding, NMS);
* every per-face output on its own (the six faces in one batch): ms per call and per face;
* everything at once (all attributes and the embedding): ms per image and images/s, one request at a time
  and with two requests in flight;

for ONNX Runtime with 1 and 2 intra-op threads per session (two executor workers, the service default; the
detector's session always has ``detector_intra_op_threads``, 2 by default), and
for Triton when ``facemint_inference.runners.triton`` and a local Triton (``facemint_local.triton``) can be
started. Timings are medians over repeated runs after warm-up. Writes ``bench/results/inference-<date>.md``
and ``.json``; ``--profile`` adds each model's compute alone (1 thread, batch of six).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from bench import media
from bench.common import (
    MODEL_DIR,
    PACKS,
    REPO_ROOT,
    fmt,
    machine,
    machine_line,
    markdown_table,
    now,
    pipeline,
    write_results,
)
from facemint_inference.packs import PACKS as PACK_MODELS
from facemint_inference.pipeline import ATTRIBUTES, AnalyzeOptions, Pipeline
from facemint_inference.settings import TritonSettings
from facemint_local import testmedia
from facemint_local.triton import TritonServer, ensure_triton_env, generate_local_repository

PHOTO = testmedia.T1
FRAME = (1920, 1080)
TARGET_MS = 150.0
"""Goal: one 1080p image with six faces, everything requested, on ONNX Runtime."""
PER_FACE = ("embedding", "age", "gender", "emotion", "mask", "glasses", "landmarks", "pose", "quality")
WARMUP = 2


def test_frame() -> np.ndarray:
    """The 1080p test photo: ``t1.jpg`` scaled to 1920 wide, top 1080 rows (all six faces are inside)."""
    image = media.load(PHOTO)
    scale = FRAME[0] / image.shape[1]
    resized = cv2.resize(image, (FRAME[0], round(image.shape[0] * scale)), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(resized[: FRAME[1]])


async def timed(call: Callable[[], Awaitable[Any]], seconds: float, min_runs: int = 5) -> dict[str, float]:
    """Run ``call`` repeatedly for about ``seconds`` (at least ``min_runs`` times) after a warm-up.

    Returns:
        Median, minimum and 90th percentile in milliseconds, and the number of runs.
    """
    for _ in range(WARMUP):
        await call()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    return {
        "median_ms": float(np.median(times)),
        "min_ms": float(np.min(times)),
        "p90_ms": float(np.percentile(times, 90)),
        "runs": len(times),
    }


def everything() -> AnalyzeOptions:
    """Every attribute and the embedding."""
    return AnalyzeOptions.create(attributes=sorted(ATTRIBUTES), want_embeddings=True)


def only(output: str) -> AnalyzeOptions:
    """One per-face output (``embedding`` means the embedding alone)."""
    if output == "embedding":
        return AnalyzeOptions.create(want_embeddings=True)
    return AnalyzeOptions.create(attributes=[output])


async def measure(pipe: Pipeline, frame: np.ndarray, seconds: float) -> dict[str, Any]:
    """All timings of one pipeline configuration."""
    detections = (await pipe.detect([frame], everything().confidence_threshold))[0]
    faces_found = len(detections)
    result: dict[str, Any] = {"faces": faces_found}
    result["detection"] = await timed(lambda: pipe.detect([frame], 0.5), seconds)
    per_face: dict[str, Any] = {}
    for output in PER_FACE:
        opts = only(output)

        # Detection is timed separately: detect once here and time only the per-face stage.
        base = (await pipe.analyze([frame], AnalyzeOptions.create()))[0]

        async def stage(opts: AnalyzeOptions = opts, base: list[Any] = base) -> None:
            await pipe.describe([frame], base, opts)

        timing = await timed(stage, seconds / 2)
        timing["per_face_ms"] = timing["median_ms"] / max(1, len(base))
        per_face[output] = timing
    result["per_face"] = per_face
    result["all"] = await timed(lambda: pipe.analyze([frame], everything()), seconds)
    result["all"]["images_per_s"] = 1000 / result["all"]["median_ms"]

    async def two() -> None:
        await asyncio.gather(pipe.analyze([frame], everything()), pipe.analyze([frame], everything()))

    pair = await timed(two, seconds)
    result["all_two_in_flight"] = {**pair, "images_per_s": 2000 / pair["median_ms"]}
    return result


def model_floor(pack: str, faces: int, seconds: float) -> dict[str, Any]:
    """Pure compute of every model of a pack: its ONNX Runtime session alone, 1 thread, on a batch of ``faces``
    (the detector on one 640 x 640 frame), random inputs of the right shape, no pre- or post-processing.

    Returns:
        Median ms per call for each model, and their sum: the least one thread can spend on the request; two
        workers that overlap perfectly could halve it.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    rng = np.random.default_rng(0)
    result: dict[str, float] = {}
    for model in PACK_MODELS[pack].models:
        session = ort.InferenceSession(str(model.spec(MODEL_DIR).path), options, providers=["CPUExecutionProvider"])
        batch = 1 if model.role == "detector" else faces
        inputs = {
            i.name: rng.random([batch, *(d if isinstance(d, int) else 640 for d in i.shape[1:])], dtype=np.float32)
            for i in session.get_inputs()
        }
        for _ in range(WARMUP):
            session.run(None, inputs)
        times: list[float] = []
        deadline = time.perf_counter() + seconds
        while len(times) < 5 or time.perf_counter() < deadline:
            start = time.perf_counter()
            session.run(None, inputs)
            times.append((time.perf_counter() - start) * 1000)
        result[model.name] = float(np.median(times))
    return {"faces": faces, "model_ms": result, "sum_ms": sum(result.values())}


@contextlib.asynccontextmanager
async def triton_pipeline(pack: str) -> AsyncIterator[Pipeline]:
    """A pipeline on a local Triton server (``facemint_local.triton``) serving the pack's models from ``triton-models``.

    Locally Triton is the binary bundled in ``nvidia-pytriton`` with Python-backend models that run the same ONNX
    files with ONNX Runtime (1 thread per instance), so these figures include Triton's gRPC and Python-stub overhead
    and say nothing about a GPU cluster.
    """
    base = REPO_ROOT / "var" / "bench-triton"
    models = [model.name for model in PACK_MODELS[pack].models]
    generate_local_repository(MODEL_DIR, base / "repository", models=models)
    server = TritonServer(base / "repository", await asyncio.to_thread(ensure_triton_env, REPO_ROOT / ".cache"), base)
    await asyncio.to_thread(server.start)
    try:
        async with pipeline(pack, runner="triton", triton=TritonSettings(url=server.grpc_url)) as pipe:
            yield pipe
    finally:
        await asyncio.to_thread(server.stop)


async def run(packs: list[str], seconds: float, profile: bool) -> dict[str, Any]:
    """Every configuration of every pack."""
    frame = test_frame()
    data: dict[str, Any] = {
        "date": now()[:10],
        "started": now(),
        "machine": machine(),
        "load_average_before": list(os.getloadavg()),
        "frame": {"source": PHOTO, "width": frame.shape[1], "height": frame.shape[0]},
        "target_ms": TARGET_MS,
        "packs": {},
        "triton": None,
    }
    for pack in packs:
        configs: dict[str, Any] = {}
        for threads in (1, 2):
            name = f"onnxruntime, {threads} thread{'s' if threads > 1 else ''}"
            print(f"{pack}: {name}", flush=True)
            async with pipeline(pack, threads=threads) as pipe:
                configs[name] = await measure(pipe, frame, seconds)
        data["packs"][pack] = configs
        if profile:
            print(f"{pack}: model compute", flush=True)
            data.setdefault("model_floor", {})[pack] = await asyncio.to_thread(model_floor, pack, 6, seconds / 4)
    data["triton"] = await triton_status(packs, frame, seconds)
    data["load_average_after"] = list(os.getloadavg())
    data["finished"] = now()
    return data


async def triton_status(packs: list[str], frame: np.ndarray, seconds: float) -> dict[str, Any]:
    """Measure the local Triton; when it cannot be started, say why instead."""
    results: dict[str, Any] = {}
    for pack in packs:
        print(f"{pack}: triton (local, Python backend)", flush=True)
        try:
            async with triton_pipeline(pack) as pipe:
                results[pack] = await measure(pipe, frame, seconds)
        except Exception as exc:  # the local Triton has many ways to be unavailable; report, don't fail
            return {"measured": False, "reason": f"local Triton unavailable: {type(exc).__name__}: {exc}"}
    return {"measured": True, "packs": results}


def report(data: dict[str, Any]) -> str:
    """The markdown report."""
    lines = [
        f"# Inference speed benchmark, {data['date']}",
        "",
        f"- **Machine:** {machine_line(data['machine'])}; load average "
        f"{', '.join(f'{v:.1f}' for v in data['load_average_before'])} before, "
        f"{', '.join(f'{v:.1f}' for v in data['load_average_after'])} after (other work on the machine slows "
        "every figure)",
        f"- **Run:** {data['started']} to {data['finished']} (UTC), `make bench-inference`",
        f"- **Frame:** {data['frame']['width']} x {data['frame']['height']}, `{data['frame']['source']}` scaled "
        "(six faces, 150-210 px), already decoded; two executor workers; medians after warm-up",
        "",
    ]
    rows = []
    sources: list[tuple[str, str, dict[str, Any]]] = [
        (pack, config, result) for pack, configs in data["packs"].items() for config, result in configs.items()
    ]
    if data["triton"] and data["triton"].get("measured"):
        sources += [(pack, "triton", result) for pack, result in data["triton"]["packs"].items()]
    for pack, config, r in sources:
        all_ms = r["all"]["median_ms"]
        verdict = "meets" if all_ms <= TARGET_MS else "misses"
        rows.append(
            [
                pack,
                config,
                str(r["faces"]),
                fmt(r["detection"]["median_ms"], 1),
                *(fmt(r["per_face"][o]["per_face_ms"], 1) for o in PER_FACE),
                f"{fmt(all_ms, 1)} / {fmt(r['all']['min_ms'], 1)} ({verdict} {TARGET_MS:.0f})",
                fmt(r["all"]["images_per_s"], 2),
                fmt(r["all_two_in_flight"]["images_per_s"], 2),
            ]
        )
    lines += [
        "## Summary",
        "",
        markdown_table(
            [
                "pack",
                "runtime",
                "faces",
                "detect ms/frame",
                *(f"{o} ms/face" for o in PER_FACE),
                "all ms/image (median / best)",
                "images/s",
                "images/s, 2 in flight",
            ],
            rows,
        ),
        "",
        "Per-face columns time one output alone for the six faces of the frame (one batched model call) and divide "
        "by six; they include cropping and pre/post-processing. `pose` includes the landmark model, `quality` the "
        "embedding model. `all` is detection plus every attribute and the embedding in one request.",
        "",
    ]
    triton = data["triton"]
    if not triton or not triton.get("measured"):
        lines += [f"**Triton:** not measured: {triton['reason'] if triton else 'not attempted'}.", ""]
    for pack, floor in data.get("model_floor", {}).items():
        rows = [[name, fmt(ms, 1)] for name, ms in sorted(floor["model_ms"].items(), key=lambda kv: -kv[1])]
        lines += [
            f"## Model compute alone: {pack} (ONNX Runtime, 1 thread, batch of {floor['faces']} faces)",
            "",
            markdown_table(["model", "ms per call"], [*rows, ["**sum**", fmt(floor["sum_ms"], 1)]]),
            "",
            f"Every model once, without pre/post-processing: {floor['sum_ms']:.0f} ms on one core; two workers that "
            f"overlap perfectly on two idle cores could bring it to about {floor['sum_ms'] / 2:.0f} ms.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", choices=PACKS, action="append", help="only this pack (repeatable)")
    parser.add_argument("--seconds", type=float, default=4.0, help="time spent on each measurement")
    parser.add_argument("--profile", action="store_true", help="add each model's compute alone")
    args = parser.parse_args(argv)
    data = asyncio.run(run(args.pack or list(PACKS), args.seconds, args.profile))
    text = report(data)
    print(text)
    md, js = write_results("inference", text, data)
    print(f"wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
