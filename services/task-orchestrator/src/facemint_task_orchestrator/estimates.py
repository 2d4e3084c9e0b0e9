"""``estimated_seconds``: sampled frames a task should analyse, times the measured seconds per frame."""

from __future__ import annotations

import math

from facemint.common.v1 import common_pb2
from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_task_orchestrator.settings import EstimateSettings

MAX_SECONDS = 2**31 - 1
"""The largest estimate (``tasks.estimated_seconds`` is a PostgreSQL integer)."""


class Estimator:
    """Estimates of a task's frames and run time.

    The throughput (seconds per analysed frame) is the ratio of exponentially weighted sums of the seconds beyond the
    per-task overhead and of the frames, so that a task weighs by its frames: a one-frame image that took long (a cold
    model, a slow host) moves the rate little, where a plain mean of per-task rates let it set a fifth of the rate and
    the next video without a known duration was estimated at minutes."""

    PRIOR_FRAMES = 20.0
    """Weight, in frames, of the configured initial rate."""

    def __init__(self, settings: EstimateSettings) -> None:
        self.settings = settings
        self._seconds = settings.seconds_per_frame * self.PRIOR_FRAMES
        self._frames = self.PRIOR_FRAMES

    @property
    def seconds_per_frame(self) -> float:
        """The current rate."""
        return self._seconds / self._frames

    def observe(self, seconds: float, frames: int) -> None:
        """Fold in one finished task."""
        if frames > 0:
            self._seconds = 0.9 * self._seconds + max(0.0, seconds - self.settings.overhead_seconds)
            self._frames = 0.9 * self._frames + frames

    def frames(self, spec: orchestrator_pb2.TaskSpec, duration: float | None = None) -> int:
        """Sampled frames a task is expected to analyse (``duration``: the media's, once probed)."""
        if spec.kind == common_pb2.MEDIA_KIND_IMAGE:
            return 1
        if spec.kind == common_pb2.MEDIA_KIND_ANIMATED and duration is None:
            return self.settings.assumed_animated_frames
        if duration is None:
            start = spec.start_time if spec.HasField("start_time") else 0.0
            end = spec.end_time if spec.HasField("end_time") else start + self.settings.assumed_video_seconds
            duration = min(max(0.0, end - start), self.settings.max_video_seconds)
        return max(1, math.ceil(float(duration) * int(spec.sample_rate)))

    def seconds(self, frames: int) -> int:
        """Seconds a task of ``frames`` sampled frames should take at the measured throughput (at most
        ``MAX_SECONDS``, what the task row stores)."""
        return min(MAX_SECONDS, max(1, math.ceil(self.settings.overhead_seconds + frames * self.seconds_per_frame)))
