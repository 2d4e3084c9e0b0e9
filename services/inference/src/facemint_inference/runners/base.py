"""The runner interface that hides which runtime executes a model graph.

The pipeline (pre- and post-processing in numpy) only ever calls :meth:`Runner.infer` with named input arrays
whose first dimension is the batch, and receives named output arrays. ``OrtRunner`` runs the ONNX files in
process; ``TritonRunner`` sends the same tensors to a Triton server that serves the same ONNX files.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ModelSpec:
    """A model the pipeline needs: its repository name (``triton-models/<name>``) and ONNX file."""

    name: str
    path: Path
    role: str = ""
    """The model's role in the pipeline (``detector``, ``embedding``, ...); runners may tune by role."""


class ModelUnavailable(Exception):
    """A model file is missing or corrupt, or the runtime cannot serve it."""


class Runner(abc.ABC):
    """Executes named models on batches of tensors."""

    kind: str = "abstract"

    @abc.abstractmethod
    async def load(self, models: list[ModelSpec]) -> None:
        """Prepare every model; raise ModelUnavailable with the reason when one cannot be served."""

    @abc.abstractmethod
    async def infer(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one model on a batch; every array's first dimension is the batch (unless the model has none)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release sessions, connections and threads."""
