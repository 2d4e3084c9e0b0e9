"""The retry schedule of a delivery: exponential backoff with jitter, drawn once and stored with the delivery.

Storing the drawn delays (rather than recomputing them) keeps a delivery's schedule identical across restarts of
the dispatcher and shows it to operators as it will happen.
"""

from __future__ import annotations

import random

from facemint_webhook_dispatcher.settings import ScheduleSettings


def nominal_delays(cfg: ScheduleSettings) -> list[float]:
    """Delays without jitter: element ``n - 1`` separates attempt ``n`` from attempt ``n + 1``."""
    return [cfg.base_seconds * cfg.factor**i * cfg.time_scale for i in range(cfg.max_attempts - 1)]


def draw_delays(cfg: ScheduleSettings, rng: random.Random | None = None) -> list[float]:
    """The jittered delays of one delivery (``max_attempts - 1`` values, in seconds)."""
    pick = (rng or random).uniform
    return [delay * (1 + pick(-cfg.spread, cfg.spread)) for delay in nominal_delays(cfg)]


def schedule_table(cfg: ScheduleSettings) -> list[tuple[int, float, float]]:
    """``(attempt, delay before it, seconds since the first attempt)`` of every attempt, without jitter."""
    rows = [(1, 0.0, 0.0)]
    elapsed = 0.0
    for n, delay in enumerate(nominal_delays(cfg), start=2):
        elapsed += delay
        rows.append((n, delay, elapsed))
    return rows
