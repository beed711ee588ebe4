"""Seeds derived from a run's seed, one per purpose (data order, topology, compared criteria)."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *parts: object) -> int:
    """A deterministic 63-bit seed from ``seed`` and labels (stable across processes)."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1
