"""Behaviour cloning: the loss by hand, masks, weighting, invalid input, export."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rlops.core.errors import ValidationError
from rlops.learn.bc import BCConfig, bc_loss, train_bc
from rlops.policies.artifact import load_policy, save_policy
from tests.learn.helpers import CATALOG, SCHEMA, bandit_data

LOGITS = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
ACTIONS = torch.tensor([2, 0])


def _nll(row: list[float], action: int) -> float:
    return -(row[action] - math.log(sum(math.exp(v) for v in row)))


def test_bc_loss_by_hand() -> None:
    ones = torch.ones(2)
    expected = (_nll([0.0, 1.0, 2.0], 2) + math.log(3.0)) / 2
    assert bc_loss(LOGITS, ACTIONS, None, ones).item() == pytest.approx(expected, abs=1e-6)


def test_bc_loss_softmax_over_allowed_actions_and_weights() -> None:
    allowed = torch.tensor([[False, True, True], [True, True, True]])
    weights = torch.tensor([3.0, 1.0])
    row1 = _nll([1.0, 2.0], 1)  # action 0 unavailable: softmax over actions 1 and 2
    expected = (3.0 * row1 + math.log(3.0)) / 4.0
    got = bc_loss(LOGITS, ACTIONS, allowed, weights)
    assert got.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hidden", (0,)),
        ("steps", 0),
        ("batch_size", -1),
        ("learning_rate", 2.0),
        ("weighting", "inverse"),
        ("head", "argmax"),
        ("temperature", 0.0),
    ],
)
def test_invalid_config_names_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        BCConfig(**{field: value})
    assert caught.value.field == field


def test_config_json_round_trip() -> None:
    config = BCConfig(hidden=(8,), weighting="propensity", head="greedy", seed=2)
    assert BCConfig.from_json(config.to_json()) == config


def test_same_seed_same_weights_and_export(tmp_path: Path) -> None:
    data = bandit_data(300)
    config = BCConfig(steps=50, batch_size=32, hidden=(16,), seed=1)
    first, second = train_bc(data, config), train_bc(data, config)
    for a, b in zip(first.network.parameters(), second.network.parameters(), strict=True):
        assert torch.equal(a, b)
    policy = first.policy
    assert policy.output == "logits" and policy.head.kind == "softmax"
    x = data.features[:40]
    assert policy.shift is not None and policy.scale is not None
    z = torch.as_tensor(((x - policy.shift) / policy.scale).astype(np.float32))
    with torch.no_grad():
        logits = first.network(z).numpy()
    np.testing.assert_allclose(policy.scores(x, CATALOG), logits, atol=1e-5)
    np.testing.assert_allclose(
        policy.probabilities(x, CATALOG), torch.softmax(torch.as_tensor(logits), 1), atol=1e-6
    )
    save_policy(tmp_path / "bc", policy, name="bc", schema=SCHEMA, catalog=CATALOG, created_at=0)
    loaded = load_policy(tmp_path / "bc").policy
    np.testing.assert_array_equal(
        loaded.probabilities(x, CATALOG), policy.probabilities(x, CATALOG)
    )


def test_bc_clones_a_deterministic_rule() -> None:
    """Logged by 'the largest feature among the allowed actions': the clone's top allowed
    action reproduces it."""
    data = bandit_data(2000)
    rule = np.where(data.allowed, data.features, -np.inf).argmax(axis=1)
    logged = dataclasses.replace(data, actions=rule.astype(np.int64))
    result = train_bc(logged, BCConfig(steps=600, batch_size=128, learning_rate=3e-3))
    probs = result.policy.probabilities(data.features, CATALOG)
    top = np.where(data.allowed, probs, -1.0).argmax(axis=1)
    assert np.mean(top == rule) > 0.9


def test_propensity_weighting_follows_the_deliberate_choices() -> None:
    """Half the rows are explored (propensity 0.1, a wrong action): weighted by propensity,
    the clone still follows the deliberate (propensity 0.9) action."""
    data = bandit_data(2000, masked=False)
    deliberate = data.features.argmax(axis=1)
    explored = np.arange(len(data)) % 2 == 1
    actions = np.where(explored, (deliberate + 1) % 3, deliberate).astype(np.int64)
    logged = dataclasses.replace(data, actions=actions, propensities=np.where(explored, 0.1, 0.9))
    config = BCConfig(steps=600, batch_size=128, learning_rate=3e-3, weighting="propensity")
    weighted = train_bc(logged, config).policy.scores(data.features, CATALOG).argmax(axis=1)
    assert np.mean(weighted == deliberate) > 0.9
