"""Discrete CQL: the loss against hand-computed values, invalid input, determinism, export."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rlops.core.errors import ValidationError
from rlops.learn.cql import (
    CQLConfig,
    conservative_penalty,
    cql_loss,
    q_data,
    td_error_loss,
    td_target,
    train_cql,
)
from rlops.learn.data import LoggedData
from rlops.policies.artifact import load_policy, save_policy
from tests.learn.helpers import CATALOG, SCHEMA, bandit_data

Q = torch.tensor([[1.0, 2.0, 0.0], [0.5, 0.5, 0.5]])
ACTIONS = torch.tensor([1, 0])
Y = torch.tensor([1.5, 2.0])


def test_conservative_penalty_by_hand() -> None:
    # Row 1: log(e^1 + e^2 + e^0) - 2; row 2: 0.5 + log 3 - 0.5.
    row1 = math.log(math.e + math.e**2 + 1.0) - 2.0
    row2 = math.log(3.0)
    got = conservative_penalty(Q, ACTIONS, None)
    assert got.item() == pytest.approx((row1 + row2) / 2, abs=1e-6)


def test_conservative_penalty_soft_max_covers_allowed_actions_only() -> None:
    allowed = torch.tensor([[True, True, False], [True, True, True]])
    row1 = math.log(math.e + math.e**2) - 2.0
    got = conservative_penalty(Q, ACTIONS, allowed)
    assert got.item() == pytest.approx((row1 + math.log(3.0)) / 2, abs=1e-6)


def test_conservative_gradient_is_softmax_minus_data() -> None:
    """d/dQ(s,a) of [logsumexp Q(s,.) - Q(s,a_D)] = softmax(Q(s,.))_a - 1[a = a_D], / B."""
    q = Q.clone().requires_grad_(True)
    torch.autograd.backward(conservative_penalty(q, ACTIONS, None))
    expected = torch.softmax(Q, dim=1) - torch.nn.functional.one_hot(ACTIONS, 3)
    assert q.grad is not None
    torch.testing.assert_close(q.grad, expected / 2)


def test_td_error_losses_by_hand() -> None:
    q_sa = torch.tensor([2.0, 0.5])  # errors 0.5 and -1.5
    assert td_error_loss(q_sa, Y, "mse").item() == pytest.approx((0.25 + 2.25) / 2)
    # Huber: 0.5 e^2 inside |e| <= 1, |e| - 0.5 outside.
    assert td_error_loss(q_sa, Y, "huber").item() == pytest.approx((0.125 + 1.0) / 2)


def test_cql_loss_is_td_plus_alpha_conservative() -> None:
    loss = cql_loss(Q, ACTIONS, Y, None, alpha=0.5, kind="huber")
    assert loss.td.item() == pytest.approx(0.5625)
    assert loss.conservative.item() == pytest.approx(
        (math.log(math.e + math.e**2 + 1.0) - 2.0 + math.log(3.0)) / 2, abs=1e-6
    )
    assert loss.total.item() == pytest.approx(loss.td.item() + 0.5 * loss.conservative.item())


@pytest.mark.parametrize(
    ("double_q", "next_allowed", "expected_first"),
    [
        (True, None, 1.0 + 0.9 * 1.0),  # online argmax is action 1; target scores it 1.0
        (False, None, 1.0 + 0.9 * 4.0),  # the target's own max
        (True, [[True, False, True], [True, True, True]], 1.0 + 0.9 * 4.0),  # 1 unavailable
    ],
)
def test_td_target_by_hand(
    double_q: bool, next_allowed: list[list[bool]] | None, expected_first: float
) -> None:
    y = td_target(
        rewards=torch.tensor([1.0, 0.3]),
        dones=torch.tensor([0.0, 1.0]),
        q_next=torch.tensor([[1.0, 3.0, 2.0], [9.0, 9.0, 9.0]]),
        q_next_target=torch.tensor([[0.5, 1.0, 4.0], [9.0, 9.0, 9.0]]),
        next_allowed=None if next_allowed is None else torch.tensor(next_allowed),
        gamma=0.9,
        double_q=double_q,
    )
    torch.testing.assert_close(y, torch.tensor([expected_first, 0.3]))  # a terminal row: r


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hidden", (64, 0)),
        ("activation", "gelu"),
        ("steps", 0),
        ("batch_size", 0),
        ("learning_rate", 0.0),
        ("gamma", 1.0),
        ("gamma", -0.1),
        ("alpha", -1.0),
        ("alpha", math.inf),
        ("tau", 0.0),
        ("tau", 1.5),
        ("target_update_interval", 0),
        ("td_loss", "l1"),
    ],
)
def test_invalid_config_names_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        CQLConfig(**{field: value})
    assert caught.value.field == field


def test_config_json_round_trip() -> None:
    config = CQLConfig(hidden=(32, 16), gamma=0.0, alpha=0.3, td_loss="mse", seed=7)
    data = config.to_json()
    assert data["type"] == "discrete_cql"
    assert CQLConfig.from_json(data) == config


@pytest.mark.parametrize(
    ("data", "field"),
    [({"type": "bc"}, "type"), ({"type": "discrete_cql", "alpah": 1.0}, "alpah")],
)
def test_config_from_bad_json(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CQLConfig.from_json(data)
    assert caught.value.field == field


def test_invalid_data_names_the_field() -> None:
    data = bandit_data(20)
    with pytest.raises(ValidationError) as caught:
        train_cql(data.subset(np.zeros(20, dtype=bool)), CQLConfig(steps=1))
    assert caught.value.field == "data"
    features = data.features.copy()
    features[3, 1] = np.nan
    bad = LoggedData(
        features=features,
        actions=data.actions,
        propensities=data.propensities,
        rewards=data.rewards,
        allowed=data.allowed,
        unit_ids=data.unit_ids,
        ts=data.ts,
        schema=SCHEMA,
        catalog=CATALOG,
    )
    with pytest.raises(ValidationError) as caught:
        train_cql(bad, CQLConfig(steps=1))
    assert caught.value.field == "features"


@pytest.mark.parametrize("gamma", [0.0, 0.9])
def test_same_seed_same_weights(gamma: float) -> None:
    data = bandit_data(300)
    config = CQLConfig(steps=40, batch_size=32, gamma=gamma, seed=3)
    first, second = train_cql(data, config), train_cql(data, config)
    for a, b in zip(first.q_network.parameters(), second.q_network.parameters(), strict=True):
        assert torch.equal(a, b)
    other = train_cql(data, CQLConfig(steps=40, batch_size=32, gamma=gamma, seed=4))
    assert not torch.equal(next(first.q_network.parameters()), next(other.q_network.parameters()))


def test_training_leaves_the_global_torch_generator_alone() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    train_cql(bandit_data(100), CQLConfig(steps=5, batch_size=16))
    torch.testing.assert_close(torch.rand(3), expected)


def test_export_equals_the_torch_network_and_survives_the_artifact(tmp_path: Path) -> None:
    data = bandit_data(400)
    result = train_cql(data, CQLConfig(steps=60, batch_size=64, hidden=(16, 8), gamma=0.5))
    policy = result.policy
    assert policy.output == "q" and policy.head.kind == "greedy"
    x = data.features[:50]
    assert policy.shift is not None and policy.scale is not None
    z = torch.as_tensor(((x - policy.shift) / policy.scale).astype(np.float32))
    with torch.no_grad():
        expected = result.q_network(z).numpy()
    np.testing.assert_allclose(policy.scores(x, CATALOG), expected, atol=1e-5)

    save_policy(
        tmp_path / "cql",
        policy,
        name="cql-test",
        schema=SCHEMA,
        catalog=CATALOG,
        training_config=result.config.to_json(),
        created_at=0.0,
    )
    loaded = load_policy(tmp_path / "cql")
    assert loaded.manifest.training_config["type"] == "discrete_cql"
    np.testing.assert_array_equal(loaded.policy.scores(x, CATALOG), policy.scores(x, CATALOG))
    np.testing.assert_array_equal(
        loaded.policy.probabilities(x, CATALOG), policy.probabilities(x, CATALOG)
    )


def test_progress_reports_up_to_the_last_step() -> None:
    seen: list[tuple[int, int]] = []
    train_cql(
        bandit_data(100),
        CQLConfig(steps=250, batch_size=16),
        progress=lambda step, total: seen.append((step, total)),
    )
    steps = [s for s, _ in seen]
    assert steps == sorted(steps) and steps[-1] == 250 and {t for _, t in seen} == {250}
    assert 50 <= len(seen) <= 130


def test_one_step_cql_learns_the_best_allowed_action() -> None:
    """gamma = 0 (bandit data): Q(s, a) regresses the reward, so the greedy action is the
    row's largest feature among the allowed actions."""
    data = bandit_data(3000, masked=False)
    result = train_cql(
        data, CQLConfig(steps=800, batch_size=128, gamma=0.0, alpha=0.1, learning_rate=3e-3)
    )
    test = bandit_data(1000, seed=1, masked=False)
    chosen = result.policy.scores(test.features, CATALOG).argmax(axis=1)
    assert np.mean(chosen == test.features.argmax(axis=1)) > 0.9


def test_transitions_carry_each_states_allowed_actions() -> None:
    data = bandit_data(30)
    t = data.transitions()
    assert t.allowed is not None and t.next_allowed is not None
    order = np.lexsort((data.ts, data.unit_ids))
    np.testing.assert_array_equal(t.allowed, data.allowed[order])
    # Within a unit, s' is the unit's next row, and so are its allowed actions.
    following = ~t.dones
    np.testing.assert_array_equal(
        t.next_allowed[:-1][following[:-1]], t.allowed[1:][following[:-1]]
    )
    np.testing.assert_array_equal(t.next_obs[:-1][following[:-1]], t.obs[1:][following[:-1]])


def test_training_rows_carry_both_masks_into_the_target() -> None:
    """With gamma > 0 the batch holds ``next_allowed``, which :func:`td_target` masks with
    (checked by hand above); one-step rows hold no next state to mask."""
    data = bandit_data(40)
    shift, scale = np.zeros(3), np.ones(3)
    rows = q_data(data, CQLConfig(gamma=0.9), shift, scale)
    t = data.transitions()
    assert rows.allowed is not None and rows.next_allowed is not None
    assert t.allowed is not None and t.next_allowed is not None
    np.testing.assert_array_equal(rows.allowed.numpy(), t.allowed)
    np.testing.assert_array_equal(rows.next_allowed.numpy(), t.next_allowed)
    batch = rows.batch(torch.arange(len(data)))
    np.testing.assert_allclose(batch.next_obs.numpy(), t.next_obs)
    np.testing.assert_array_equal(batch.dones.numpy(), t.dones)
    one_step = q_data(data, CQLConfig(gamma=0.0), shift, scale)
    assert one_step.next_allowed is None
    assert one_step.batch(torch.arange(len(data))).dones.all()
    unmasked = q_data(bandit_data(40, masked=False), CQLConfig(gamma=0.9), shift, scale)
    assert unmasked.allowed is None and unmasked.next_allowed is None
