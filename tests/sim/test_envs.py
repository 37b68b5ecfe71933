"""Contracts of both Gymnasium environments: checker, registration, determinism."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlops  # noqa: F401  (registers the environments)
from rlops.sim import ADVISOR_ENV_ID, PRICING_ENV_ID
from rlops.sim.advisor_env import AdvisorEnv
from rlops.sim.market_data import MarketSpec
from rlops.sim.pricing_core import PricingConfig
from rlops.sim.pricing_env import PricingEnv

SHORT_PRICING = PricingConfig(clearance_window_hours=24.0, clearance_target=20)
SHORT_MARKET = MarketSpec(start="2013-01-02", end="2013-03-29")


def _envs() -> list[Any]:
    return [PricingEnv(SHORT_PRICING), AdvisorEnv(market=SHORT_MARKET)]


@pytest.mark.parametrize("env_id", [PRICING_ENV_ID, ADVISOR_ENV_ID])
def test_registered_envs_pass_the_checker(env_id: str) -> None:
    kwargs = {"config": SHORT_PRICING} if env_id == PRICING_ENV_ID else {"market": SHORT_MARKET}
    env = gym.make(env_id, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the checker's notes on render modes
        check_env(env.unwrapped)


def _trajectory(env: Any, seed: int, steps: int) -> list[tuple[object, ...]]:
    obs, _ = env.reset(seed=seed)
    actions = np.random.default_rng(seed)
    out: list[tuple[object, ...]] = [(obs.tobytes(),)]
    for _ in range(steps):
        action = int(actions.integers(env.action_space.n))
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((obs.tobytes(), reward, terminated, truncated, sorted(info["signals"].items())))
        if terminated or truncated:
            obs, _ = env.reset()
            out.append((obs.tobytes(),))
    return out


@pytest.mark.parametrize("index", [0, 1])
def test_same_seed_gives_bit_identical_trajectories(index: int) -> None:
    first = _trajectory(_envs()[index], seed=7, steps=200)
    second = _trajectory(_envs()[index], seed=7, steps=200)
    other = _trajectory(_envs()[index], seed=8, steps=200)
    assert first == second
    assert first != other


def test_advisor_delayed_rewards_sum_to_the_decisions_rewards() -> None:
    env = AdvisorEnv(market=SHORT_MARKET, delayed=True)
    env.reset(seed=3)
    paid, owed, steps = 0.0, 0.0, 0
    while True:
        _, reward, terminated, _, info = env.step(2)
        steps += 1
        if steps <= env.config.window_days:
            assert reward == 0.0  # nothing has closed yet
        paid += reward
        owed += info["decision_reward"]
        if terminated:
            break
    assert paid == pytest.approx(owed, rel=1e-12)
