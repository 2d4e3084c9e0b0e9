"""The fair scheduler: slots shared across accounts, the image lane, cancellation and shutdown."""

from __future__ import annotations

import asyncio

import pytest

from facemint.common.v1 import common_pb2
from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core.jetstream import Retry
from facemint_task_orchestrator.estimates import MAX_SECONDS, Estimator
from facemint_task_orchestrator.scheduling import FairScheduler
from facemint_task_orchestrator.settings import EstimateSettings


class Job:
    """A job that takes a slot and holds it until told to finish."""

    def __init__(self, scheduler: FairScheduler, account: str, image: bool = False) -> None:
        self.account = account
        self.started = asyncio.Event()
        self.done = asyncio.Event()
        self.task = asyncio.create_task(self._run(scheduler, image))

    async def _run(self, scheduler: FairScheduler, image: bool) -> None:
        async with scheduler.slot(self.account, image):
            self.started.set()
            await self.done.wait()

    async def finish(self) -> None:
        self.done.set()
        await self.task


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_free_slot_goes_to_the_account_holding_fewest_even_if_it_came_last() -> None:
    scheduler = FairScheduler(general_slots=2, image_slots=0)
    heavy = [Job(scheduler, "a") for _ in range(4)]  # a fills both slots and queues two more
    await settle()
    light = Job(scheduler, "b")
    await settle()
    assert [j.started.is_set() for j in heavy] == [True, True, False, False] and not light.started.is_set()
    await heavy[0].finish()
    await settle()
    assert light.started.is_set() and not heavy[2].started.is_set()
    assert scheduler.held("a") == 1 and scheduler.held("b") == 1
    await heavy[1].finish()
    await settle()
    assert heavy[2].started.is_set() and not heavy[3].started.is_set()
    for job in (light, heavy[2]):
        await job.finish()
    await settle()
    await heavy[3].finish()
    assert scheduler.waiting == 0 and scheduler.held("a") == 0


async def test_alone_an_account_uses_every_slot() -> None:
    scheduler = FairScheduler(general_slots=3, image_slots=1)
    jobs = [Job(scheduler, "a") for _ in range(3)] + [Job(scheduler, "a", image=True)]
    await settle()
    assert all(j.started.is_set() for j in jobs) and scheduler.held("a") == 4
    for job in jobs:
        await job.finish()


async def test_images_never_wait_behind_videos_and_gifs() -> None:
    scheduler = FairScheduler(general_slots=2, image_slots=1)
    media = [Job(scheduler, "abuser") for _ in range(3)]
    await settle()
    images = [Job(scheduler, "other", image=True), Job(scheduler, "abuser", image=True)]
    await settle()
    assert images[0].started.is_set(), "the image slot is for images only, free while videos hold the others"
    assert not media[2].started.is_set() and not images[1].started.is_set()
    await images[0].finish()
    await settle()
    assert images[1].started.is_set() and not media[2].started.is_set()
    for job in (*media[:2], images[1]):
        await job.finish()
    await settle()
    await media[2].finish()


async def test_a_cancelled_wait_gives_up_its_place_and_a_granted_one_its_slot() -> None:
    scheduler = FairScheduler(general_slots=1, image_slots=0)
    first = Job(scheduler, "a")
    waiting = Job(scheduler, "b")
    await settle()
    waiting.task.cancel()
    await settle()
    assert scheduler.waiting == 0
    after = Job(scheduler, "c")
    await first.finish()
    await settle()
    assert after.started.is_set()
    await after.finish()
    assert scheduler.held("a") == scheduler.held("b") == scheduler.held("c") == 0


async def test_closing_hands_waiting_and_later_jobs_back() -> None:
    scheduler = FairScheduler(general_slots=1, image_slots=0)
    running = Job(scheduler, "a")
    waiting = Job(scheduler, "b")
    await settle()
    scheduler.close()
    with pytest.raises(Retry):
        await waiting.task
    with pytest.raises(Retry):
        async with scheduler.slot("c", image=False):
            pass
    await running.finish()
    assert scheduler.waiting == 0


def test_a_slow_one_frame_task_does_not_inflate_the_estimate_of_a_video() -> None:
    rate = Estimator(EstimateSettings(seconds_per_frame=0.25, overhead_seconds=1.0))
    rate.observe(8.0, 1)  # a cold model on the first image
    for _ in range(5):
        rate.observe(1.3, 1)
    assert rate.seconds_per_frame < 0.6  # a 30 s video at 2 fps: under 40 s, not minutes
    for _ in range(20):
        rate.observe(1.0 + 60 * 0.1, 60)  # measured videos at 0.1 s per frame pull the rate there
    assert abs(rate.seconds_per_frame - 0.1) < 0.03


def test_an_end_time_far_past_any_file_is_estimated_as_the_longest_window_and_fits_the_task_row() -> None:
    rate = Estimator(EstimateSettings(seconds_per_frame=0.25, overhead_seconds=1.0, max_video_seconds=3600))
    spec = orchestrator_pb2.TaskSpec(kind=common_pb2.MEDIA_KIND_VIDEO, sample_rate=2, end_time=1.3e16)
    assert rate.frames(spec) == 7200
    assert rate.seconds(rate.frames(spec)) == 1801
    assert rate.seconds(10**12) == MAX_SECONDS
