"""The two seed rewards, exactly as the applications specify them."""

from __future__ import annotations

from rlops.rewards.spec import RewardFunction, RewardSpec, RewardTerm

DRAWDOWN_THRESHOLD = 0.15
DRAWDOWN_WEIGHT = 10.0
ENGAGEMENT_WEIGHT = 0.1
SHARPE_EPS = 1e-8


def advisor_spec(version: str = "1") -> RewardSpec:
    """Risk-adjusted return with a drawdown penalty and an engagement bonus.

    ``sharpe - max(0, max_drawdown - 0.15) * 10 + 0.1 * engagement`` where
    ``sharpe = portfolio_return / (volatility + 1e-8)`` over the 30-day reward window.
    """
    return RewardSpec(
        name="advisor",
        version=version,
        terms=(
            RewardTerm(
                "sharpe",
                "ratio",
                1.0,
                {"numerator": "portfolio_return", "denominator": "volatility", "eps": SHARPE_EPS},
            ),
            RewardTerm(
                "drawdown_penalty",
                "excess",
                -DRAWDOWN_WEIGHT,
                {"signal": "max_drawdown", "threshold": DRAWDOWN_THRESHOLD},
            ),
            RewardTerm("engagement", "signal", ENGAGEMENT_WEIGHT, {"signal": "engagement_score"}),
        ),
    )


def pricing_spec(
    version: str = "1",
    *,
    abandonment_penalty: float = 0.5,
    flicker_penalty: float = 0.02,
    clearance_bonus: float = 1.0,
) -> RewardSpec:
    """Conversion times margin, with penalties for abandoned carts and price flicker.

    ``+1 * margin_rate`` for a conversion (signals ``converted`` and ``margin_rate``),
    ``-0.5`` for a cart abandoned after seeing the price (``abandoned_cart``), a small
    penalty per price change (``price_changes``), and a bonus when the inventory-clearance
    target is met at the end of its window (``clearance_met``, emitted only then).
    """
    return RewardSpec(
        name="pricing",
        version=version,
        terms=(
            RewardTerm(
                "conversion_margin", "product", 1.0, {"left": "converted", "right": "margin_rate"}
            ),
            RewardTerm("abandonment", "signal", -abandonment_penalty, {"signal": "abandoned_cart"}),
            RewardTerm("flicker", "signal", -flicker_penalty, {"signal": "price_changes"}),
            RewardTerm("clearance_bonus", "signal", clearance_bonus, {"signal": "clearance_met"}),
        ),
    )


advisor_reward = RewardFunction(advisor_spec())
pricing_reward = RewardFunction(pricing_spec())
