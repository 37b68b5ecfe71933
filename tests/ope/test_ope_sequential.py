"""Sequential estimators on a tiny chain with a known value."""

from __future__ import annotations

import numpy as np
import pytest

from rlops.core.errors import ValidationError
from rlops.ope.sequential import Episodes, fqe, pdis, wpdis

# Two actions, horizon 3; reward 1 for action 1, else 0; the state is the one-hot step.
N, T, K = 4000, 3, 2


def _episodes(seed: int = 0) -> tuple[Episodes, np.ndarray]:
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, K, size=(N, T))
    episodes = Episodes.of(
        states=np.broadcast_to(np.eye(T), (N, T, T)),
        actions=actions,
        rewards=(actions == 1).astype(float),
        pscores=np.full((N, T), 0.5),
    )
    target = np.broadcast_to(np.array([0.2, 0.8]), (N, T, K))
    return episodes, target


def _policy(states: np.ndarray) -> np.ndarray:
    return np.tile([0.2, 0.8], (states.shape[0], 1))


def test_pdis_wpdis_fqe_recover_the_chain_value() -> None:
    episodes, target = _episodes()
    gamma = 0.9
    truth = 0.8 * (1 + gamma + gamma**2)
    assert pdis(episodes, target=target, gamma=gamma).mean() == pytest.approx(truth, rel=0.05)
    assert wpdis(episodes, target=target, gamma=gamma) == pytest.approx(truth, rel=0.02)
    value = fqe(episodes, policy=_policy, n_actions=K, gamma=gamma, iterations=5, alpha=1e-6)
    assert value == pytest.approx(truth, rel=0.02)


def test_on_policy_pdis_is_the_discounted_return() -> None:
    episodes, _ = _episodes()
    uniform = np.full((N, T, K), 0.5)
    returns = episodes.rewards @ np.array([1.0, 0.5, 0.25])
    np.testing.assert_allclose(pdis(episodes, target=uniform, gamma=0.5), returns)


def test_masked_steps_do_not_count() -> None:
    mask = np.array([[True, True, False]])
    episodes = Episodes.of(
        states=np.zeros((1, 3, 1)),
        actions=np.zeros((1, 3), dtype=np.int64),
        rewards=np.array([[1.0, 1.0, np.nan]]),
        pscores=np.array([[1.0, 1.0, 0.0]]),
        mask=mask,
    )
    assert pdis(episodes, target=np.tile([1.0, 0.0], (1, 3, 1)))[0] == 2.0


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("pscores", {"pscores": np.zeros((2, 2))}),
        ("rewards", {"rewards": np.full((2, 2), np.nan)}),
        ("actions", {"actions": np.zeros((2, 3), dtype=np.int64)}),
        ("states", {"states": np.zeros((2, 2))}),
    ],
)
def test_invalid_episodes(field: str, changes: dict[str, np.ndarray]) -> None:
    good = {
        "states": np.zeros((2, 2, 1)),
        "actions": np.zeros((2, 2), dtype=np.int64),
        "rewards": np.zeros((2, 2)),
        "pscores": np.full((2, 2), 0.5),
    }
    with pytest.raises(ValidationError) as raised:
        Episodes.of(**{**good, **changes})
    assert raised.value.field == field
