"""A runner wrapper that records every call (model, batch size, seconds): for call-count tests and profiling."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from numpy.typing import NDArray

from facemint_inference.runners.base import ModelSpec, Runner


@dataclass(frozen=True)
class Call:
    """One ``infer`` call."""

    model: str
    batch: int
    seconds: float


@dataclass
class RecordingRunner(Runner):
    """Delegates to ``inner`` and appends every call to ``calls``."""

    inner: Runner
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kind = self.inner.kind

    async def load(self, models: list[ModelSpec]) -> None:
        """Load through the wrapped runner."""
        await self.inner.load(models)

    async def infer(self, model: str, inputs: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        """Run through the wrapped runner and record the call."""
        start = time.perf_counter()
        outputs = await self.inner.infer(model, inputs)
        batch = len(next(iter(inputs.values())))
        self.calls.append(Call(model, batch, time.perf_counter() - start))
        return outputs

    async def close(self) -> None:
        """Close the wrapped runner."""
        await self.inner.close()

    def models(self) -> list[str]:
        """Names of the models called, in call order."""
        return [call.model for call in self.calls]
