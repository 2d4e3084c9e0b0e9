"""The inference executor runs interactive steps (a still image's) before queued background steps."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

from facemint_inference.priority import INTERACTIVE, PriorityExecutor


def blocking(executor: PriorityExecutor) -> tuple[concurrent.futures.Future[bool], threading.Event]:
    """A step that occupies a thread until the returned event is set (started when this returns)."""
    started, release = threading.Event(), threading.Event()

    def step() -> bool:
        started.set()
        return release.wait()

    running = executor.submit(step)
    assert started.wait(5)
    return running, release


def test_an_interactive_step_overtakes_the_queued_background_steps() -> None:
    executor = PriorityExecutor(1, thread_name_prefix="test")
    order: list[str] = []
    try:
        running, release = blocking(executor)
        background = [executor.submit(order.append, f"video-{i}") for i in range(3)]
        with executor.interactive():
            image = executor.submit(order.append, "image")
            release.set()
            concurrent.futures.wait([running, image])
            executor.submit(order.append, "image, second step").result(timeout=5)
            assert order == ["image", "image, second step"], "no background step starts during the request"
        concurrent.futures.wait(background)
        assert order[2:] == ["video-0", "video-1", "video-2"]
    finally:
        executor.shutdown()


async def test_run_in_executor_carries_the_request_context_and_errors() -> None:
    executor = PriorityExecutor(2, thread_name_prefix="test")
    loop = asyncio.get_running_loop()

    async def interactive_request() -> tuple[bool, bool]:
        with executor.interactive():  # as the servicer does, in the request's own task
            submitted = INTERACTIVE.get()
            in_thread = await loop.run_in_executor(executor, INTERACTIVE.get)  # the worker thread has no context
        return submitted, in_thread

    try:
        assert await asyncio.create_task(interactive_request()) == (True, False)
        assert INTERACTIVE.get() is False
        assert await loop.run_in_executor(executor, int, "7") == 7, "background work runs again afterwards"
        with pytest.raises(ZeroDivisionError):
            await loop.run_in_executor(executor, divmod, 1, 0)
    finally:
        executor.shutdown()


def test_shutdown_cancels_what_has_not_started_and_refuses_more() -> None:
    executor = PriorityExecutor(1, thread_name_prefix="test")
    running, release = blocking(executor)
    queued = executor.submit(int, "1")
    executor.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    with pytest.raises(RuntimeError):
        executor.submit(int, "2")
    release.set()
    assert running.result(timeout=5) is True
    executor.shutdown()
