"""Seeded pricing traffic and decision records for the monitoring tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rlops.core.features import FeatureValue
from rlops.core.records import Decision, Example
from rlops.sim.pricing_core import PRICING_ACTIONS, SEGMENTS

ACTIONS = PRICING_ACTIONS.ids


def pricing_rows(
    n: int, seed: int, *, price_shift: float = 0.0, segments: Sequence[str] = SEGMENTS
) -> list[dict[str, FeatureValue]]:
    """``n`` complete pricing feature rows; ``price_shift`` moves ``price_ratio``'s mean."""
    rng = np.random.default_rng(seed)
    hour = rng.uniform(0.0, 2.0 * np.pi, n)
    return [
        {
            "inventory_ratio": float(rng.uniform(0.0, 2.0)),
            "price_ratio": float(np.clip(rng.normal(1.0 + price_shift, 0.1), 0.0, 10.0)),
            "competitor_ratio": float(np.clip(rng.normal(1.0, 0.1), 0.0, 10.0)),
            "sales_velocity": float(rng.exponential(2.0)),
            "hour_sin": float(np.sin(hour[i])),
            "hour_cos": float(np.cos(hour[i])),
            "weekend": bool(rng.random() < 2.0 / 7.0),
            "window_left": float(rng.uniform()),
            "clearance_gap": float(rng.uniform()),
            "segment": str(segments[int(rng.integers(len(segments)))]),
            "recent_views": int(rng.integers(0, 51)),
        }
        for i in range(n)
    ]


@dataclass(frozen=True, slots=True)
class Decided:
    """The server's ``Decided`` as the monitor reads it."""

    decision: Decision
    fallback: bool = False


def decided(
    rows: Sequence[dict[str, FeatureValue]],
    actions: Sequence[str],
    *,
    arm: str = "control",
    explored: Sequence[bool] | None = None,
    fallback: bool = False,
    start: int = 0,
) -> list[Decided]:
    """One decision per row choosing ``actions[i]``; unit ids are all distinct."""
    flags = explored if explored is not None else [False] * len(rows)
    return [
        Decided(
            Decision(
                event_id=f"e{start + i:07d}",
                ts=1000.0,
                app="pricing",
                unit_id=f"user-{start + i:07d}",
                arm=arm,
                policy_version="v1",
                features=row,
                action_ids=ACTIONS,
                action_id=action,
                propensity=0.2,
                explored=flag,
            ),
            fallback,
        )
        for i, (row, action, flag) in enumerate(zip(rows, actions, flags, strict=True))
    ]


def example(
    i: int,
    reward: float,
    *,
    version: str = "v1",
    arm: str = "control",
    revision: int = 0,
    defaulted: bool = False,
    spec: str = "r1",
    ts: float = 1000.0,
    joined_at: float = 1100.0,
) -> Example:
    return Example(
        event_id=f"e{i:07d}",
        features={"segment": "regular"},
        action_ids=ACTIONS,
        action_id=ACTIONS[0],
        propensity=0.2,
        reward=reward,
        reward_spec=spec,
        late=revision > 0,
        app="pricing",
        ts=ts,
        unit_id=f"user-{i:07d}",
        arm=arm,
        policy_version=version,
        revision=revision,
        joined_at=joined_at,
        defaulted=defaulted,
    )
