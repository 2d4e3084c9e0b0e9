"""The decode pool: blocking iterators driven on worker threads with bounded read-ahead, failures and clean-up."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from facemint_media_decoder.pool import DecodePool


class Tracked:
    """A blocking generator that records how far it was advanced, on which threads, and whether it was closed."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.produced = 0
        self.closed = threading.Event()
        self.threads: set[str] = set()

    def __call__(self) -> Iterator[int]:
        try:
            for i in range(self.count):
                if i == self.fail_at:
                    raise ValueError(f"broken at {i}")
                self.threads.add(threading.current_thread().name)
                self.produced += 1
                yield i
        finally:
            self.closed.set()


async def test_items_arrive_in_order_from_worker_threads() -> None:
    pool = DecodePool(workers=2, max_jobs=1)
    source = Tracked(10)
    async with pool.iterate(source, read_ahead=3) as items:
        assert [i async for i in items] == list(range(10))
    assert all(name.startswith("decode") for name in source.threads)
    assert source.closed.wait(2)
    pool.shutdown()


async def test_read_ahead_bounds_how_far_the_producer_runs() -> None:
    pool = DecodePool(workers=1, max_jobs=1)
    source = Tracked(1000)
    async with pool.iterate(source, read_ahead=2) as items:
        assert await anext(items) == 0
        await asyncio.sleep(0.2)  # the consumer stalls: the producer must stop after filling the queue
        assert source.produced <= 1 + 2 + 1  # taken, queued, and one step waiting to be queued
    assert source.closed.wait(2)
    assert source.produced < 10
    pool.shutdown()


async def test_failure_in_the_iterator_reaches_the_consumer() -> None:
    pool = DecodePool(workers=1, max_jobs=1)
    source = Tracked(10, fail_at=3)
    received = []
    with pytest.raises(ValueError, match="broken at 3"):
        async with pool.iterate(source, read_ahead=2) as items:
            async for item in items:
                received.append(item)
    assert received == [0, 1, 2]
    assert source.closed.wait(2)
    pool.shutdown()


async def test_leaving_early_closes_the_iterator() -> None:
    pool = DecodePool(workers=1, max_jobs=1)
    source = Tracked(1000)
    async with pool.iterate(source, read_ahead=4) as items:
        async for item in items:
            if item == 5:
                break
    assert source.closed.wait(2)
    pool.shutdown()


async def test_jobs_beyond_the_limit_wait_for_a_slot() -> None:
    pool = DecodePool(workers=1, max_jobs=2)
    active = 0
    most = 0

    async def job() -> None:
        nonlocal active, most
        async with pool.job():
            active += 1
            most = max(most, active)
            await asyncio.sleep(0.05)
            active -= 1

    await asyncio.gather(*(job() for _ in range(6)))
    assert most == 2
    pool.shutdown()


async def test_run_executes_on_a_worker_thread() -> None:
    pool = DecodePool(workers=1, max_jobs=1)
    assert (await pool.run(lambda: threading.current_thread().name)).startswith("decode")
    pool.shutdown()
