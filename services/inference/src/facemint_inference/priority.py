"""The inference executor: a fixed pool of threads that runs interactive work (a still image's frame) first.

A video keeps a few batches of frames queued in the executor at all times; in a first-in, first-out pool a still
image's frame would wait behind all of them. Callers mark a request interactive with the ``x-priority`` gRPC
metadata (:data:`facemint_core.grpcutil.PRIORITY_METADATA`); the servicer sets :data:`INTERACTIVE` for that
request, and every step it submits (decoding, pre- and post-processing, model calls) is queued ahead of the
others. A step that has started is never interrupted: an image waits at most for the steps already running.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import itertools
import queue
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

INTERACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("inference_interactive", default=False)
"""True while the current request is interactive; read when a step is submitted."""

_STOP = 2  # sorts after every piece of work: the threads finish what is queued, then stop


class PriorityExecutor(concurrent.futures.Executor):
    """``workers`` threads taking interactive steps before the others, each class in submission order."""

    def __init__(self, workers: int, thread_name_prefix: str) -> None:
        """Start the threads."""
        self._queue: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._shutdown = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{thread_name_prefix}_{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> concurrent.futures.Future[T]:
        """Queue ``fn(*args, **kwargs)``, ahead of non-interactive steps when :data:`INTERACTIVE` is set."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            rank = 0 if INTERACTIVE.get() else 1
            self._queue.put((rank, next(self._order), (future, fn, args, kwargs)))
        return future

    def _work(self) -> None:
        while True:
            rank, _, item = self._queue.get()
            if rank == _STOP:
                return
            future, fn, args, kwargs = item
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
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            if cancel_futures:
                while True:
                    try:
                        _, _, item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    item[0].cancel()
            for _ in self._threads:
                self._queue.put((_STOP, next(self._order), None))
        if wait:
            for thread in self._threads:
                thread.join()
