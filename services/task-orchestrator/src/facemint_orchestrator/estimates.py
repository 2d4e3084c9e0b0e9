"""``estimated_seconds``: sampled frames a task should analyse, times the measured seconds per frame."""

from __future__ import annotations

import math

from facemint.common.v1 import common_pb2
from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_orchestrator.settings import EstimateSettings


class Estimator:
    """Estimates of a task's frames and run time; the throughput is an exponentially weighted mean of finished
    tasks' seconds per analysed frame."""

    def __init__(self, settings: EstimateSettings) -> None:
        self.settings = settings
        self.seconds_per_frame = settings.seconds_per_frame

    def observe(self, seconds: float, frames: int) -> None:
        """Fold in one finished task."""
        if frames > 0:
            self.seconds_per_frame = 0.8 * self.seconds_per_frame + 0.2 * (seconds / frames)

    def frames(self, spec: orchestrator_pb2.TaskSpec, duration: float | None = None) -> int:
        """Sampled frames a task is expected to analyse (``duration``: the media's, once probed)."""
        if spec.kind == common_pb2.MEDIA_KIND_IMAGE:
            return 1
        if spec.kind == common_pb2.MEDIA_KIND_ANIMATED and duration is None:
            return self.settings.assumed_animated_frames
        if duration is None:
            start = spec.start_time if spec.HasField("start_time") else 0.0
            end = spec.end_time if spec.HasField("end_time") else start + self.settings.assumed_video_seconds
            duration = max(0.0, end - start)
        return max(1, math.ceil(float(duration) * int(spec.sample_rate)))

    def seconds(self, frames: int) -> int:
        """Seconds a task of ``frames`` sampled frames should take at the measured throughput."""
        return max(1, math.ceil(self.settings.overhead_seconds + frames * self.seconds_per_frame))
