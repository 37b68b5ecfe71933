"""The advisor's market data against the shipped series, and its window arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from arch.data import frenchdata, nasdaq, sp500

from rlops.rewards import advisor_reward
from rlops.sim.advisor_core import ADVISOR_ACTIONS, AdvisorConfig, AdvisorCore, window_stats
from rlops.sim.market_data import ASSETS, MarketSpec, build_market, garch_paths, history


def test_history_spans_the_shipped_dates_and_returns() -> None:
    market = history()
    spx = sp500.load()["Adj Close"]
    ndx = nasdaq.load()["Adj Close"]
    assert str(market.dates[0]) == "1999-01-04"
    assert str(market.dates[-1]) == "2018-12-31"
    assert len(market) == len(spx) == 5031
    crash = market.index_of("2008-10-15")
    assert str(market.dates[crash]) == "2008-10-15"
    expected = spx.loc["2008-10-15"] / spx.loc["2008-10-14"] - 1.0
    assert market.returns[crash, ASSETS.index("equity")] == pytest.approx(expected, rel=1e-12)
    flash = market.index_of("2010-05-06")
    expected_tech = ndx.loc["2010-05-06"] / ndx.loc["2010-05-05"] - 1.0
    assert market.returns[flash, ASSETS.index("tech")] == pytest.approx(expected_tech, rel=1e-12)


def test_cash_compounds_to_the_monthly_risk_free_rate() -> None:
    market = history().window("2007-03-01", "2007-03-31")
    rf = frenchdata.load()["RF"]
    months = list(rf.index.asi8)  # type: ignore[attr-defined]  # a DatetimeIndex
    march = float(rf.iloc[months.index(200703)]) / 100.0
    growth = np.prod(1.0 + market.returns[:, ASSETS.index("cash")]) - 1.0
    assert growth == pytest.approx(march, rel=1e-9)


def test_replay_window_covers_the_requested_trading_days() -> None:
    spec = MarketSpec(start="2008-09-01", end="2009-03-31")
    market, first, last = build_market(spec, np.random.default_rng(0), lookback=20, window=30)
    assert str(market.dates[first]) == "2008-09-02"  # 09-01 was Labor Day
    assert str(market.dates[last - 1]) == "2009-03-31"


def test_window_stats_by_hand() -> None:
    daily = np.asarray([[0.10], [-0.20], [0.05]])
    cumulative, volatility, drawdown = window_stats(daily)
    assert cumulative[0] == pytest.approx(1.1 * 0.8 * 1.05 - 1.0)
    assert drawdown[0] == pytest.approx(0.2)
    assert volatility[0] == pytest.approx(np.std([0.1, -0.2, 0.05], ddof=1) * np.sqrt(3))


def test_decision_signals_are_the_followed_portfolio_over_the_window() -> None:
    spec = MarketSpec(start="2010-04-06", end="2010-06-30")
    market, first, last = build_market(spec, np.random.default_rng(0), lookback=20, window=30)
    config = AdvisorConfig(n_users=50, transaction_cost=0.0)
    core = AdvisorCore(config, market, first, last, np.random.default_rng(1))
    before = core.allocation.copy()
    step = core.step(np.full(50, ADVISOR_ACTIONS.index("balanced"), dtype=np.int64))
    shares = np.asarray(ADVISOR_ACTIONS.actions[2].features[:4])  # sums to 1 up to rounding
    held = np.where(step.followed[:, None], shares, before)
    daily = market.returns[first + 1 : first + 31] @ held.T
    expected = np.prod(1.0 + daily, axis=0) - 1.0
    assert step.signals["portfolio_return"] == pytest.approx(expected, rel=1e-6)
    total = advisor_reward({k: float(v[0]) for k, v in step.signals.items()}).total
    r, v, d, e = (
        step.signals[k][0]
        for k in ("portfolio_return", "volatility", "max_drawdown", "engagement_score")
    )
    assert total == pytest.approx(r / (v + 1e-8) - 10 * max(0.0, d - 0.15) + 0.1 * e)


def test_new_strategies_can_join_the_catalog() -> None:
    from rlops.core import Action

    catalog = ADVISOR_ACTIONS.add(Action("income", (0.2, 0.0, 0.7, 0.1, 0.06)))
    spec = MarketSpec(start="2013-01-02", end="2013-03-29")
    market, first, last = build_market(spec, np.random.default_rng(0), lookback=20, window=30)
    core = AdvisorCore(
        AdvisorConfig(n_users=10), market, first, last, np.random.default_rng(0), catalog
    )
    step = core.step(np.full(10, catalog.index("income"), dtype=np.int64))
    assert np.isfinite(step.signals["portfolio_return"]).all()


def test_garch_scale_raises_volatility() -> None:
    calm = garch_paths(2000, np.random.default_rng(0), vol_scale=1.0)[:, 0].std()
    wild = garch_paths(2000, np.random.default_rng(0), vol_scale=2.0)[:, 0].std()
    assert wild > 1.7 * calm
