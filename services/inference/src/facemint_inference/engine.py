"""Model loading and readiness of the inference service.

The service must start and answer health checks even when a model file is missing or corrupt: the engine
records why loading failed, reports it through the ``models`` readiness check, answers analysis requests with
UNAVAILABLE, and retries loading periodically (so that models placed later are picked up without a restart).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facemint_core.errors import ServiceUnavailable
from facemint_inference.packs import CANONICAL_FACE, PACKS, Pack
from facemint_inference.pipeline import Pipeline
from facemint_inference.runners.base import ModelUnavailable, Runner
from facemint_inference.runners.ort import OrtRunner
from facemint_inference.settings import InferenceSettings

log = logging.getLogger(__name__)


def create_runner(settings: InferenceSettings, executor: Executor) -> Runner:
    """Build the configured runner (``onnxruntime`` in process, or ``triton`` over gRPC)."""
    if settings.runner == "triton":
        from facemint_inference.runners.triton import TritonRunner

        return TritonRunner(settings.triton)
    return OrtRunner(settings.ort, executor)


def load_canonical_face(model_dir: Path) -> NDArray[Any]:
    """Read MediaPipe's canonical face (``[468, 3]``) placed by ``make models``.

    Raises:
        ModelUnavailable: The file is missing or malformed.
    """
    path = model_dir / CANONICAL_FACE
    if not path.is_file():
        raise ModelUnavailable(f"canonical face: {path} is missing (run `make models`)")
    try:
        vertices: NDArray[Any] = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"canonical face: cannot read {path}: {exc}") from exc
    if vertices.shape != (468, 3):
        raise ModelUnavailable(f"canonical face: {path} has shape {vertices.shape}, expected (468, 3)")
    return np.asarray(vertices, dtype=np.float64)


class Engine:
    """Owns the runner's loading state and the pipeline built once every model is available."""

    def __init__(self, settings: InferenceSettings, runner: Runner, executor: Executor) -> None:
        """Prepare an engine; nothing is loaded until :meth:`load`."""
        self.settings = settings
        self.pack: Pack = PACKS[settings.pack]
        self.runner = runner
        self._executor = executor
        self._pipeline: Pipeline | None = None
        self.problem = "models not loaded yet"

    async def load(self) -> bool:
        """Try to load every model of the pack; on failure keep the reason and return False."""
        model_dir = self.settings.model_dir
        problems: list[str] = []
        canonical = None
        if self.pack.landmark_kind == "mesh":
            try:
                canonical = await asyncio.get_running_loop().run_in_executor(
                    self._executor, load_canonical_face, model_dir
                )
            except ModelUnavailable as exc:
                problems.append(str(exc))
        try:
            await self.runner.load(self.pack.specs(model_dir))
        except ModelUnavailable as exc:
            problems.append(str(exc))
        if problems:
            problem = "; ".join(problems)
            if problem != self.problem:  # retries log only a change of reason
                log.warning("models unavailable", extra={"pack": self.pack.name, "reason": problem})
            self.problem = problem
            return False
        size, workers = self.settings.detection_size, self.settings.executor_workers
        self._pipeline = Pipeline.for_runner(self.pack, self.runner, self._executor, canonical, size, workers)
        log.info(
            "models loaded", extra={"pack": self.pack.name, "runner": self.runner.kind, "model_dir": str(model_dir)}
        )
        return True

    async def load_until_ready(self) -> None:
        """Retry :meth:`load` every ``model_retry_seconds`` until it succeeds."""
        while not await self.load():
            await asyncio.sleep(self.settings.model_retry_seconds)

    @property
    def ready(self) -> bool:
        """Whether every model is loaded."""
        return self._pipeline is not None

    async def check(self) -> None:
        """Readiness check: raises with the reason while models are unavailable."""
        if self._pipeline is None:
            raise ModelUnavailable(self.problem)

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline.

        Raises:
            ServiceUnavailable: Models are not loaded (the message says why).
        """
        if self._pipeline is None:
            raise ServiceUnavailable(f"models not ready: {self.problem}")
        return self._pipeline
