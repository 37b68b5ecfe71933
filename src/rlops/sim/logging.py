"""Simulated traffic as the records production writes: decisions and outcomes.

A simulated run becomes ``Decision`` and ``Outcome`` records stamped with the
simulator's clock (pricing: seconds from ``start_ts`` by simulated hours; advisor: the
trading day's midnight UTC), and is appended to any log with ``append_decisions`` and
``append_outcomes``; the join worker then scores it with :func:`join_config`. Offline
datasets are so produced by the same code that production uses.

Pricing: one decision per customer visit; its outcome (sale, margin, abandoned cart,
price change) arrives ``outcome_delay_seconds`` later, and the visit that closes a
clearance window gets a second outcome carrying ``clearance_met`` at the window's end.
Advisor: one decision per user per trading day; its outcome arrives at the end of the
last trading day of its reward window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from rlops.core.actions import ActionCatalog
from rlops.core.features import FeatureSchema, FeatureValue
from rlops.core.records import Decision, Outcome
from rlops.rewards.join import SECONDS_PER_DAY, JoinConfig
from rlops.rewards.seeds import advisor_reward, pricing_reward
from rlops.sim.advisor_core import ADVISOR_ACTIONS, ADVISOR_SCHEMA
from rlops.sim.pricing_core import PRICING_ACTIONS, PRICING_SCHEMA
from rlops.sim.rollout import Transition

SECONDS_PER_HOUR = 3600.0
PRICING_SALE_SIGNALS: tuple[str, ...] = (
    "converted",
    "margin_rate",
    "abandoned_cart",
    "price_changes",
)


class RecordSink(Protocol):
    """Anything that takes decisions and outcomes: the decision log, a list, a stream."""

    def append_decisions(self, decisions: list[Decision]) -> object: ...

    def append_outcomes(self, outcomes: list[Outcome]) -> object: ...


def join_config(app: str) -> JoinConfig:
    """How the join worker scores simulated traffic of ``app``.

    Pricing waits a day (a visit's sale within minutes, a clearance outcome within the
    hours to its window's end); the advisor waits 50 calendar days, past 30 trading days.
    """
    if app == "pricing":
        return JoinConfig(app="pricing", reward=pricing_reward, window_seconds=SECONDS_PER_DAY)
    return JoinConfig(app="advisor", reward=advisor_reward, window_seconds=50 * SECONDS_PER_DAY)


def features_by_name(
    schema: FeatureSchema, row: npt.NDArray[np.float32]
) -> dict[str, FeatureValue]:
    """Invert ``schema.vector``: a feature row back to named values (one-hots to categories)."""
    out: dict[str, FeatureValue] = {}
    offset = 0
    for feature in schema.features:
        cells = row[offset : offset + feature.width]
        if feature.kind == "category":
            out[feature.name] = feature.categories[int(np.argmax(cells))]
        elif feature.kind == "bool":
            out[feature.name] = bool(cells[0] >= 0.5)
        elif feature.kind == "int":
            out[feature.name] = round(float(cells[0]))
        else:
            out[feature.name] = float(cells[0])
        offset += feature.width
    return out


def _decision(
    app: str,
    run_id: str,
    unit: str,
    step: int,
    ts: float,
    features: dict[str, FeatureValue],
    catalog: ActionCatalog,
    action: int,
    propensity: float,
    policy_version: str,
    arm: str,
) -> Decision:
    return Decision(
        event_id=f"{run_id}-{unit}-{step}",
        ts=ts,
        app=app,
        unit_id=unit,
        arm=arm,
        policy_version=policy_version,
        features=features,
        action_ids=catalog.ids,
        action_id=catalog.ids[action],
        propensity=propensity,
        explored=propensity < 1.0,
    )


def pricing_records(
    transitions: Iterable[Transition],
    *,
    run_id: str,
    start_ts: float,
    policy_version: str = "sim",
    arm: str = "sim",
    outcome_delay_seconds: float = 60.0,
    catalog: ActionCatalog = PRICING_ACTIONS,
) -> tuple[list[Decision], list[Outcome]]:
    decisions: list[Decision] = []
    outcomes: list[Outcome] = []
    for step, t in enumerate(transitions):
        result = t.pricing
        if result is None:
            raise ValueError("pricing_records needs transitions from a pricing run")
        for p in range(len(t.actions)):
            ts = start_ts + float(result.hours[p]) * SECONDS_PER_HOUR
            d = _decision(
                "pricing",
                run_id,
                f"product-{p}",
                step,
                ts,
                features_by_name(PRICING_SCHEMA, t.features[p]),
                catalog,
                int(t.actions[p]),
                float(t.propensities[p]),
                policy_version,
                arm,
            )
            decisions.append(d)
            signals = {name: float(result.signals[name][p]) for name in PRICING_SALE_SIGNALS}
            outcomes.append(
                Outcome(f"{d.event_id}-visit", d.event_id, ts + outcome_delay_seconds, signals)
            )
            if result.window_end[p]:
                end_ts = start_ts + float(result.window_end_hours[p]) * SECONDS_PER_HOUR
                outcomes.append(
                    Outcome(
                        f"{d.event_id}-clearance",
                        d.event_id,
                        end_ts,
                        {"clearance_met": float(result.signals["clearance_met"][p])},
                    )
                )
    return decisions, outcomes


def _midnight(date: np.datetime64) -> float:
    return float(date.astype("datetime64[s]").astype(np.int64))


def advisor_records(
    transitions: Iterable[Transition],
    *,
    run_id: str,
    policy_version: str = "sim",
    arm: str = "sim",
    catalog: ActionCatalog = ADVISOR_ACTIONS,
) -> tuple[list[Decision], list[Outcome]]:
    decisions: list[Decision] = []
    outcomes: list[Outcome] = []
    for step, t in enumerate(transitions):
        result = t.advisor
        if result is None:
            raise ValueError("advisor_records needs transitions from an advisor run")
        ts = _midnight(result.date)
        # The window's last day has closed by the end of that day.
        closed = _midnight(result.window_end) + SECONDS_PER_DAY - 1.0
        for u in range(len(t.actions)):
            d = _decision(
                "advisor",
                run_id,
                f"user-{u}",
                step,
                ts,
                features_by_name(ADVISOR_SCHEMA, t.features[u]),
                catalog,
                int(t.actions[u]),
                float(t.propensities[u]),
                policy_version,
                arm,
            )
            decisions.append(d)
            signals = {name: float(values[u]) for name, values in result.signals.items()}
            outcomes.append(Outcome(f"{d.event_id}-window", d.event_id, closed, signals))
    return decisions, outcomes


def write_records(
    sink: RecordSink,
    decisions: Sequence[Decision],
    outcomes: Sequence[Outcome],
    *,
    batch_size: int = 1000,
) -> None:
    """Append in batches, decisions first (an outcome's decision is logged before it)."""
    for i in range(0, len(decisions), batch_size):
        sink.append_decisions(list(decisions[i : i + batch_size]))
    for i in range(0, len(outcomes), batch_size):
        sink.append_outcomes(list(outcomes[i : i + batch_size]))
