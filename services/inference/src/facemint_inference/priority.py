"""The inference executor: a fixed pool of threads that serves interactive work (a still image's frame) first.

A video keeps a few batches of frames queued in the executor at all times; in a first-in, first-out pool a still
image's frame would wait behind all of them, and share the cores with them once it runs. Callers mark a request
interactive with the ``x-priority`` gRPC metadata (:data:`facemint_core.grpcutil.PRIORITY_METADATA`); the servicer
runs that request inside :meth:`PriorityExecutor.interactive`, which sets :data:`INTERACTIVE` (every step the
request submits, decoding, pre- and post-processing, model calls, is queued ahead of the others) and, while any
interactive request is in flight, starts no background step. Steps that have started are never interrupted: an
image waits at most for the background steps already running (the servicer analyses background batches frame by
frame, so that is one frame's model call). Images are short and the orchestrator bounds how many run at once, so
background work pauses for moments, not for long.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import heapq
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

INTERACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("inference_interactive", default=False)
"""True while the current request is interactive; read when a step is submitted."""

_URGENT, _BACKGROUND = 0, 1


class PriorityExecutor(concurrent.futures.Executor):
    """``workers`` threads taking interactive steps first, each class in submission order; background steps wait
    while an interactive request is in flight."""

    def __init__(self, workers: int, thread_name_prefix: str) -> None:
        """Start the threads."""
        self._heap: list[tuple[int, int, Any]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._interactive = 0
        self._shutdown = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{thread_name_prefix}_{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @contextlib.contextmanager
    def interactive(self) -> Iterator[None]:
        """Run the block (one request) as interactive: its steps first, no background step starting meanwhile."""
        token = INTERACTIVE.set(True)
        with self._cond:
            self._interactive += 1
        try:
            yield
        finally:
            INTERACTIVE.reset(token)
            with self._cond:
                self._interactive -= 1
                self._cond.notify_all()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> concurrent.futures.Future[T]:
        """Queue ``fn(*args, **kwargs)``, ahead of background steps when :data:`INTERACTIVE` is set."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        rank = _URGENT if INTERACTIVE.get() else _BACKGROUND
        with self._cond:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            heapq.heappush(self._heap, (rank, next(self._order), (future, fn, args, kwargs)))
            self._cond.notify_all()
        return future

    def _ready(self) -> bool:
        return bool(self._heap) and (self._heap[0][0] == _URGENT or self._interactive == 0)

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._ready() or (self._shutdown and not self._heap))
                if not self._heap:
                    return
                _, _, (future, fn, args, kwargs) = heapq.heappop(self._heap)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller through its future
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; with ``cancel_futures``, cancel what has not started; with ``wait``, join the threads."""
        with self._cond:
            self._shutdown = True
            if cancel_futures:
                for _, _, (future, *_) in self._heap:
                    future.cancel()
                self._heap.clear()
            self._interactive = 0  # nothing may wait for a request that will not finish
            self._cond.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()
