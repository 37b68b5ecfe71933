"""What each application's demo shows: its business metrics and its customer segments.

The steps are the same for both applications; only what a reader of the report cares
about differs. Pricing: conversion and margin, by customer segment. Advisor:
risk-adjusted return, drawdown and engagement, by risk tolerance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from rlops.core.features import FeatureValue

Signals = Mapping[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class Series:
    """A per-decision figure over time: ``value(rewards, signals) -> (n,)``, averaged per day.

    ``weight`` (optional, same shape) makes the day's figure a weighted mean (margin per
    sale weights each visit by whether it sold)."""

    name: str
    label: str
    value: Callable[[np.ndarray, Signals], np.ndarray]
    weight: Callable[[Signals], np.ndarray] | None = None


@dataclass(frozen=True, slots=True)
class AppView:
    app: str
    timeline: tuple[Series, ...]
    uplift_metrics: tuple[tuple[str, str], ...]  # (battery metric, label)
    headline: str  # the battery metric the results table leads with
    segment_name: str
    segment: Callable[[Mapping[str, FeatureValue]], str]
    scenario: str  # the battery scenario that is the demo's own market


def _reward(rewards: np.ndarray, signals: Signals) -> np.ndarray:
    return rewards


def _risk_band(features: Mapping[str, FeatureValue]) -> str:
    risk = float(features.get("risk_tolerance", 0.5))
    return "cautious (<0.33)" if risk < 1 / 3 else "moderate" if risk < 2 / 3 else "bold (>0.67)"


PRICING = AppView(
    app="pricing",
    timeline=(
        Series("reward", "reward per visit", _reward),
        Series("conversion", "conversion rate", lambda r, s: s["converted"]),
        Series(
            "margin",
            "margin per sale",
            lambda r, s: s["margin_rate"],
            weight=lambda s: s["converted"],
        ),
    ),
    uplift_metrics=(
        ("conversion_rate", "conversion rate"),
        ("margin_rate", "margin per sale"),
        ("reward", "reward per visit"),
    ),
    headline="conversion_rate",
    segment_name="customer segment",
    segment=lambda f: str(f.get("segment", "?")),
    scenario="normal",
)

ADVISOR = AppView(
    app="advisor",
    timeline=(
        Series("reward", "reward per recommendation", _reward),
        Series(
            "risk_adjusted",
            "window return / volatility",
            lambda r, s: s["portfolio_return"] / (s["volatility"] + 1e-8),
        ),
        Series("drawdown", "max drawdown", lambda r, s: s["max_drawdown"]),
        Series("engagement", "engagement", lambda r, s: s["engagement_score"]),
    ),
    uplift_metrics=(
        ("sharpe", "risk-adjusted return"),
        ("max_drawdown", "max drawdown"),
        ("engagement", "engagement"),
        ("reward", "reward per recommendation"),
    ),
    headline="sharpe",
    segment_name="risk tolerance",
    segment=_risk_band,
    scenario="bull_2003_2007",
)


def view(app: str) -> AppView:
    return PRICING if app == "pricing" else ADVISOR
