"""Which frames to analyse: for each instant ``start + k / rate`` (k = 0, 1, ...) before ``end``, the first frame
whose timestamp is at or after that instant.

Timestamps are exact (a video frame's ``pts * time_base``, an animation's summed delays). "At" allows half a tick
of the container's time base, because containers round timestamps to it (WebM to the millisecond, so a 30 fps
frame at 0.033 s stands for the instant 1/30 s). A frame is never chosen twice: when frames are sparser than the
sampling rate, the instants that fall before an already chosen frame are passed over.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class SamplingWindow:
    """The part of the timeline to analyse, and how densely.

    Attributes:
        start: Seconds from the start of the media to begin at.
        end: Seconds to stop at (exclusive); ``None`` for the end of the media.
        rate: Frames per second to analyse.
    """

    start: float = 0.0
    end: float | None = None
    rate: float = 2.0


class Verdict(Enum):
    """What to do with a frame offered to a :class:`Sampler`."""

    SKIP = "skip"
    TAKE = "take"
    STOP = "stop"


class Sampler:
    """Decides, frame by frame in presentation order, which frames the window selects."""

    def __init__(self, window: SamplingWindow, tolerance: float = 1e-9) -> None:
        """Create a sampler.

        Args:
            window: Start, end and rate.
            tolerance: How far before an instant a frame still counts as "at" it, in seconds.
        """
        self.window = window
        self.tolerance = tolerance
        self._next = 0

    def _instant(self, k: int) -> float:
        return self.window.start + k / self.window.rate

    def offer(self, timestamp: float) -> Verdict:
        """Judge the next frame by its timestamp (seconds)."""
        end = self.window.end
        if end is not None and timestamp >= end - self.tolerance:
            return Verdict.STOP
        if timestamp < self._instant(self._next) - self.tolerance:
            return Verdict.SKIP
        # Every instant up to this frame is served by it; the next instant is the first one after it.
        self._next = math.floor((timestamp + self.tolerance - self.window.start) * self.window.rate) + 1
        return Verdict.TAKE


def count_selected(timestamps: Iterable[float], window: SamplingWindow, tolerance: float = 1e-9) -> int:
    """How many of the frames at ``timestamps`` (in order) the window selects."""
    sampler = Sampler(window, tolerance)
    taken = 0
    for ts in timestamps:
        verdict = sampler.offer(ts)
        if verdict is Verdict.STOP:
            break
        if verdict is Verdict.TAKE:
            taken += 1
    return taken
