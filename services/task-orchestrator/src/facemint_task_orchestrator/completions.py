"""Long polls of ``GetTask``: wake a waiting reader as soon as its task reaches a terminal state.

Every terminal transition publishes a ``TaskEvent`` on ``facemint.events.task.<status>`` (a JetStream subject;
core NATS subscribers receive it too). Each orchestrator replica subscribes to those subjects, so a reader
waiting on one replica is woken when the task finishes on any replica. A lost or late event only delays the
answer until the wait times out; the reader then sees the stored state, which is always authoritative. The
replica that finished the task wakes its own readers at once, before it builds and publishes the event, and hands
them the stored row, so they answer without reading it again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg

from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core import streams
from facemint_task_orchestrator.store import TaskRow

TERMINAL_EVENTS_SUBJECT = streams.event_subject("*")


class Completions:
    """Futures of readers waiting for a task to finish, keyed by task id."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[TaskRow | None]]] = {}

    def notify(self, task_id: str, row: TaskRow | None = None) -> None:
        """Wake every reader of ``task_id`` (its terminal state is committed; ``row`` is it, when known here)."""
        for future in self._waiters.pop(task_id, set()):
            if not future.done():
                future.set_result(row)

    async def on_event(self, msg: Msg) -> None:
        """A terminal event from any replica: wake every reader of that task here."""
        try:
            self.notify(orchestrator_pb2.TaskEvent.FromString(msg.data).task_id)
        except DecodeError:
            return

    @contextlib.contextmanager
    def watch(self, task_id: str) -> Iterator[asyncio.Future[TaskRow | None]]:
        """A future resolved when ``task_id`` finishes (with its row, or None when woken by another replica's
        event); register before reading the task, so no event is missed."""
        future: asyncio.Future[TaskRow | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, set()).add(future)
        try:
            yield future
        finally:
            waiting = self._waiters.get(task_id)
            if waiting is not None:
                waiting.discard(future)
                if not waiting:
                    del self._waiters[task_id]
