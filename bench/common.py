"""Helpers shared by the benchmarks: where things are, the machine and date, tables, results, pipelines."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

from facemint_inference.engine import Engine, create_runner
from facemint_inference.pipeline import Pipeline
from facemint_inference.settings import InferenceSettings, OrtSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"
BENCH_DATA = REPO_ROOT / "bench" / "data"
MODEL_DIR = REPO_ROOT / "triton-models"
SHARED_DATA = Path(os.environ.get("FACEMINT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
"""The development media (``../shared/data``; override with ``FACEMINT_SHARED_DATA``)."""
PACKS = ("open", "insightface")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """Describe the machine a benchmark ran on (CPU model, cores usable by this process, memory, versions)."""
    return {
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
    }


def machine_line(info: dict[str, Any]) -> str:
    """One-line human description of :func:`machine`'s output."""
    return (
        f"{info['cpu']}, {info['cores']} cores usable, {info['memory_gib']} GiB RAM, {info['os']}, "
        f"Python {info['python']}, ONNX Runtime {info['onnxruntime']}"
    )


def today() -> str:
    """Today's date (UTC) as YYYY-MM-DD, used in result file names."""
    return dt.datetime.now(dt.UTC).date().isoformat()


def now() -> str:
    """The current UTC time in ISO 8601, seconds precision."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Render a GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, markdown: str, data: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``bench/results/<name>-<date>.md`` and ``.json`` atomically.

    Args:
        name: Benchmark name (``accuracy``, ``inference``).
        markdown: The report.
        data: Everything measured, JSON-serialisable.

    Returns:
        The paths of the markdown and JSON files.
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = RESULTS_DIR / f"{name}-{today()}"
    paths = (stem.with_suffix(".md"), stem.with_suffix(".json"))
    for path, text in zip(paths, (markdown, json.dumps(data, indent=1, sort_keys=True) + "\n"), strict=True):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return paths


def fmt(value: float | None, digits: int = 3) -> str:
    """Format a number for a table; ``None`` as a dash."""
    return "-" if value is None else f"{value:.{digits}f}"


@contextlib.asynccontextmanager
async def pipeline(
    pack: str, *, runner: str = "onnxruntime", threads: int = 1, workers: int = 2, **settings: Any
) -> AsyncIterator[Pipeline]:
    """Load a model pack the way the service does (``Engine``) and yield its pipeline.

    Args:
        pack: ``open`` or ``insightface``.
        runner: ``onnxruntime`` or ``triton``.
        threads: ONNX Runtime intra-op threads per session.
        workers: Executor workers (model calls and pre/post-processing that may run at once).
        settings: Further ``InferenceSettings`` fields (``triton=...`` for example).

    Raises:
        RuntimeError: The models could not be loaded (the engine's reason is in the message).
    """
    config = InferenceSettings(
        pack=pack,  # type: ignore[arg-type]
        runner=runner,  # type: ignore[arg-type]
        model_dir=MODEL_DIR,
        ort=OrtSettings(intra_op_threads=threads, inter_op_threads=1),
        executor_workers=workers,
        **settings,
    )
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench") as executor:
        engine = Engine(config, create_runner(config, executor), executor)
        try:
            if not await engine.load():
                raise RuntimeError(f"{pack} pack ({runner}) not loaded: {engine.problem}")
            yield engine.pipeline
        finally:
            await engine.runner.close()


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> tuple[float, float]:
    """True-accept rate at the smallest threshold whose false-accept rate is at most ``far``.

    Returns:
        (TAR, threshold). With ``k`` impostor pairs FAR moves in steps of ``1 / k``.
    """
    ordered = np.sort(impostor)[::-1]
    allowed = int(np.floor(far * len(impostor)))
    threshold = float(ordered[allowed]) if allowed < len(ordered) else float(ordered[-1])
    return float(np.mean(genuine > threshold)), threshold
