"""Join settings of the two reference applications.

Pricing: a sale or an abandoned cart counts within 1 hour of the price being shown; the
clearance bonus is known only when its 7-day window ends, so decisions wait 7 days.
Advisor: the 30-day reward window of the seed; outcomes are window-to-date portfolio
figures, so the latest one wins, while engagement is averaged over the window.
"""

from __future__ import annotations

from rlops.rewards.join import SECONDS_PER_DAY, JoinConfig
from rlops.rewards.seeds import advisor_reward, pricing_reward

HOUR = 3_600.0


def pricing_join_config(*, window_days: float = 7.0, sale_window_hours: float = 1.0) -> JoinConfig:
    sale = sale_window_hours * HOUR
    return JoinConfig(
        app="pricing",
        reward=pricing_reward,
        window_seconds=window_days * SECONDS_PER_DAY,
        aggregation="sum",
        signal_aggregation={"margin_rate": "latest", "clearance_met": "max"},
        signal_windows={"converted": sale, "margin_rate": sale, "abandoned_cart": sale},
        default_reward=0.0,
    )


def advisor_join_config(*, window_days: float = 30.0) -> JoinConfig:
    return JoinConfig(
        app="advisor",
        reward=advisor_reward,
        window_seconds=window_days * SECONDS_PER_DAY,
        aggregation="latest",
        signal_aggregation={"engagement_score": "mean"},
        default_reward=0.0,
    )


def join_configs() -> dict[str, JoinConfig]:
    return {"pricing": pricing_join_config(), "advisor": advisor_join_config()}
