"""Which partition an event belongs to: a stable hash of its event id.

A decision and every outcome about it carry the same event id, so they land in the same
partition (the order of one event's records is kept, and a Kafka adapter would key by
the same id). CRC-32 is the same in every process and release, unlike Python's ``hash``,
which is salted per process.
"""

from __future__ import annotations

from zlib import crc32


def partition_of(event_id: str, partitions: int) -> int:
    """The partition in ``0..partitions-1`` of ``event_id``."""
    return crc32(event_id.encode()) % partitions
