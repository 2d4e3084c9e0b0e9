"""Identifiers: time-ordered, URL-safe, with a readable prefix (``task_``, ``req_``, ``f_``...)."""

from __future__ import annotations

import os
import time


def new_id(prefix: str, random_bytes: int = 6) -> str:
    """Return ``<prefix>_<12 hex of milliseconds><random hex>``, sortable by creation time."""
    millis = int(time.time() * 1000)
    return f"{prefix}_{millis:012x}{os.urandom(random_bytes).hex()}"


def new_request_id() -> str:
    """Return a request id such as ``req_7f2b1a4c8d3e``."""
    return f"req_{os.urandom(6).hex()}"
