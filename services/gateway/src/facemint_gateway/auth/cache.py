"""The in-process key cache: key hash -> :class:`Account`, entries kept a few seconds, dropped on change."""

from __future__ import annotations

import time
from dataclasses import dataclass

from facemint_gateway.auth.plans import Account


@dataclass
class _Entry:
    account: Account | None  # None: no such active key (negative entry)
    stored_at: float


class KeyCache:
    """Key hash -> Account, each entry kept ``ttl`` seconds; bounded, oldest entries dropped first."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}

    def get(self, key_hash: str) -> _Entry | None:
        """A fresh entry, or None when absent or stale."""
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if time.monotonic() - entry.stored_at >= self.ttl:
            del self._entries[key_hash]
            return None
        return entry

    def put(self, key_hash: str, account: Account | None) -> None:
        """Remember the outcome of a lookup."""
        if self.ttl <= 0:
            return
        while len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key_hash] = _Entry(account, time.monotonic())

    def evict_account(self, account_id: str) -> None:
        """Drop every entry of an account (after a change announced on :data:`NOTIFY_CHANNEL`)."""
        stale = [h for h, e in self._entries.items() if e.account is not None and e.account.account_id == account_id]
        for key_hash in stale:
            del self._entries[key_hash]

    def clear(self) -> None:
        """Drop everything (e.g. after the change listener reconnected and may have missed notifications)."""
        self._entries.clear()
