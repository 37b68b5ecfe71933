"""Named scenarios: each a set of overrides on the default world or a historical window.

A scenario is data (a frozen dataclass holding the full config it runs), so a thresholds
file and a report can name it and two runs of it are the same run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from rlops.core.errors import NotFoundError
from rlops.sim.advisor_core import AdvisorConfig
from rlops.sim.market_data import MarketSpec
from rlops.sim.pricing_core import PricingConfig


@dataclass(frozen=True, slots=True)
class PricingScenario:
    name: str
    description: str
    config: PricingConfig = field(default_factory=PricingConfig)


@dataclass(frozen=True, slots=True)
class AdvisorScenario:
    name: str
    description: str
    market: MarketSpec
    config: AdvisorConfig = field(default_factory=AdvisorConfig)


Scenario = PricingScenario | AdvisorScenario
_PRICING = PricingConfig()
_ADVISOR = AdvisorConfig()

PRICING_SCENARIOS: tuple[PricingScenario, ...] = (
    PricingScenario("normal", "the default market"),
    PricingScenario(
        "competitor_flash_sale",
        "the competitor runs 24-hour 35%-off flash sales about five times a week",
        replace(_PRICING, flash_sales_per_week=5.0, flash_discount=0.35, flash_hours=24.0),
    ),
    PricingScenario(
        "demand_shock",
        "half the visitors, each less inclined to buy",
        replace(_PRICING, demand_multiplier=0.5, intent_shift=-0.3),
    ),
    PricingScenario(
        "inventory_surge",
        "three times the stock and restocks, with a clearance target to match",
        replace(_PRICING, initial_inventory=360, restock_units=90, clearance_target=330),
    ),
    PricingScenario(
        "holiday_peak",
        "2.5x the visitors, keener and less price sensitive",
        replace(_PRICING, demand_multiplier=2.5, intent_shift=0.3, sensitivity_multiplier=0.8),
    ),
)

ADVISOR_SCENARIOS: tuple[AdvisorScenario, ...] = (
    AdvisorScenario(
        "bull_2003_2007",
        "the 2003-2007 bull market",
        MarketSpec(start="2003-03-03", end="2007-10-31"),
    ),
    AdvisorScenario(
        "bull_2013_2017",
        "the 2013-2017 bull market",
        MarketSpec(start="2013-01-02", end="2017-12-29"),
    ),
    AdvisorScenario(
        "crisis_2008",
        "the financial crisis, September 2008 to March 2009",
        MarketSpec(start="2008-09-01", end="2009-03-31"),
    ),
    AdvisorScenario(
        "flash_crash_2010",
        "the weeks around the flash crash of 2010-05-06",
        MarketSpec(start="2010-04-06", end="2010-06-30"),
    ),
    AdvisorScenario(
        "low_liquidity",
        "2011-2012 with wide spreads: 2% of turnover lost on every rebalance",
        MarketSpec(start="2011-01-03", end="2012-06-29"),
        replace(_ADVISOR, transaction_cost=0.02),
    ),
    AdvisorScenario(
        "high_volatility",
        "a synthetic year under the fitted GARCH(1,1) at twice historical volatility",
        MarketSpec(mode="garch", n_days=250, vol_scale=2.0),
    ),
)

SCENARIOS: dict[str, tuple[Scenario, ...]] = {
    "pricing": PRICING_SCENARIOS,
    "advisor": ADVISOR_SCENARIOS,
}


def scenarios_for(app: str) -> tuple[Scenario, ...]:
    try:
        return SCENARIOS[app]
    except KeyError:
        raise NotFoundError(
            f"no scenarios for app {app!r}; known: {sorted(SCENARIOS)}", field="app"
        ) from None


def scenario(app: str, name: str) -> Scenario:
    for s in scenarios_for(app):
        if s.name == name:
            return s
    raise NotFoundError(f"no {app} scenario {name!r}", field="scenario")
