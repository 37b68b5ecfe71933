"""The bandit family meets the policy contract; the learner refuses bad input unchanged.

Contract: ``(n, k)`` rows summing to 1 over the requested catalog for every rule and
form; each rule's probabilities by hand; the artifact round trip gives identical
outputs; the same seed gives the same model. Invalid input (wrong feature width, a NaN
reward, an unknown action, bad settings) raises ``ValidationError`` naming the field and
leaves the learner's state exactly as it was.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from rlops.core.actions import Action
from rlops.core.errors import ValidationError
from rlops.learn.bandits import BanditConfig, BanditLearner, standardizer, train_bandit
from rlops.learn.data import LoggedData
from rlops.learn.simdata import advisor_logs
from rlops.policies import BanditPolicy, load_policy, save_policy
from rlops.policies.bandit import Form
from rlops.policies.bandit_rules import RULES, Rule
from rlops.sim.advisor_core import ADVISOR_ACTIONS, ADVISOR_SCHEMA, AdvisorConfig
from rlops.sim.baselines import UniformRandom
from rlops.sim.market_data import MarketSpec

FORMS = ("disjoint", "shared")
NEW = Action("income_plus", (0.05, 0.0, 0.25, 0.70, 0.18))


@pytest.fixture(scope="module")
def logs() -> LoggedData:
    """A uniform-random month for 20 users: every action tried in every market state."""
    market = MarketSpec(start="2008-09-01", end="2008-10-31")
    return advisor_logs(UniformRandom(), AdvisorConfig(n_users=20), market, seed=0, max_days=30)


def _with_rule(policy: BanditPolicy, kind: Rule, **settings: Any) -> BanditPolicy:
    return dataclasses.replace(policy, rule=dataclasses.replace(policy.rule, kind=kind, **settings))


def _state(learner: BanditLearner) -> tuple[Any, ...]:
    return (learner.a_inv.copy(), learner.b.copy(), learner.events, learner.catalog.version)


def _same_state(before: tuple[Any, ...], learner: BanditLearner) -> bool:
    after = _state(learner)
    return bool(
        np.array_equal(before[0], after[0])
        and np.array_equal(before[1], after[1])
        and before[2:] == after[2:]
    )


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("rule", RULES)
def test_rows_sum_to_one_over_the_requested_catalog(
    logs: LoggedData, form: str, rule: Rule
) -> None:
    policy = train_bandit(logs, BanditConfig(rule=rule, form=form), seed=0)  # type: ignore[arg-type]
    for catalog in (ADVISOR_ACTIONS, ADVISOR_ACTIONS.add(NEW), ADVISOR_ACTIONS.retire("growth")):
        probs = policy.probabilities(logs.features[:50], catalog)
        assert probs.shape == (50, len(catalog))
        assert np.all(probs >= 0.0)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        assert policy.scores(logs.features[:50], catalog).shape == (50, len(catalog))
    one = policy.probabilities(logs.features[0], ADVISOR_ACTIONS)  # one vector is one row
    assert one.shape == (1, len(ADVISOR_ACTIONS))
    assert policy.dim == ADVISOR_SCHEMA.dim


def test_each_rule_by_hand(logs: LoggedData) -> None:
    policy = train_bandit(logs, BanditConfig(form="shared"), seed=0)
    x = logs.features[:40]
    mean, width = policy.estimates(x, ADVISOR_ACTIONS)
    k = len(ADVISOR_ACTIONS)
    rows = np.arange(len(x))
    best = np.argmax(mean, axis=1)

    greedy = _with_rule(policy, "greedy").probabilities(x, ADVISOR_ACTIONS)
    assert np.array_equal(np.argmax(greedy, axis=1), best) and np.all(greedy.max(axis=1) == 1.0)

    eps = _with_rule(policy, "epsilon_greedy", epsilon=0.2).probabilities(x, ADVISOR_ACTIONS)
    np.testing.assert_allclose(eps, 0.2 / k + 0.8 * greedy, rtol=0, atol=1e-15)

    ucb = _with_rule(policy, "linucb", alpha=2.0).probabilities(x, ADVISOR_ACTIONS)
    assert np.array_equal(np.argmax(ucb, axis=1), np.argmax(mean + 2.0 * width, axis=1))
    assert np.all(ucb.max(axis=1) == 1.0)

    scb = _with_rule(policy, "squarecb", squarecb_gamma=7.0).probabilities(x, ADVISOR_ACTIONS)
    gap = mean[rows, best][:, None] - mean
    expected = 1.0 / (k + 7.0 * gap)
    expected[rows, best] = 0.0
    expected[rows, best] = 1.0 - expected.sum(axis=1)
    np.testing.assert_allclose(scb, expected, rtol=0, atol=1e-15)
    uniform = _with_rule(policy, "squarecb", squarecb_gamma=0.0).probabilities(x, ADVISOR_ACTIONS)
    np.testing.assert_allclose(uniform, 1.0 / k, rtol=0, atol=1e-15)


@pytest.mark.parametrize("form", FORMS)
def test_thompson_is_a_fixed_function_of_the_context(logs: LoggedData, form: str) -> None:
    """Frequencies over M seeded draws: multiples of 1/M, the same for the same input,
    whatever else is in the batch; another seed gives other draws."""
    config = BanditConfig(rule="thompson", form=form, thompson_samples=50)  # type: ignore[arg-type]
    policy = train_bandit(logs, config, seed=11)
    x = logs.features[:30]
    probs = policy.probabilities(x, ADVISOR_ACTIONS)
    np.testing.assert_allclose(probs * 50, np.round(probs * 50), rtol=0, atol=1e-9)
    again = train_bandit(logs, config, seed=11).probabilities(x[::-1], ADVISOR_ACTIONS)[::-1]
    assert np.array_equal(probs, again)
    assert np.array_equal(policy.probabilities(x[7], ADVISOR_ACTIONS)[0], probs[7])
    other = train_bandit(logs, config, seed=12).probabilities(x, ADVISOR_ACTIONS)
    assert not np.array_equal(probs, other)
    # A draw scale of zero is the posterior mean: Thompson sampling turns greedy.
    flat = _with_rule(policy, "thompson", thompson_scale=0.0).probabilities(x, ADVISOR_ACTIONS)
    assert np.array_equal(flat, _with_rule(policy, "greedy").probabilities(x, ADVISOR_ACTIONS))


def test_disjoint_gives_an_unseen_action_the_prior(logs: LoggedData) -> None:
    policy = train_bandit(logs, BanditConfig(form="disjoint", ridge_lambda=2.0), seed=0)
    catalog = ADVISOR_ACTIONS.add(NEW)
    means, covs = policy.per_action(catalog)
    assert np.all(means[-1] == 0.0)
    np.testing.assert_array_equal(covs[-1], np.eye(ADVISOR_SCHEMA.dim + 1) / 2.0)
    mean, width = policy.estimates(logs.features[:10], catalog)
    z1 = policy.context(logs.features[:10])
    np.testing.assert_allclose(width[:, -1], np.linalg.norm(z1, axis=1) / np.sqrt(2.0))
    assert np.all(mean[:, -1] == 0.0)


def test_shared_scores_a_new_action_by_its_features(logs: LoggedData) -> None:
    """A new action with an existing action's features gets that action's scores."""
    policy = train_bandit(logs, BanditConfig(form="shared"), seed=0)
    twin = Action("balanced_v2", ADVISOR_ACTIONS.actions[2].features)
    catalog = ADVISOR_ACTIONS.add(twin)
    mean, width = policy.estimates(logs.features[:10], catalog)
    np.testing.assert_allclose(mean[:, -1], mean[:, 2], rtol=1e-12)
    np.testing.assert_allclose(width[:, -1], width[:, 2], rtol=1e-12)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("rule", RULES)
def test_the_artifact_round_trip_gives_identical_outputs(
    logs: LoggedData, tmp_path: Path, form: str, rule: Rule
) -> None:
    config = BanditConfig(rule=rule, form=form, action_map="quadratic")  # type: ignore[arg-type]
    policy = train_bandit(logs, config, seed=5)
    save_policy(
        tmp_path / "p",
        policy,
        name="advisor-bandit",
        schema=ADVISOR_SCHEMA,
        catalog=ADVISOR_ACTIONS,
        training_config=config.to_json(),
        created_at=0.0,
    )
    loaded = load_policy(tmp_path / "p")
    assert isinstance(loaded.policy, BanditPolicy)
    assert loaded.manifest.family == "bandit"
    for catalog in (ADVISOR_ACTIONS, ADVISOR_ACTIONS.add(NEW)):
        for method in ("probabilities", "scores"):
            expected = getattr(policy, method)(logs.features, catalog)
            assert np.array_equal(getattr(loaded.policy, method)(logs.features, catalog), expected)
    assert BanditConfig.from_json(loaded.manifest.training_config) == config


@pytest.mark.parametrize("form", FORMS)
def test_the_same_seed_gives_the_same_model(logs: LoggedData, tmp_path: Path, form: str) -> None:
    config = BanditConfig(rule="thompson", form=form)  # type: ignore[arg-type]
    versions = []
    for i in range(2):
        policy = train_bandit(logs, config, seed=3)
        manifest = save_policy(
            tmp_path / str(i),
            policy,
            name="b",
            schema=ADVISOR_SCHEMA,
            catalog=ADVISOR_ACTIONS,
            training_config=config.to_json(),
            created_at=float(i),
        )
        versions.append(manifest.version)
    assert versions[0] == versions[1]
    other = train_bandit(logs, config, seed=4)
    assert other.to_artifact()[0] != policy.to_artifact()[0]  # the seed is part of the model


def test_a_snapshot_is_frozen(logs: LoggedData) -> None:
    learner = BanditLearner.fit(logs, BanditConfig())
    policy = learner.policy()
    before = policy.probabilities(logs.features, ADVISOR_ACTIONS)
    learner.update(logs.features, logs.actions, logs.rewards + 5.0)
    assert np.array_equal(policy.probabilities(logs.features, ADVISOR_ACTIONS), before)


def test_importance_weights_are_inverse_propensities(logs: LoggedData) -> None:
    skewed = dataclasses.replace(logs, propensities=np.linspace(0.05, 1.0, len(logs)))
    config = BanditConfig(importance_weighting=True, max_importance_weight=10.0)
    weighted = BanditLearner.fit(skewed, config)
    by_hand = BanditLearner(
        config, ADVISOR_ACTIONS, ADVISOR_SCHEMA.dim, shift=weighted.shift, scale=weighted.scale
    )
    by_hand.update(
        skewed.features, skewed.actions, skewed.rewards, np.minimum(1.0 / skewed.propensities, 10.0)
    )
    np.testing.assert_allclose(weighted.theta, by_hand.theta, rtol=1e-12, atol=1e-12)


def test_a_config_round_trips_through_json() -> None:
    config = BanditConfig(rule="squarecb", form="shared", squarecb_gamma=20.0, gamma_forget=0.99)
    data = config.to_json()
    assert data["kind"] == "bandit"
    assert BanditConfig.from_json(data) == config


def test_cold_start_keeps_the_state(logs: LoggedData) -> None:
    """Adding an action is not a refit: existing models are untouched."""
    for form in FORMS:
        learner = BanditLearner.fit(logs, BanditConfig(form=form))  # type: ignore[arg-type]
        a_inv, b = learner.a_inv.copy(), learner.b.copy()
        learner.add_action(NEW)
        assert learner.catalog.ids[-1] == NEW.id
        assert np.array_equal(learner.a_inv[: len(a_inv)], a_inv)
        assert np.array_equal(learner.b[: len(b)], b)
        learner.update(logs.features[:3], [NEW.id] * 3, [1.0, 2.0, 3.0])
        assert learner.policy().probabilities(logs.features[:3], learner.catalog).shape == (3, 6)


def _good(n: int = 4) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "features": rng.normal(size=(n, ADVISOR_SCHEMA.dim)),
        "actions": np.arange(n) % len(ADVISOR_ACTIONS),
        "rewards": rng.normal(size=n),
    }


def _nan_features() -> npt.NDArray[np.float64]:
    x: npt.NDArray[np.float64] = _good()["features"]
    x[1, 2] = np.nan
    return x


INVALID_UPDATES = [
    ("features", {"features": np.zeros((4, ADVISOR_SCHEMA.dim + 1))}),
    ("features", {"features": _nan_features()}),
    ("features", {"features": [["a"] * ADVISOR_SCHEMA.dim] * 4}),
    ("rewards", {"rewards": np.array([0.0, np.nan, 1.0, 2.0])}),
    ("rewards", {"rewards": np.array([0.0, np.inf, 1.0, 2.0])}),
    ("rewards", {"rewards": np.zeros(3)}),
    ("actions", {"actions": np.array(["balanced", "growth", "crypto", "balanced"])}),
    ("actions", {"actions": np.array([0, 1, 5, 2])}),
    ("actions", {"actions": np.array([0, 1, -1, 2])}),
    ("actions", {"actions": np.array([0.0, 1.0, 2.0, 3.0])}),
    ("actions", {"actions": np.array([0, 1])}),
    ("weights", {"weights": np.array([1.0, -1.0, 1.0, 1.0])}),
    ("weights", {"weights": np.array([1.0, np.nan, 1.0, 1.0])}),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("field", "change"), INVALID_UPDATES)
def test_invalid_updates_raise_and_change_nothing(
    logs: LoggedData, form: str, field: str, change: dict[str, Any]
) -> None:
    learner = BanditLearner.fit(logs, BanditConfig(form=form))  # type: ignore[arg-type]
    before = _state(learner)
    with pytest.raises(ValidationError) as raised:
        learner.update(**{**_good(), **change})
    assert raised.value.field == field
    assert _same_state(before, learner)
    learner.update(**_good())  # and the learner still works


def test_invalid_new_actions_raise_and_change_nothing(logs: LoggedData) -> None:
    for form in FORMS:
        learner = BanditLearner.fit(logs, BanditConfig(form=form))  # type: ignore[arg-type]
        before = _state(learner)
        for bad in (Action("balanced", NEW.features), Action("short", (0.1, 0.2))):
            with pytest.raises(ValidationError) as raised:
                learner.add_action(bad)
            assert raised.value.field is not None
            assert _same_state(before, learner)


INVALID_CONFIGS = [
    ("rule", {"rule": "ucb"}),
    ("form", {"form": "mixed"}),
    ("alpha", {"alpha": -0.1}),
    ("alpha", {"alpha": float("nan")}),
    ("epsilon", {"epsilon": 1.5}),
    ("squarecb_gamma", {"squarecb_gamma": -1.0}),
    ("thompson_scale", {"thompson_scale": float("inf")}),
    ("thompson_samples", {"thompson_samples": 0}),
    ("thompson_samples", {"thompson_samples": 2.5}),
    ("gamma_forget", {"gamma_forget": 0.0}),
    ("gamma_forget", {"gamma_forget": 1.01}),
    ("ridge_lambda", {"ridge_lambda": 0.0}),
    ("action_map", {"action_map": "cubic"}),
    ("max_importance_weight", {"max_importance_weight": 0.5}),
]


@pytest.mark.parametrize(("field", "change"), INVALID_CONFIGS)
def test_invalid_configs_name_the_field(field: str, change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as raised:
        BanditConfig(**change)
    assert raised.value.field == field
    with pytest.raises(ValidationError) as from_json:
        BanditConfig.from_json({**BanditConfig().to_json(), **change})
    assert from_json.value.field == field


def test_other_invalid_construction() -> None:
    with pytest.raises(ValidationError, match="unknown bandit settings") as raised:
        BanditConfig.from_json({"kind": "bandit", "alpah": 1.0})
    assert raised.value.field == "config"
    with pytest.raises(ValidationError) as raised:
        BanditLearner(BanditConfig(), ADVISOR_ACTIONS, 0)
    assert raised.value.field == "dim"
    with pytest.raises(ValidationError) as raised:
        BanditLearner(BanditConfig(), ADVISOR_ACTIONS, 2, scale=np.array([1.0, 0.0]))
    assert raised.value.field == "scale"
    with pytest.raises(ValidationError) as raised:
        train_bandit(_empty_logs(), BanditConfig(), seed=-1)
    assert raised.value.field == "seed"
    with pytest.raises(ValidationError) as raised:
        standardizer(np.zeros((0, 3)))
    assert raised.value.field == "features"


def _empty_logs() -> LoggedData:
    k = len(ADVISOR_ACTIONS)
    return LoggedData(
        features=np.zeros((0, ADVISOR_SCHEMA.dim), dtype=np.float32),
        actions=np.zeros(0, dtype=np.int64),
        propensities=np.zeros(0),
        rewards=np.zeros(0),
        allowed=np.zeros((0, k), dtype=bool),
        unit_ids=np.zeros(0, dtype=np.str_),
        ts=np.zeros(0),
        schema=ADVISOR_SCHEMA,
        catalog=ADVISOR_ACTIONS,
    )


def test_empty_data_gives_the_prior() -> None:
    policy = train_bandit(_empty_logs(), BanditConfig(rule="linucb"), seed=0)
    x = np.zeros((3, ADVISOR_SCHEMA.dim), dtype=np.float32)
    mean, _ = policy.estimates(x, ADVISOR_ACTIONS)
    assert np.all(mean == 0.0)


@pytest.mark.parametrize("form", ["disjoint", "shared"])
def test_resuming_from_a_served_snapshot_equals_never_stopping(form: Form) -> None:
    """Fine-tuning and online updates continue from the artifact's A^-1 and theta."""
    data = advisor_logs(
        UniformRandom(),
        AdvisorConfig(n_users=20),
        MarketSpec(start="2013-01-02", end="2014-12-31"),
        seed=0,
        max_days=20,
    )
    first, second = (
        data.subset(data.ts < data.ts.min() + 10),
        data.subset(data.ts >= data.ts.min() + 10),
    )
    config = BanditConfig(form=form, action_map="quadratic" if form == "shared" else "identity")
    straight = BanditLearner.fit(first, config)
    straight.learn(second)
    resumed = BanditLearner.from_policy(
        BanditLearner.fit(first, config).policy(), config, data.catalog
    )
    resumed.learn(second)
    np.testing.assert_allclose(resumed.theta, straight.theta, atol=1e-8)
