"""The incremental ridge state equals the closed-form ridge solution, whatever the events.

After any sequence of events, split into any batches, with any forgetting factor and
importance weights, every model's ``theta`` and ``A^{-1}`` must equal

    A_t = gamma^t lambda I + sum_i gamma^(t-i) w_i x_i x_i^T,   b_t = sum_i gamma^(t-i) w_i r_i x_i

solved from scratch (:func:`rlops.learn.ridge.normal_equations`), to 1e-8. For the
disjoint form ``t`` counts every event (one clock for all models) and ``x_i`` is zero for
events of other actions; for the shared form ``x_i = vec([z_i, 1] [phi(f_{a_i}), 1]^T)``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlops.core.actions import Action, ActionCatalog
from rlops.learn.bandits import BanditConfig, BanditLearner
from rlops.learn.ridge import disjoint_update, normal_equations, sherman_morrison
from rlops.policies.bandit import augment, joint_features
from rlops.policies.linear import ActionMap, action_basis

Array = npt.NDArray[np.float64]
TOL = 1e-8
CATALOG = ActionCatalog.of(
    [Action("a", (0.0, 1.0)), Action("b", (0.5, -1.0)), Action("c", (1.0, 0.2))],
    feature_names=("f0", "f1"),
)
DIM = 3


@st.composite
def histories(draw: st.DrawFn) -> tuple[Array, npt.NDArray[np.intp], Array, Array, list[int]]:
    """Events ``(x, a, r, w)`` and the batch sizes they are fed in."""
    n = draw(st.integers(min_value=0, max_value=40))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3.0, 3.0, size=(n, DIM))
    a = rng.integers(0, len(CATALOG), size=n).astype(np.intp)
    if draw(st.booleans()):  # one action takes most events: the disjoint tail path
        a[rng.random(n) < 0.8] = 1
    r = rng.normal(0.0, 2.0, size=n)
    w = rng.uniform(0.1, 5.0, size=n) if draw(st.booleans()) else np.ones(n)
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=n), max_size=4)))
    sizes = list(np.diff([0, *cuts, n]).tolist())
    return x, a, r, w, sizes


def _feed(
    learner: BanditLearner, history: tuple[Array, npt.NDArray[np.intp], Array, Array, list[int]]
) -> None:
    x, a, r, w, sizes = history
    start = 0
    for size in sizes:
        stop = start + size
        learner.update(x[start:stop], a[start:stop], r[start:stop], weights=w[start:stop])
        start = stop


gammas = st.sampled_from([1.0, 0.99, 0.95, 0.9])
lambdas = st.sampled_from([0.5, 1.0, 4.0])


@settings(max_examples=60, deadline=None)
@given(history=histories(), gamma=gammas, lam=lambdas)
def test_disjoint_models_equal_the_closed_form(
    history: tuple[Array, npt.NDArray[np.intp], Array, Array, list[int]], gamma: float, lam: float
) -> None:
    learner = BanditLearner(
        BanditConfig(form="disjoint", gamma_forget=gamma, ridge_lambda=lam), CATALOG, DIM
    )
    _feed(learner, history)
    x, a, r, w, _ = history
    z1 = augment(x)
    for k in range(len(CATALOG)):
        mine = a == k
        xs = np.where(mine[:, None], z1, 0.0)  # other actions' events only tick the clock
        big_a, b = normal_equations(
            xs, np.where(mine, r, 0.0), ridge_lambda=lam, gamma=gamma, weights=w
        )
        np.testing.assert_allclose(learner.theta[k], np.linalg.solve(big_a, b), rtol=TOL, atol=TOL)
        np.testing.assert_allclose(learner.a_inv[k], np.linalg.inv(big_a), rtol=TOL, atol=TOL)
    assert learner.events == len(r)


@settings(max_examples=60, deadline=None)
@given(
    history=histories(),
    gamma=gammas,
    lam=lambdas,
    action_map=st.sampled_from(["identity", "quadratic"]),
)
def test_shared_model_equals_the_closed_form(
    history: tuple[Array, npt.NDArray[np.intp], Array, Array, list[int]],
    gamma: float,
    lam: float,
    action_map: ActionMap,
) -> None:
    config = BanditConfig(
        form="shared", gamma_forget=gamma, ridge_lambda=lam, action_map=action_map
    )
    learner = BanditLearner(config, CATALOG, DIM)
    _feed(learner, history)
    x, a, r, w, _ = history
    phi = action_basis(CATALOG.feature_matrix(), action_map)
    big_a, b = normal_equations(
        joint_features(augment(x), phi[a]), r, ridge_lambda=lam, gamma=gamma, weights=w
    )
    np.testing.assert_allclose(learner.theta, np.linalg.solve(big_a, b), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(learner.a_inv, np.linalg.inv(big_a), rtol=TOL, atol=TOL)


def test_sherman_morrison_is_the_inverse_of_the_rank_one_change() -> None:
    rng = np.random.default_rng(3)
    m = rng.normal(size=(5, 5))
    a: Array = m @ m.T + np.eye(5)
    x = rng.normal(size=5)
    expected = np.asarray(np.linalg.inv(0.9 * a + np.outer(x, x)), dtype=np.float64)
    a_inv = np.asarray(np.linalg.inv(a), dtype=np.float64)
    np.testing.assert_allclose(sherman_morrison(a_inv, x, 0.9), expected, rtol=TOL, atol=TOL)


def test_standardisation_is_applied_before_the_update() -> None:
    """With ``shift``/``scale`` the model is the ridge solution on ``(x - shift) / scale``."""
    rng = np.random.default_rng(4)
    x = rng.normal(5.0, 3.0, size=(30, DIM))
    a = rng.integers(0, 3, size=30)
    r = rng.normal(size=30)
    shift, scale = np.array([5.0, 4.0, 6.0]), np.array([3.0, 2.0, 0.5])
    learner = BanditLearner(BanditConfig(form="shared"), CATALOG, DIM, shift=shift, scale=scale)
    learner.update(x, a, r)
    phi = action_basis(CATALOG.feature_matrix(), "identity")
    big_a, b = normal_equations(
        joint_features(augment((x - shift) / scale), phi[a]), r, ridge_lambda=1.0
    )
    np.testing.assert_allclose(learner.theta, np.linalg.solve(big_a, b), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("gamma", [1.0, 0.95])
def test_the_batched_rounds_equal_one_event_at_a_time(gamma: float) -> None:
    """Vectorising across actions changes nothing: one call equals n calls of one event."""
    rng = np.random.default_rng(5)
    n, q, k = 50, 4, 3
    xs, rs = rng.normal(size=(n, q)), rng.normal(size=n)
    acts = rng.integers(0, k, size=n).astype(np.intp)
    p0, b0 = np.tile(np.eye(q), (k, 1, 1)), np.zeros((k, q))
    p_all, b_all = disjoint_update(p0, b0, xs, acts, rs, np.ones(n), gamma)
    p_one, b_one = p0, b0
    for i in range(n):
        p_one, b_one = disjoint_update(
            p_one, b_one, xs[i : i + 1], acts[i : i + 1], rs[i : i + 1], np.ones(1), gamma
        )
    np.testing.assert_allclose(p_all, p_one, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(b_all, b_one, rtol=TOL, atol=TOL)
