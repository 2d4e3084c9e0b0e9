"""A per-process cache of finished tasks' public views."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core.vocab import TERMINAL_STATUSES


class TerminalTaskCache:
    """Views of tasks in a terminal state, which never change again: polls of finished tasks skip the orchestrator.

    Bounded by entry count (least recently used out) and by result size (large video results are not kept).
    """

    def __init__(self, max_entries: int, max_result_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_result_bytes = max_result_bytes
        self._views: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    def get(self, account: str, task_id: str) -> dict[str, Any] | None:
        """The cached view, if any."""
        view = self._views.get((account, task_id))
        if view is not None:
            self._views.move_to_end((account, task_id))
        return view

    def put(self, account: str, task: orchestrator_pb2.Task, view: dict[str, Any]) -> None:
        """Keep the view of a terminal task."""
        if (
            task.status not in TERMINAL_STATUSES
            or len(task.result.json) > self.max_result_bytes
            or self.max_entries <= 0
        ):
            return
        self._views[(account, task.task_id)] = view
        if len(self._views) > self.max_entries:
            self._views.popitem(last=False)
