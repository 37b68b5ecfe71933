"""Fine-tuning data: the old/new mix and the trust-region report over real contexts."""

from __future__ import annotations

import numpy as np
import pytest

from rlops.core.errors import ValidationError
from rlops.learn.data import LoggedData
from rlops.learn.finetune import mix, trust_region_report
from rlops.learn.simdata import pricing_logs
from rlops.policies import RulesPolicy
from rlops.sim.baselines import FixedAction, PricingRules, UniformRandom
from rlops.sim.pricing_core import PRICING_SCHEMA, PricingConfig

Logs = tuple[LoggedData, LoggedData]


@pytest.fixture(scope="module")
def logs() -> Logs:
    rules = PricingRules(PRICING_SCHEMA)
    old = pricing_logs(rules, PricingConfig(n_products=5), seed=1)
    new = pricing_logs(UniformRandom(), PricingConfig(n_products=3), seed=2)
    return old, new


def test_the_mix_holds_all_new_rows_and_the_asked_share_of_old(logs: Logs) -> None:
    old, new = logs
    mixed = mix(old, new, old_fraction=0.4, seed=0)
    n_old = len(mixed) - len(new)
    assert n_old / len(mixed) == pytest.approx(0.4, abs=1e-3)
    np.testing.assert_array_equal(mixed.features[n_old:], new.features)
    again = mix(old, new, old_fraction=0.4, seed=0)
    np.testing.assert_array_equal(again.features, mixed.features)
    assert mix(old, new, old_fraction=0.0, seed=0) is new


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 2.0])
def test_a_bad_fraction_is_refused(logs: Logs, fraction: float) -> None:
    old, new = logs
    with pytest.raises(ValidationError) as info:
        mix(old, new, old_fraction=fraction, seed=0)
    assert info.value.field == "old_fraction"


def test_the_report_holds_the_bound_that_the_raw_candidate_breaks(logs: Logs) -> None:
    _, new = logs
    candidate = RulesPolicy.of(FixedAction("price_change"))
    baseline = RulesPolicy.of(PricingRules(PRICING_SCHEMA))
    report = trust_region_report(candidate, baseline, new.features, new, bound=0.05, floor=0.02)
    assert report.within
    assert report.max_kl <= 0.05 + 1e-12
    assert report.unconstrained_mean_kl > 0.05
    assert 0.0 < report.mean_baseline_weight < 1.0
    assert report.to_json()["contexts"] == len(new)


def test_cql_fine_tuning_starts_from_the_parent(logs: Logs) -> None:
    from rlops.learn.cql import CQLConfig, train_cql

    old, new = logs
    parent = train_cql(old, CQLConfig(steps=100, batch_size=64, seed=0)).policy
    child = train_cql(
        new, CQLConfig(steps=1, batch_size=64, learning_rate=1e-9, seed=1), init=parent
    ).policy
    fresh = train_cql(new, CQLConfig(steps=1, batch_size=64, learning_rate=1e-9, seed=1)).policy
    x = new.features[:50]
    np.testing.assert_allclose(
        child.scores(x, new.catalog), parent.scores(x, new.catalog), atol=1e-5
    )
    assert np.abs(fresh.scores(x, new.catalog) - parent.scores(x, new.catalog)).max() > 1e-3
