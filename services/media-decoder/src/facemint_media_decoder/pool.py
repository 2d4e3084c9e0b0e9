"""The bounded decode pool: blocking decoding runs on a fixed set of worker threads, never on the event loop.

Two limits apply. ``workers`` threads bound how many decode steps (a probe, or decoding up to the next sampled
frame) run at once, i.e. the CPU used. ``max_jobs`` bounds how many media jobs (fetch, probe and decode of one
request) are open at once, i.e. spool disk and memory; further requests wait for a slot. Within a job, frames are
pulled through :class:`ThreadedIterator`, whose small read-ahead queue is the back-pressure: when inference is
slower than decoding, the generator is simply not advanced.

Threads rather than processes: PyAV, Pillow and numpy release the GIL while they work, and a thread can hand a
generator's frames to the event loop without copying them between processes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _End:
    """Marks the end of an iterator."""


_END = _End()


class _Failure:
    """Carries an exception from the producer to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class DecodePool:
    """Worker threads for blocking decode work, and admission of whole media jobs."""

    def __init__(self, workers: int, max_jobs: int) -> None:
        """Create the pool.

        Args:
            workers: Decode threads (decode steps running at once).
            max_jobs: Media jobs open at once; more wait in :meth:`job`.
        """
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
        self._jobs = asyncio.Semaphore(max_jobs)

    @contextlib.asynccontextmanager
    async def job(self) -> AsyncIterator[None]:
        """Hold one job slot for the duration of the block."""
        async with self._jobs:
            yield

    async def run(self, fn: Callable[[], T]) -> T:
        """Run a blocking function on a worker thread (with the caller's context variables) and return its result."""
        context = contextvars.copy_context()
        return await asyncio.wrap_future(self._executor.submit(context.run, fn))

    def iterate(self, make: Callable[[], Iterator[T]], read_ahead: int) -> ThreadedIterator[T]:
        """Drive the iterator that ``make`` returns on the worker threads, ``read_ahead`` items ahead of the reader."""
        return ThreadedIterator(self._executor, make, read_ahead)

    def shutdown(self) -> None:
        """Stop accepting work and drop queued steps; running steps finish in the background."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _step(iterator: Iterator[T]) -> T | _End:
    try:
        return next(iterator)
    except StopIteration:
        return _END


def _close_after(pending: concurrent.futures.Future[Any] | None, iterator: Iterator[object]) -> None:
    """Close a generator once the step that may be running it has finished (runs on a worker thread)."""
    if pending is not None:
        concurrent.futures.wait([pending])
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


class ThreadedIterator(Generic[T]):
    """An async iterator over a blocking iterator that advances on worker threads, with a bounded read-ahead.

    Use it as an async context manager: leaving the block stops the producer and closes the blocking iterator
    (a generator's ``finally`` blocks run, on a worker thread, after any step in progress).

    Attributes:
        busy_seconds: Worker time spent advancing the iterator so far.
    """

    def __init__(
        self, executor: concurrent.futures.ThreadPoolExecutor, make: Callable[[], Iterator[T]], read_ahead: int
    ) -> None:
        self._executor = executor
        self._make = make
        self._queue: asyncio.Queue[T | _End | _Failure] = asyncio.Queue(maxsize=max(1, read_ahead))
        self._producer: asyncio.Task[None] | None = None
        self._finished = False
        self.busy_seconds = 0.0

    async def __aenter__(self) -> ThreadedIterator[T]:
        self._producer = asyncio.create_task(self._produce())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._producer is not None:
            self._producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._producer

    def __aiter__(self) -> ThreadedIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._finished:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, _End):
            self._finished = True
            raise StopAsyncIteration
        if isinstance(item, _Failure):
            self._finished = True
            raise item.error
        return item

    def _timed_step(self, iterator: Iterator[T]) -> T | _End:
        started = time.perf_counter()
        try:
            return _step(iterator)
        finally:
            self.busy_seconds += time.perf_counter() - started

    async def _produce(self) -> None:
        iterator = self._make()
        pending: concurrent.futures.Future[T | _End] | None = None
        context = contextvars.copy_context()
        try:
            while True:
                pending = self._executor.submit(context.run, self._timed_step, iterator)
                item = await asyncio.wrap_future(pending)
                pending = None
                await self._queue.put(item)
                if isinstance(item, _End):
                    return
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - every failure is handed to the consumer
            await self._queue.put(_Failure(exc))
        finally:
            try:
                self._executor.submit(_close_after, pending, iterator)
            except RuntimeError:  # the executor is shut down: nothing runs the iterator any more
                with contextlib.suppress(ValueError):
                    _close_after(None, iterator)
