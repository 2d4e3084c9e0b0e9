"""The sampling rule: the first frame at or after each instant start + k / rate, before end, never twice."""

from __future__ import annotations

import pytest

from facemint_media_decoder.animation import Timeline
from facemint_media_decoder.sampling import Sampler, SamplingWindow, Verdict, count_selected


def select(times: list[float], window: SamplingWindow, tolerance: float = 1e-9) -> list[float]:
    sampler = Sampler(window, tolerance)
    chosen = []
    for t in times:
        verdict = sampler.offer(t)
        if verdict is Verdict.STOP:
            break
        if verdict is Verdict.TAKE:
            chosen.append(t)
    return chosen


def test_constant_rate_video_is_sampled_at_exact_instants() -> None:
    frames = [i / 30 for i in range(150)]
    chosen = select(frames, SamplingWindow(start=0.0, end=4.0, rate=2))
    assert chosen == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5])


def test_start_time_shifts_the_instants() -> None:
    frames = [i / 10 for i in range(100)]
    assert select(frames, SamplingWindow(start=1.25, end=3.0, rate=1)) == pytest.approx([1.3, 2.3])


def test_first_frame_after_an_instant_is_chosen_when_none_is_exactly_at_it() -> None:
    frames = [0.0, 0.07, 0.31, 0.52, 0.9, 1.2]
    assert select(frames, SamplingWindow(rate=4)) == [0.0, 0.31, 0.52, 0.9, 1.2]


def test_sparse_frames_are_not_chosen_twice() -> None:
    frames = [0.0, 1.0, 2.0]
    assert select(frames, SamplingWindow(rate=30)) == [0.0, 1.0, 2.0]


def test_end_is_exclusive() -> None:
    frames = [i / 4 for i in range(20)]
    assert select(frames, SamplingWindow(end=1.0, rate=4)) == [0.0, 0.25, 0.5, 0.75]


def test_millisecond_rounded_timestamps_count_as_at_the_instant_within_half_a_tick() -> None:
    webm = [round(i / 30, 3) for i in range(30)]
    assert len(select(webm, SamplingWindow(rate=30), tolerance=0.0005)) == 30
    assert len(select(webm, SamplingWindow(rate=30))) < 30  # without the tolerance 0.033 misses 1/30


def test_count_selected_matches_selection() -> None:
    frames = [i / 25 for i in range(250)]
    window = SamplingWindow(start=0.3, end=7.1, rate=3)
    assert count_selected(frames, window) == len(select(frames, window)) == 21


def test_timeline_timestamps_are_cumulative_delays() -> None:
    timeline = Timeline((100.0, 250.0, 40.0, 500.0))
    assert timeline.timestamps == pytest.approx([0.0, 0.1, 0.35, 0.39])
    assert timeline.duration == pytest.approx(0.89)
