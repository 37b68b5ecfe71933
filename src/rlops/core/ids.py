"""Time-ordered event ids.

Ids that sort by creation time keep the log's unique index appending at its right edge
(random UUIDs scatter inserts over the whole B-tree), and they read well in logs.
Layout, as 32 hex characters: 48 bits of milliseconds since the epoch, then 80 random bits.
"""

from __future__ import annotations

import os
import random
import time


def new_event_id(now: float | None = None) -> str:
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    return f"{millis:012x}{os.urandom(10).hex()}"


class SeededEventIds:
    """Event ids whose random part comes from a seeded generator, for simulated runs.

    The service keys each request's exploration draw by its event id when the caller sends
    no request id, so a simulation that must give the same result for the same seed needs
    the same ids in the same order. Production keeps :func:`new_event_id`.
    """

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def __call__(self, now: float | None = None) -> str:
        millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
        return f"{millis:012x}{self._random.getrandbits(80):020x}"
