"""The trust-region mix meets its bound and is minimal, over random distributions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rlops.core.errors import ValidationError
from rlops.policies.contract import kl_divergence
from rlops.safety import trust_region_mix


def _distribution(k: int) -> st.SearchStrategy[np.ndarray]:
    weights = arrays(np.float64, k, elements=st.floats(0.0, 1.0)).filter(lambda w: w.sum() > 1e-3)
    return weights.map(lambda w: w / w.sum())


@st.composite
def pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float]:
    k = draw(st.integers(2, 6))
    n = draw(st.integers(1, 5))
    p = np.stack([draw(_distribution(k)) for _ in range(n)])
    b = np.stack([draw(_distribution(k)) for _ in range(n)])
    # A baseline with full support is the served case (floored); keep some without.
    if draw(st.booleans()):
        b = 0.9 * b + 0.1 / k
    bound = draw(st.floats(0.0, 2.0))
    return p, b, bound


@settings(max_examples=300, deadline=None)
@given(pairs())
def test_the_mix_meets_the_bound_and_is_minimal(case: tuple[np.ndarray, np.ndarray, float]) -> None:
    p, b, bound = case
    mix = trust_region_mix(p, b, bound)
    np.testing.assert_allclose(mix.probs.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(mix.kl <= bound + 1e-12)
    np.testing.assert_allclose(mix.kl, kl_divergence(mix.probs, b))
    for i, w in enumerate(mix.baseline_weight):
        assert 0.0 <= w <= 1.0
        if w > 0.0:
            # Less baseline weight (by 1e-6) would break the bound: w is the smallest
            # (up to 1e-12 nats, where KL itself stops being resolvable in float64).
            less = max(w - 1e-6, 0.0)
            m = (1 - less) * p[i : i + 1] + less * b[i : i + 1]
            assert kl_divergence(m, b[i : i + 1])[0] > bound - 1e-12
        else:
            assert kl_divergence(p[i : i + 1], b[i : i + 1])[0] <= bound


def test_a_policy_inside_the_bound_is_served_unchanged() -> None:
    p = np.array([[0.5, 0.3, 0.2]])
    b = np.array([[0.4, 0.4, 0.2]])
    mix = trust_region_mix(p, b, bound=1.0)
    np.testing.assert_array_equal(mix.probs, p)
    assert mix.baseline_weight[0] == 0.0


def test_a_policy_off_the_baseline_support_gets_the_baseline() -> None:
    p = np.array([[0.0, 0.0, 1.0]])
    b = np.array([[0.5, 0.5, 0.0]])
    mix = trust_region_mix(p, b, bound=0.5)
    assert mix.baseline_weight[0] == 1.0
    np.testing.assert_allclose(mix.probs, b)


def test_a_known_mix_by_hand() -> None:
    """Two actions: p = (1, 0), b = (1/2, 1/2). KL((1 - w/2, w/2) || b) = log 2 - H(w/2)."""
    p = np.array([[1.0, 0.0]])
    b = np.array([[0.5, 0.5]])
    bound = 0.1
    w = trust_region_mix(p, b, bound).baseline_weight[0]
    q = w / 2
    kl = (1 - q) * np.log((1 - q) / 0.5) + q * np.log(q / 0.5)
    assert kl == pytest.approx(bound, abs=1e-10)


@pytest.mark.parametrize(
    ("p", "b", "bound", "field"),
    [
        (np.ones((2, 3)) / 3, np.ones((2, 2)) / 2, 0.1, "baseline"),
        (np.ones((1, 2)) / 2, np.ones((1, 2)) / 2, -0.1, "bound"),
        (np.ones((1, 2)) / 2, np.ones((1, 2)) / 2, float("nan"), "bound"),
        (np.array([[0.7, 0.7]]), np.ones((1, 2)) / 2, 0.1, "probabilities"),
    ],
)
def test_bad_input_is_refused(p: np.ndarray, b: np.ndarray, bound: float, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        trust_region_mix(p, b, bound)
    assert info.value.field == field
