"""The dynamic-pricing market as arrays: many products, one arriving customer each per step.

A step is one customer visit per product. The policy has just seen the observation (the
product's state plus the arriving customer's segment and recent views) and picks a price
adjustment; the customer then buys, abandons a cart or leaves; then the next customer of
that product arrives after an exponential gap whose rate follows hour-of-day and weekday
seasonality. Each product lives through clearance windows: when the next arrival falls
past the window's end, the step reports ``clearance_met`` (sold at least the target in
the window) and the product starts a fresh window (new lot, base price).

Every random draw has a fixed size per step and none depends on an action, so two
policies run on the same seed see the same customers, competitor prices and arrival
times (common random numbers): differences between them are the policies' alone.

Units: prices in currency, time in hours, rates in customers per hour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from rlops.core.actions import Action, ActionCatalog
from rlops.core.errors import ValidationError
from rlops.core.features import Feature, FeatureSchema

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

SEGMENTS: tuple[str, ...] = ("bargain", "regular", "premium")
PRICE_STEPS: tuple[float, ...] = (-0.10, -0.05, 0.0, 0.05, 0.10)
PRICING_ACTIONS = ActionCatalog.of(
    [Action(f"price{s:+.0%}".replace("%", "pct"), (s,)) for s in PRICE_STEPS],
    feature_names=("price_change",),
)
PRICING_SIGNALS: tuple[str, ...] = (
    "converted",
    "margin_rate",
    "abandoned_cart",
    "price_changes",
    "clearance_met",
)
MAX_VIEWS = 50

PRICING_SCHEMA = FeatureSchema.of(
    [
        Feature(
            "inventory_ratio",
            low=0.0,
            high=100.0,
            default=1.0,
            description="units in stock / the lot's initial units",
        ),
        Feature(
            "price_ratio",
            low=0.0,
            high=10.0,
            default=1.0,
            description="our current price / base price",
        ),
        Feature(
            "competitor_ratio",
            low=0.0,
            high=10.0,
            default=1.0,
            description="competitor's price / our base price",
        ),
        Feature(
            "sales_velocity",
            low=0.0,
            high=1e4,
            default=0.0,
            description="units sold per hour, exponentially weighted",
        ),
        Feature("hour_sin", low=-1.0, high=1.0, default=0.0),
        Feature("hour_cos", low=-1.0, high=1.0, default=1.0),
        Feature("weekend", "bool", default=False),
        Feature(
            "window_left",
            low=0.0,
            high=1.0,
            default=1.0,
            description="fraction of the clearance window still to run",
        ),
        Feature(
            "clearance_gap",
            low=0.0,
            high=1.0,
            default=1.0,
            description="fraction of the clearance target not yet sold",
        ),
        Feature("segment", "category", default="regular", categories=SEGMENTS),
        Feature(
            "recent_views",
            "int",
            low=0,
            high=MAX_VIEWS,
            default=0,
            description="the visitor's product views in the last day",
        ),
    ]
)
COLUMN = {name: i for i, name in enumerate(PRICING_SCHEMA.columns)}


@dataclass(frozen=True, slots=True)
class PricingConfig:
    """One market. Segment tuples are ordered as :data:`SEGMENTS`.

    Conversion logit: ``intent + intent_shift + views_effect * views
    - sensitivity * log(price / reference) - competitor_sensitivity * log(price / competitor)``
    with both sensitivities scaled by ``sensitivity_multiplier``. A visitor who does not buy
    abandons a cart with probability ``cart_propensity`` when the price is above the
    price they expected (their reference price).
    """

    n_products: int = 1
    base_price: float = 100.0
    unit_cost: float = 60.0
    initial_price_ratio: float = 1.0
    initial_inventory: int = 120
    restock_hours: float = 72.0
    restock_units: int = 30
    clearance_window_hours: float = 168.0
    clearance_target: int = 120
    floor_ratio: float = 0.7
    ceiling_ratio: float = 1.4
    arrivals_per_hour: float = 4.0
    demand_multiplier: float = 1.0
    segment_weights: tuple[float, float, float] = (0.4, 0.45, 0.15)
    segment_intent: tuple[float, float, float] = (-1.0, -1.2, -1.0)
    segment_sensitivity: tuple[float, float, float] = (8.0, 4.0, 2.0)
    segment_competitor_sensitivity: tuple[float, float, float] = (4.0, 2.0, 0.5)
    segment_cart_propensity: tuple[float, float, float] = (0.3, 0.4, 0.5)
    segment_views: tuple[float, float, float] = (3.0, 2.0, 1.5)
    intent_shift: float = 0.0
    sensitivity_multiplier: float = 1.0
    views_effect: float = 0.1
    reference_noise: float = 0.08
    competitor_mean_ratio: float = 1.0
    competitor_reversion_per_hour: float = 0.05
    competitor_vol_per_sqrt_hour: float = 0.01
    flash_sales_per_week: float = 0.5
    flash_discount: float = 0.3
    flash_hours: float = 12.0
    velocity_halflife_hours: float = 24.0
    start_weekday: int = 0

    def __post_init__(self) -> None:
        checks = {
            "n_products": self.n_products >= 1,
            "unit_cost": 0.0 <= self.unit_cost < self.base_price,
            "floor_ratio": 0.0 < self.floor_ratio <= self.initial_price_ratio,
            "ceiling_ratio": self.initial_price_ratio <= self.ceiling_ratio,
            "initial_inventory": self.initial_inventory >= 1,
            "clearance_target": self.clearance_target >= 1,
            "clearance_window_hours": self.clearance_window_hours > 0.0,
            "restock_hours": self.restock_hours > 0.0,
            "arrivals_per_hour": self.arrivals_per_hour * self.demand_multiplier > 0.0,
            "segment_weights": math.isclose(sum(self.segment_weights), 1.0),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValidationError(f"pricing config: invalid {name}", field=name)

    def with_products(self, n_products: int) -> PricingConfig:
        return replace(self, n_products=n_products)


def conversion_probability(
    price: FloatArray,
    reference: FloatArray,
    competitor: FloatArray,
    intent: FloatArray,
    sensitivity: FloatArray,
    competitor_sensitivity: FloatArray,
) -> FloatArray:
    """Logistic purchase probability; strictly decreasing in ``price`` (positive sensitivities)."""
    logit = (
        intent
        - sensitivity * np.log(price / reference)
        - competitor_sensitivity * np.log(price / competitor)
    )
    out: FloatArray = 1.0 / (1.0 + np.exp(-logit))
    return out


def arrival_rate(hours: FloatArray, config: PricingConfig) -> FloatArray:
    """Customers per hour at absolute simulated time ``hours``: an evening peak, busier weekends."""
    hour_of_day = np.mod(hours, 24.0)
    daily = 1.0 + 0.6 * np.cos(2.0 * np.pi * (hour_of_day - 20.0) / 24.0)
    weekday = np.mod(np.floor(hours / 24.0) + config.start_weekday, 7.0)
    weekly = np.where(weekday >= 5.0, 1.3, 1.0)
    out: FloatArray = config.arrivals_per_hour * config.demand_multiplier * daily * weekly
    return out


@dataclass(frozen=True, slots=True)
class PricingStep:
    """What one step produced, one entry per product (shape ``(n_products,)``).

    ``signals`` hold the outcome signals by the names the pricing reward reads;
    ``clearance_met`` is 0 except on a window's last step (``window_end``) where it is
    1 if the target was reached. ``hours`` is the visit's time; ``window_end_hours``
    the time the window closed (valid where ``window_end``).
    """

    signals: dict[str, FloatArray]
    window_end: BoolArray
    hours: FloatArray
    window_end_hours: FloatArray


class PricingCore:
    """The vectorized market. ``observe()`` -> features; ``step(actions)`` -> outcomes."""

    def __init__(self, config: PricingConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        n = config.n_products
        c = config
        self._intent = np.asarray(c.segment_intent) + c.intent_shift
        self._sens = np.asarray(c.segment_sensitivity) * c.sensitivity_multiplier
        self._comp_sens = np.asarray(c.segment_competitor_sensitivity) * c.sensitivity_multiplier
        self._cart = np.asarray(c.segment_cart_propensity)
        self._views = np.asarray(c.segment_views)
        self._cum_weights = np.cumsum(c.segment_weights)
        self._steps = np.asarray(PRICE_STEPS)
        self.floor = max(c.base_price * c.floor_ratio, c.unit_cost)
        self.ceiling = c.base_price * c.ceiling_ratio
        self.hours = np.zeros(n)
        self.window_start = np.zeros(n)
        self.price = np.full(n, c.base_price * c.initial_price_ratio)
        self.inventory = np.full(n, c.initial_inventory, dtype=np.int64)
        self.sold = np.zeros(n, dtype=np.int64)
        self.velocity = np.zeros(n)
        self.competitor_log = np.zeros(n)  # log deviation from the competitor's mean price
        self.flash_left = np.zeros(n)  # hours of flash sale remaining
        self.segment = np.zeros(n, dtype=np.int64)
        self.views = np.zeros(n, dtype=np.int64)
        self.reference = np.full(n, c.base_price)
        self._draw_customer()

    @property
    def n(self) -> int:
        return self.config.n_products

    def competitor_price(self) -> FloatArray:
        c = self.config
        flash = np.where(self.flash_left > 0.0, 1.0 - c.flash_discount, 1.0)
        out: FloatArray = (
            c.base_price * c.competitor_mean_ratio * np.exp(self.competitor_log) * flash
        )
        return out

    def observe(self) -> npt.NDArray[np.float32]:
        """``(n_products, PRICING_SCHEMA.dim)`` float32 features in schema column order."""
        c = self.config
        out = np.zeros((self.n, PRICING_SCHEMA.dim), dtype=np.float32)
        angle = 2.0 * np.pi * np.mod(self.hours, 24.0) / 24.0
        weekday = np.mod(np.floor(self.hours / 24.0) + c.start_weekday, 7.0)
        elapsed = self.hours - self.window_start
        out[:, COLUMN["inventory_ratio"]] = self.inventory / c.initial_inventory
        out[:, COLUMN["price_ratio"]] = self.price / c.base_price
        out[:, COLUMN["competitor_ratio"]] = self.competitor_price() / c.base_price
        out[:, COLUMN["sales_velocity"]] = self.velocity
        out[:, COLUMN["hour_sin"]] = np.sin(angle)
        out[:, COLUMN["hour_cos"]] = np.cos(angle)
        out[:, COLUMN["weekend"]] = weekday >= 5.0
        out[:, COLUMN["window_left"]] = np.clip(1.0 - elapsed / c.clearance_window_hours, 0, 1)
        out[:, COLUMN["clearance_gap"]] = np.clip(
            (c.clearance_target - self.sold) / c.clearance_target, 0.0, 1.0
        )
        out[np.arange(self.n), COLUMN[f"segment={SEGMENTS[0]}"] + self.segment] = 1.0
        out[:, COLUMN["recent_views"]] = self.views
        return out

    def step(self, actions: IntArray) -> PricingStep:
        """Apply one price adjustment per product (indices into :data:`PRICE_STEPS`)."""
        c = self.config
        n = self.n
        rng = self.rng
        u_buy = rng.random(n)
        u_cart = rng.random(n)
        gap = rng.standard_exponential(n)
        shock = rng.standard_normal(n)
        u_flash = rng.random(n)

        old_price = self.price
        self.price = np.clip(old_price * (1.0 + self._steps[actions]), self.floor, self.ceiling)
        changed = (self.price != old_price).astype(np.float64)

        s = self.segment
        p_buy = conversion_probability(
            self.price,
            self.reference,
            self.competitor_price(),
            self._intent[s] + c.views_effect * self.views,
            self._sens[s],
            self._comp_sens[s],
        )
        converted = (u_buy < p_buy) & (self.inventory > 0)
        abandoned = ~converted & (self.price > self.reference) & (u_cart < self._cart[s])
        self.inventory = self.inventory - converted
        self.sold = self.sold + converted
        visit_hours = self.hours.copy()
        signals = {
            "converted": converted.astype(np.float64),
            "margin_rate": (self.price - c.unit_cost) / self.price,
            "abandoned_cart": abandoned.astype(np.float64),
            "price_changes": changed,
            "clearance_met": np.zeros(n),
        }

        # The next visitor: the gap uses the rate at the current time (hours are short
        # next to the daily cycle, so this first-order thinning is accurate enough).
        dt = gap / arrival_rate(self.hours, c)
        decay = np.exp(-dt * math.log(2.0) / c.velocity_halflife_hours)
        self.velocity = self.velocity * decay + converted * (1.0 - decay) / np.maximum(dt, 1e-9)
        self._advance_competitor(dt, shock, u_flash)
        old_elapsed = self.hours - self.window_start
        self.hours = self.hours + dt
        elapsed = self.hours - self.window_start
        restocks = np.floor(np.minimum(elapsed, c.clearance_window_hours) / c.restock_hours)
        restocks -= np.floor(old_elapsed / c.restock_hours)
        self.inventory = self.inventory + restocks.astype(np.int64) * c.restock_units

        window_end = elapsed >= c.clearance_window_hours
        end_hours = self.window_start + c.clearance_window_hours
        signals["clearance_met"] = (window_end & (self.sold >= c.clearance_target)).astype(
            np.float64
        )
        if window_end.any():
            self._new_window(window_end)
        self._draw_customer()
        return PricingStep(signals, window_end, visit_hours, end_hours)

    def _advance_competitor(self, dt: FloatArray, shock: FloatArray, u_flash: FloatArray) -> None:
        """Ornstein-Uhlenbeck log price, plus flash sales arriving as a Poisson process."""
        c = self.config
        keep = np.exp(-c.competitor_reversion_per_hour * dt)
        self.competitor_log = self.competitor_log * keep + (
            c.competitor_vol_per_sqrt_hour * np.sqrt(dt) * shock
        )
        self.flash_left = np.maximum(self.flash_left - dt, 0.0)
        p_flash = 1.0 - np.exp(-c.flash_sales_per_week * dt / 168.0)
        starts = (u_flash < p_flash) & (self.flash_left <= 0.0)
        self.flash_left = np.where(starts, c.flash_hours, self.flash_left)

    def _new_window(self, ended: BoolArray) -> None:
        c = self.config
        self.window_start = np.where(
            ended, self.window_start + c.clearance_window_hours, self.window_start
        )
        self.inventory = np.where(ended, c.initial_inventory, self.inventory)
        self.sold = np.where(ended, 0, self.sold)
        self.price = np.where(ended, c.base_price * c.initial_price_ratio, self.price)

    def _draw_customer(self) -> None:
        n = self.n
        c = self.config
        self.segment = np.searchsorted(
            self._cum_weights, self.rng.random(n) * self._cum_weights[-1], side="right"
        ).astype(np.int64)
        self.segment = np.minimum(self.segment, len(SEGMENTS) - 1)
        self.views = np.minimum(self.rng.poisson(self._views[self.segment]), MAX_VIEWS)
        self.reference = c.base_price * np.exp(c.reference_noise * self.rng.standard_normal(n))
