"""API keys: high-entropy secrets with a recognisable prefix, stored only as a hash.

A key reads ``fm_<prefix>_<secret>``: ``prefix`` (8 base32 characters) identifies the key in listings and logs,
``secret`` carries 160 random bits. The database keeps ``sha256(key)`` and the prefix, never the key itself.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

KEY_PREFIX = "fm"


@dataclass(frozen=True)
class NewKey:
    """A freshly generated key: ``raw`` is shown once to its owner; the rest is stored."""

    key_id: str
    prefix: str
    raw: str
    key_hash: str


def _b32(n_bytes: int) -> str:
    return base64.b32encode(os.urandom(n_bytes)).decode().rstrip("=").lower()


def hash_key(raw: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(raw.encode()).hexdigest()


def generate_key() -> NewKey:
    """Generate a new key with its id, display prefix and hash."""
    prefix = _b32(5)
    raw = f"{KEY_PREFIX}_{prefix}_{_b32(20)}"
    return NewKey(key_id=f"key_{prefix}", prefix=f"{KEY_PREFIX}_{prefix}", raw=raw, key_hash=hash_key(raw))


def looks_like_key(raw: str) -> bool:
    """Cheap shape check before any database lookup."""
    parts = raw.split("_")
    return len(parts) == 3 and parts[0] == KEY_PREFIX and len(parts[1]) == 8 and len(parts[2]) == 32
