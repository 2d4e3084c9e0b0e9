"""The cache of finished tasks: only terminal tasks, bounded, least recently used out."""

from __future__ import annotations

from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core.vocab import STATUSES
from facemint_gateway.taskcache import TerminalTaskCache


def _task(task_id: str, status: str, result: str = "{}") -> orchestrator_pb2.Task:
    task = orchestrator_pb2.Task(task_id=task_id, status=STATUSES[status])
    task.result.json = result.encode()
    return task


def test_only_terminal_tasks_are_kept_and_per_account() -> None:
    cache = TerminalTaskCache(max_entries=10, max_result_bytes=100)
    cache.put("a", _task("t1", "running"), {"status": "running"})
    cache.put("a", _task("t2", "succeeded"), {"status": "succeeded"})
    assert cache.get("a", "t1") is None
    assert cache.get("a", "t2") == {"status": "succeeded"}
    assert cache.get("b", "t2") is None  # another account never sees it


def test_large_results_are_not_kept_and_eviction_is_lru() -> None:
    cache = TerminalTaskCache(max_entries=2, max_result_bytes=10)
    cache.put("a", _task("big", "succeeded", "x" * 11), {})
    assert cache.get("a", "big") is None
    cache.put("a", _task("t1", "failed"), {"n": 1})
    cache.put("a", _task("t2", "cancelled"), {"n": 2})
    assert cache.get("a", "t1") == {"n": 1}  # t1 is now the most recent
    cache.put("a", _task("t3", "succeeded"), {"n": 3})
    assert cache.get("a", "t2") is None and cache.get("a", "t1") == {"n": 1} and cache.get("a", "t3") == {"n": 3}
