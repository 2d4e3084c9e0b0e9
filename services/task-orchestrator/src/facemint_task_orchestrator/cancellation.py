"""Cancellation: ``CancelTask`` moves the task to ``cancelled`` in the database (a guarded transition, so it races
safely with the worker finishing it), then tells every replica on ``facemint.tasks.cancel``; the replica running the
task stops its analysis. A replica that misses the notice sees the status at its next progress write."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from facemint_core import streams
from facemint_core.errors import Conflict
from facemint_task_orchestrator.events import TaskEvents
from facemint_task_orchestrator.store import TaskRow, TaskStore


class UserCancelled(Exception):
    """The task was cancelled through the API while it ran."""


class Cancellation:
    """Cancels tasks and stops the analyses of cancelled tasks running on this replica."""

    def __init__(self, store: TaskStore, nc: NatsClient, events: TaskEvents) -> None:
        self.store = store
        self.nc = nc
        self.events = events
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._cancelled: set[str] = set()

    async def cancel(self, account_id: str, task_id: str) -> TaskRow:
        """Cancel a queued or running task; Conflict (409) when already terminal."""
        current = await self.store.get_owned(account_id, task_id)
        row = await self.store.cancel(task_id)
        if row is None:
            raise Conflict(f"task {task_id} is already {current.status} and cannot be cancelled")
        with contextlib.suppress(Exception):
            await self.nc.publish(streams.CANCEL_SUBJECT, task_id.encode())
        await self.events.finish(row)
        return row

    async def on_notice(self, msg: Msg) -> None:
        """A task was cancelled through the API: stop its analysis if it runs here."""
        task_id = msg.data.decode()
        running = self._running.get(task_id)
        if running is not None:
            self._cancelled.add(task_id)
            running.cancel()

    @contextlib.contextmanager
    def running(self, task_id: str, analysis: asyncio.Task[Any]) -> Iterator[None]:
        """Register the analysis of ``task_id`` while it runs here, so that a cancellation notice stops it."""
        self._running[task_id] = analysis
        try:
            yield
        finally:
            self._running.pop(task_id, None)
            self._cancelled.discard(task_id)

    def stopped_here(self, task_id: str) -> bool:
        """Whether a cancellation notice stopped the analysis of ``task_id`` (inside :meth:`running`)."""
        return task_id in self._cancelled
