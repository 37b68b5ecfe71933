"""Event ids: time-ordered, 32 hex characters; the seeded ones repeat for the same seed."""

from __future__ import annotations

from rlops.core.ids import SeededEventIds, new_event_id

T0 = 1_800_000_000.0


def test_ids_sort_by_time_and_have_the_documented_layout() -> None:
    ids = [new_event_id(T0 + i) for i in range(5)]
    assert ids == sorted(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert ids[0][:12] == f"{int(T0 * 1000):012x}"


def test_seeded_ids_repeat_for_a_seed_and_differ_across_seeds() -> None:
    first, again, other = SeededEventIds(7), SeededEventIds(7), SeededEventIds(8)
    a = [first(T0) for _ in range(100)]
    assert a == [again(T0) for _ in range(100)]
    assert len(set(a)) == 100  # the random part still separates ids of one millisecond
    assert set(a).isdisjoint(other(T0) for _ in range(100))
    assert all(len(i) == 32 and i[:12] == f"{int(T0 * 1000):012x}" for i in a)
