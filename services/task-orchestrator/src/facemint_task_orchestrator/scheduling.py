"""Fair scheduling of the jobs one orchestrator runs: worker slots shared across accounts, and an image lane.

The orchestrator fetches more jobs than it runs (``WorkerSettings.waiting_jobs`` beyond its slots), and each
fetched job waits here for a slot. Whenever a slot frees, it goes to the waiting job whose account holds the
fewest slots at that moment (images first among equals, then in arrival order). So an account that holds more
than its share while another account waits gets no further slot until the other has one (max-min fairness);
alone, an account may use every slot. Running tasks are never preempted: how long one can hold a slot is bounded
by the media-decoder's work budget and the task time limit (see ADR 0012).

``image_slots`` slots run images only, so a still image never waits behind videos and GIFs, whoever sent them;
images also use the general slots when those are free.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from facemint_core.jetstream import Retry


@dataclass(eq=False)
class _Waiter:
    account_id: str
    image: bool
    order: int
    granted: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    """Resolves to True when the job got an image slot, False for a general slot."""


class FairScheduler:
    """Grants worker slots to waiting jobs, fairly across accounts; one per orchestrator process."""

    def __init__(self, general_slots: int, image_slots: int) -> None:
        """Create a scheduler with ``general_slots`` for any job and ``image_slots`` for images only."""
        self.general_slots = general_slots
        self.image_slots = image_slots
        self._general_used = 0
        self._image_used = 0
        self._held: Counter[str] = Counter()
        self._waiting: list[_Waiter] = []
        self._order = itertools.count()
        self._closed = False

    @property
    def waiting(self) -> int:
        """Jobs waiting for a slot."""
        return len(self._waiting)

    def held(self, account_id: str) -> int:
        """Slots an account holds now."""
        return self._held[account_id]

    def close(self) -> None:
        """Grant no more slots (the process is stopping): waiting jobs, and any that come, are handed back."""
        self._closed = True
        for waiter in self._waiting:
            waiter.granted.set_exception(Retry("the orchestrator is stopping", delay=0))
        self._waiting.clear()

    @contextlib.asynccontextmanager
    async def slot(self, account_id: str, image: bool) -> AsyncIterator[None]:
        """Wait for a slot and hold it for the block (leaving the wait cancelled gives up the place in line).

        Raises:
            Retry: The scheduler is closed; the job goes back to the stream for another process.
        """
        if self._closed:
            raise Retry("the orchestrator is stopping", delay=0)
        waiter = _Waiter(account_id, image, next(self._order))
        self._waiting.append(waiter)
        self._dispatch()
        try:
            image_slot = await waiter.granted
        except asyncio.CancelledError:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            elif waiter.granted.done() and not waiter.granted.cancelled():
                self._release(account_id, waiter.granted.result())
            raise
        try:
            yield
        finally:
            self._release(account_id, image_slot)

    def _release(self, account_id: str, image_slot: bool) -> None:
        if image_slot:
            self._image_used -= 1
        else:
            self._general_used -= 1
        self._held[account_id] -= 1
        if self._held[account_id] <= 0:
            del self._held[account_id]
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand free slots to waiting jobs: fewest slots held by the account first, images first among equals."""
        while self._waiting and not self._closed:
            general_free = self._general_used < self.general_slots
            image_free = self._image_used < self.image_slots
            eligible = [w for w in self._waiting if general_free or (w.image and image_free)]
            if not eligible:
                return
            chosen = min(eligible, key=lambda w: (self._held[w.account_id], not w.image, w.order))
            self._waiting.remove(chosen)
            image_slot = chosen.image and image_free
            if image_slot:
                self._image_used += 1
            else:
                self._general_used += 1
            self._held[chosen.account_id] += 1
            chosen.granted.set_result(image_slot)
