"""ONNX Runtime in process: one ``InferenceSession`` per model, calls run in a bounded thread pool.

ONNX Runtime releases the GIL while it computes and its sessions are safe to call from several threads, so
the executor's worker count bounds how many model calls run at once; each call uses ``intra_op_threads``.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import Executor
from typing import Any

import onnxruntime as ort
from numpy.typing import NDArray

from facemint_inference.runners.base import ModelSpec, ModelUnavailable, Runner
from facemint_inference.settings import OrtSettings

_ORT_LOG_ERRORS_ONLY = 3


class OrtRunner(Runner):
    """Runs ONNX files with ONNX Runtime's CPU provider."""

    kind = "onnxruntime"

    def __init__(self, settings: OrtSettings, executor: Executor) -> None:
        """Create an empty runner.

        Args:
            settings: Thread counts of each session.
            executor: The bounded pool that loads models and runs every call (owned by the caller).
        """
        self._settings = settings
        self._executor = executor
        self._sessions: dict[str, ort.InferenceSession] = {}

    def _open(self, spec: ModelSpec) -> ort.InferenceSession:
        if not spec.path.is_file():
            raise ModelUnavailable(f"{spec.name}: {spec.path} is missing (run `make models`)")
        options = ort.SessionOptions()
        threads = self._settings.intra_op_threads
        if spec.role == "detector":
            threads = self._settings.detector_intra_op_threads
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = self._settings.inter_op_threads
        if threads > 1:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = _ORT_LOG_ERRORS_ONLY
        try:
            return ort.InferenceSession(str(spec.path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime raises several unrelated types for unreadable graphs
            raise ModelUnavailable(f"{spec.name}: cannot load {spec.path}: {exc}") from exc

    def _open_all(self, models: list[ModelSpec]) -> dict[str, ort.InferenceSession]:
        sessions: dict[str, ort.InferenceSession] = {}
        problems: list[str] = []
        for spec in models:
            try:
                sessions[spec.name] = self._open(spec)
            except ModelUnavailable as exc:
                problems.append(str(exc))
        if problems:
            raise ModelUnavailable("; ".join(problems))
        return sessions

    async def load(self, models: list[ModelSpec]) -> None:
        """Open a session per model; raise ModelUnavailable naming every missing or unreadable file."""
        loop = asyncio.get_running_loop()
        self._sessions = await loop.run_in_executor(self._executor, self._open_all, models)

    async def infer(self, model: str, inputs: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        """Run one model on a batch in the executor and return every output by name."""
        session = self._sessions.get(model)
        if session is None:
            raise ModelUnavailable(f"{model}: not loaded")
        names = [output.name for output in session.get_outputs()]
        loop = asyncio.get_running_loop()
        values = await loop.run_in_executor(self._executor, functools.partial(session.run, names, inputs))
        return dict(zip(names, values, strict=True))

    async def close(self) -> None:
        """Drop the sessions (the executor belongs to the caller)."""
        self._sessions.clear()
