"""The investment-advisor world as arrays: many users, one recommendation each per day.

Each step is one trading day. Every user gets a strategy (an action described by its
asset shares and declared target volatility) and follows it with probability
``sigmoid(follow_bias + follow_engagement * (engagement - 0.5) - follow_misfit * misfit)``
where ``misfit = |target_vol - preferred_vol| / 0.05`` and ``preferred_vol = 0.03 + 0.2 *
risk_tolerance`` (annualized). The user's resulting portfolio (the strategy if followed,
else what they held) is held through the next ``window_days`` trading days; the
decision's outcome signals are that window's cumulative return (after transaction
costs on the turnover), its volatility (daily standard deviation times
``sqrt(window_days)``, so the ratio is a window Sharpe), its maximum drawdown, and the
user's engagement after the window: engagement rises with fit and falls with drawdowns
beyond what the user tolerates. Engagement changes reach the user's state only when the
window closes, so the state seen by later decisions never leaks the future.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rlops.core.actions import Action, ActionCatalog
from rlops.core.errors import ValidationError
from rlops.core.features import Feature, FeatureSchema
from rlops.sim.market_data import ASSETS, TRADING_DAYS_PER_YEAR, Market

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

STRATEGY_FEATURES: tuple[str, ...] = (*ASSETS, "target_vol")
ADVISOR_ACTIONS = ActionCatalog.of(
    [
        Action("capital_preservation", (0.10, 0.00, 0.40, 0.50, 0.04)),
        Action("conservative", (0.25, 0.05, 0.55, 0.15, 0.07)),
        Action("balanced", (0.45, 0.10, 0.40, 0.05, 0.10)),
        Action("growth", (0.60, 0.20, 0.20, 0.00, 0.14)),
        Action("aggressive", (0.40, 0.60, 0.00, 0.00, 0.22)),
    ],
    feature_names=STRATEGY_FEATURES,
)
ADVISOR_SIGNALS: tuple[str, ...] = (
    "portfolio_return",
    "volatility",
    "max_drawdown",
    "engagement_score",
)
TRAILING_DAYS = 20

ADVISOR_SCHEMA = FeatureSchema.of(
    [
        Feature(
            "risk_tolerance",
            low=0.0,
            high=1.0,
            default=0.5,
            description="0 = avoids all risk, 1 = seeks it",
        ),
        Feature("horizon_years", low=0.0, high=50.0, default=10.0),
        *(Feature(f"alloc_{a}", low=0.0, high=1.0, default=0.25) for a in ASSETS),
        Feature("engagement", low=0.0, high=1.0, default=0.5),
        Feature("logins_per_week", low=0.0, high=7.0, default=2.0),
        Feature(
            "drawdown_aversion",
            low=0.0,
            high=5.0,
            default=1.0,
            description="how hard a drawdown beyond tolerance cuts engagement",
        ),
        Feature(
            "market_return_20d",
            low=-1.0,
            high=10.0,
            default=0.0,
            description="equity cumulative return over the last 20 trading days",
        ),
        Feature(
            "market_vol_20d",
            low=0.0,
            high=10.0,
            default=0.15,
            description="equity volatility over the last 20 trading days, annualized",
        ),
    ]
)
COLUMN = {name: i for i, name in enumerate(ADVISOR_SCHEMA.columns)}


@dataclass(frozen=True, slots=True)
class AdvisorConfig:
    """Users and behaviour. ``transaction_cost`` is a fraction of turnover (one way)."""

    n_users: int = 1
    window_days: int = 30
    transaction_cost: float = 0.001
    follow_bias: float = 1.0
    follow_engagement: float = 2.0
    follow_misfit: float = 1.2
    engagement_fit_gain: float = 0.02
    engagement_drawdown_loss: float = 0.5

    def __post_init__(self) -> None:
        if self.n_users < 1 or self.window_days < 2 or self.transaction_cost < 0.0:
            raise ValidationError(
                "advisor config: n_users >= 1, window_days >= 2, transaction_cost >= 0",
                field="n_users",
            )


def preferred_vol(risk_tolerance: FloatArray) -> FloatArray:
    """Annualized volatility a user is comfortable with."""
    out: FloatArray = 0.03 + 0.2 * risk_tolerance
    return out


def tolerated_drawdown(risk_tolerance: FloatArray) -> FloatArray:
    """Drawdown (fraction) a user sits through without losing interest."""
    out: FloatArray = 0.05 + 0.25 * risk_tolerance
    return out


def window_stats(daily: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Cumulative return, window volatility and max drawdown of ``(days, n)`` returns."""
    growth = np.cumprod(1.0 + daily, axis=0)
    peak = np.maximum(np.maximum.accumulate(growth, axis=0), 1.0)
    drawdown = (1.0 - growth / peak).max(axis=0)
    volatility = daily.std(axis=0, ddof=1) * np.sqrt(daily.shape[0])
    return growth[-1] - 1.0, volatility, np.maximum(drawdown, 0.0)


@dataclass(frozen=True, slots=True)
class AdvisorStep:
    """One day's outcomes, one entry per user: signals by the advisor reward's names."""

    signals: dict[str, FloatArray]
    followed: npt.NDArray[np.bool_]
    day: int
    date: np.datetime64  # the decision's trading day
    window_end: np.datetime64  # the last trading day of its reward window


class AdvisorCore:
    """Users on a market. ``observe()`` -> features; ``step(actions)`` -> outcomes."""

    def __init__(
        self,
        config: AdvisorConfig,
        market: Market,
        first_day: int,
        last_day: int,
        rng: np.random.Generator,
        actions: ActionCatalog = ADVISOR_ACTIONS,
    ) -> None:
        if first_day < TRAILING_DAYS or last_day + config.window_days > len(market):
            raise ValidationError(
                "decision days need 20 days before and a window after", field="first_day"
            )
        self.config = config
        self.market = market
        self.day = first_day
        self.last_day = last_day
        self.rng = rng
        self.actions = actions
        n = config.n_users
        self.risk_tolerance = rng.random(n)
        self.horizon_years = rng.integers(1, 31, size=n).astype(np.float64)
        self.allocation = rng.dirichlet(np.ones(len(ASSETS)), size=n)
        self.engagement = rng.beta(2.0, 2.0, size=n)
        self.logins_per_week = rng.integers(1, 8, size=n).astype(np.float64)
        self.drawdown_aversion = rng.uniform(0.5, 2.0, size=n)
        # Engagement changes waiting for their window to close, by day modulo the window.
        self._pending = np.zeros((config.window_days, n))

    @property
    def n(self) -> int:
        return self.config.n_users

    @property
    def done(self) -> bool:
        return self.day >= self.last_day

    def observe(self) -> npt.NDArray[np.float32]:
        """``(n_users, ADVISOR_SCHEMA.dim)`` float32 features in schema column order."""
        out = np.zeros((self.n, ADVISOR_SCHEMA.dim), dtype=np.float32)
        trailing = self.market.returns[self.day - TRAILING_DAYS + 1 : self.day + 1, 0]
        out[:, COLUMN["risk_tolerance"]] = self.risk_tolerance
        out[:, COLUMN["horizon_years"]] = self.horizon_years
        for i, asset in enumerate(ASSETS):
            out[:, COLUMN[f"alloc_{asset}"]] = self.allocation[:, i]
        out[:, COLUMN["engagement"]] = self.engagement
        out[:, COLUMN["logins_per_week"]] = self.logins_per_week
        out[:, COLUMN["drawdown_aversion"]] = self.drawdown_aversion
        out[:, COLUMN["market_return_20d"]] = np.prod(1.0 + trailing) - 1.0
        out[:, COLUMN["market_vol_20d"]] = trailing.std(ddof=1) * np.sqrt(TRADING_DAYS_PER_YEAR)
        return out

    def step(self, actions: IntArray) -> AdvisorStep:
        """Recommend strategy ``actions[u]`` (catalog indices) to each user on this day."""
        if self.done:
            raise ValidationError("the run has no decision days left", field="day")
        c = self.config
        u_follow = self.rng.random(self.n)
        strategies = self.actions.feature_matrix().astype(np.float64)
        shares = strategies[:, : len(ASSETS)]
        shares = shares / shares.sum(axis=1, keepdims=True)
        target_vol = strategies[:, len(ASSETS)]

        misfit = np.abs(target_vol[actions] - preferred_vol(self.risk_tolerance)) / 0.05
        logit = c.follow_bias + c.follow_engagement * (self.engagement - 0.5)
        followed = u_follow < 1.0 / (1.0 + np.exp(-(logit - c.follow_misfit * misfit)))
        new_allocation = np.where(followed[:, None], shares[actions], self.allocation)
        turnover = 0.5 * np.abs(new_allocation - self.allocation).sum(axis=1)

        window = self.market.returns[self.day + 1 : self.day + 1 + c.window_days]
        daily = window @ new_allocation.T  # (window_days, n_users)
        cumulative, volatility, drawdown = window_stats(daily)
        portfolio_return = (1.0 + cumulative) * (1.0 - c.transaction_cost * turnover) - 1.0

        fit = np.exp(-misfit)
        excess = np.maximum(0.0, drawdown - tolerated_drawdown(self.risk_tolerance))
        change = c.engagement_fit_gain * (fit - 0.5) - (
            c.engagement_drawdown_loss * self.drawdown_aversion * excess
        )
        slot = self.day % c.window_days
        # The slot's changes were queued window_days ago: they land now, as this day's do later.
        self.engagement = np.clip(self.engagement + self._pending[slot], 0.0, 1.0)
        engagement_after = np.clip(self.engagement + change, 0.0, 1.0)
        self._pending[slot] = change

        # Holdings drift with the market for a day (the only day the next decision sees).
        grown = new_allocation * (1.0 + window[0])
        self.allocation = grown / grown.sum(axis=1, keepdims=True)
        day = self.day
        self.day += 1
        signals = {
            "portfolio_return": portfolio_return,
            "volatility": volatility,
            "max_drawdown": drawdown,
            "engagement_score": engagement_after,
        }
        dates = self.market.dates
        return AdvisorStep(signals, followed, day, dates[day], dates[day + c.window_days])
