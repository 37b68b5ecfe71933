"""Action-list keys: stable, order-sensitive, and never shared by two lists."""

from __future__ import annotations

import pytest

from rlops.core.errors import IntegrityError
from rlops.store.codec import action_set_key, register_action_set


def test_keys_are_stable_signed_64_bit_and_follow_the_order() -> None:
    key = action_set_key(("a", "b", "c"))
    assert key == action_set_key(tuple("abc"))
    assert key != action_set_key(("c", "b", "a"))
    assert -(2**63) <= key < 2**63
    # Pinned: every process and version must compute the keys already stored.
    assert action_set_key(("keep",)) == -2182469189750865175


def test_one_key_for_two_lists_is_refused() -> None:
    key = action_set_key(("p5", "p10"))
    register_action_set(key, ("p5", "p10"))  # the same list again is fine
    with pytest.raises(IntegrityError, match="one key"):
        register_action_set(key, ("p10", "p5"))
