"""The delayed-reward join as pure functions.

A decision waits for its outcomes until its reward window closes; then its outcomes are
aggregated signal by signal, scored by the reward function, and it becomes an
:class:`~rlops.core.Example`. A window that closes with no outcome yields the
application's default reward. An outcome arriving after the join produces a new revision
that includes it. Every function here is deterministic in its inputs: outcomes are
ordered by ``(ts, outcome_id)`` before aggregation, so arrival order never changes a sum.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from rlops.core.errors import ValidationError
from rlops.core.records import Decision, Example, Outcome
from rlops.rewards.spec import RewardFunction, RewardResult

Aggregation = Literal["sum", "earliest", "latest", "mean", "min", "max"]
AGGREGATIONS: tuple[str, ...] = ("sum", "earliest", "latest", "mean", "min", "max")

_REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "sum": lambda v: math.fsum(v),
    "earliest": lambda v: v[0],
    "latest": lambda v: v[-1],
    "mean": lambda v: math.fsum(v) / len(v),
    "min": min,
    "max": max,
}

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class JoinConfig:
    """How one application's decisions become examples.

    ``window_seconds``: how long a decision waits for outcomes (seconds to 30+ days).
    ``aggregation``: how several outcomes' values of a signal combine;
    ``signal_aggregation`` overrides it per signal. ``signal_windows`` optionally limits a
    signal to outcomes whose ``ts`` is within that many seconds of the decision (a sale
    counts within 1 hour while the clearance bonus waits 7 days); later values of that
    signal are kept in the log but not scored. ``default_reward`` scores a window that
    closed with no outcome.
    """

    app: str
    reward: RewardFunction
    window_seconds: float
    aggregation: Aggregation = "sum"
    signal_aggregation: Mapping[str, Aggregation] = field(default_factory=dict)
    signal_windows: Mapping[str, float] = field(default_factory=dict)
    default_reward: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.window_seconds) and self.window_seconds >= 0):
            raise ValidationError("window_seconds must be finite and >= 0", field="window_seconds")
        for name, agg in {"*": self.aggregation, **self.signal_aggregation}.items():
            if agg not in AGGREGATIONS:
                raise ValidationError(
                    f"aggregation for {name!r} must be one of {AGGREGATIONS}, got {agg!r}",
                    field="aggregation",
                )
        for name, seconds in self.signal_windows.items():
            if not (math.isfinite(seconds) and 0 <= seconds <= self.window_seconds):
                raise ValidationError(
                    f"signal window for {name!r} must be within [0, window_seconds]",
                    field=f"signal_windows.{name}",
                )
        if not math.isfinite(self.default_reward):
            raise ValidationError("default_reward must be finite", field="default_reward")


def window_closed(decision: Decision, now: float, config: JoinConfig) -> bool:
    return now >= decision.ts + config.window_seconds


def ordered(outcomes: Iterable[Outcome]) -> list[Outcome]:
    """Outcomes in event-time order, ties broken by id, duplicates (same id) dropped."""
    unique = {o.outcome_id: o for o in outcomes}
    return sorted(unique.values(), key=lambda o: (o.ts, o.outcome_id))


def aggregate_signals(
    decision_ts: float, outcomes: Sequence[Outcome], config: JoinConfig
) -> dict[str, float]:
    """Combine the signals of a decision's outcomes, signal by signal."""
    return _aggregate(decision_ts, ordered(outcomes), config)


def _aggregate(
    decision_ts: float, outcomes: Sequence[Outcome], config: JoinConfig
) -> dict[str, float]:
    """:func:`aggregate_signals` over outcomes already :func:`ordered`."""
    if len(outcomes) == 1:  # the common case: every reducer of one value is that value
        only = outcomes[0]
        windows = config.signal_windows
        return {
            name: float(value)
            for name, value in sorted(only.signals.items())
            if (limit := windows.get(name)) is None or not only.ts > decision_ts + limit
        }
    values: dict[str, list[float]] = {}
    # fsum raises on intermediate overflow; score() turns that into a defaulted example.
    for outcome in outcomes:
        for name, value in outcome.signals.items():
            limit = config.signal_windows.get(name)
            if limit is not None and outcome.ts > decision_ts + limit:
                continue
            values.setdefault(name, []).append(value)
    return {
        name: _REDUCERS[config.signal_aggregation.get(name, config.aggregation)](vals)
        for name, vals in sorted(values.items())
    }


def score(reward: RewardFunction, signals: Mapping[str, float]) -> RewardResult | None:
    """The reward, or None where the signals make it undefined (overflow, 0/0, inf).

    A join must never stall on one decision: such an example takes the default reward,
    is marked ``defaulted``, and keeps its signals so a fixed reward can re-score it.
    """
    try:
        result = reward(signals)
    except (ArithmeticError, ValueError):
        return None
    if not math.isfinite(result.total) or not all(map(math.isfinite, result.components.values())):
        return None
    return result


@dataclass(frozen=True, slots=True)
class Scored:
    """What a decision's outcomes add to its example: signals, reward and how it was got."""

    signals: Mapping[str, float]
    reward: float
    components: Mapping[str, float]
    defaulted: bool
    n_outcomes: int


def score_outcomes(decision_ts: float, outcomes: Sequence[Outcome], config: JoinConfig) -> Scored:
    """Aggregate and score a decision's outcomes (those of one event id, any order)."""
    if not outcomes:
        return Scored({}, config.default_reward, {}, True, 0)
    unique = ordered(outcomes)
    signals = _aggregate(decision_ts, unique, config)
    scored = score(config.reward, signals)
    if scored is None:
        return Scored(signals, config.default_reward, {}, True, len(unique))
    return Scored(signals, scored.total, scored.components, False, len(unique))


def join_decision(
    decision: Decision,
    outcomes: Sequence[Outcome],
    config: JoinConfig,
    *,
    joined_at: float,
    revision: int = 0,
    late: bool = False,
) -> Example:
    """The example for ``decision`` given all its outcomes received so far."""
    if decision.app != config.app:
        raise ValidationError(
            f"decision {decision.event_id} is for app {decision.app!r}, config for {config.app!r}",
            field="app",
        )
    for outcome in outcomes:
        if outcome.event_id != decision.event_id:
            raise ValidationError(
                f"outcome {outcome.outcome_id} belongs to {outcome.event_id}, "
                f"not {decision.event_id}",
                field="event_id",
            )
    scored = score_outcomes(decision.ts, outcomes, config)
    return Example(
        event_id=decision.event_id,
        features=decision.features,
        action_ids=decision.action_ids,
        action_id=decision.action_id,
        propensity=decision.propensity,
        reward=scored.reward,
        reward_spec=config.reward.hash,
        late=late,
        app=decision.app,
        ts=decision.ts,
        unit_id=decision.unit_id,
        arm=decision.arm,
        policy_version=decision.policy_version,
        revision=revision,
        joined_at=joined_at,
        n_outcomes=scored.n_outcomes,
        defaulted=scored.defaulted,
        signals=scored.signals,
        components=scored.components,
    )


def rescore(
    examples: Iterable[Example], reward: RewardFunction, *, default_reward: float = 0.0
) -> list[Example]:
    """The same examples scored by another reward version, tagged with its hash.

    Scores the stored aggregated signals. Examples whose window closed with no outcome
    keep their default reward; signals the new reward cannot score (see :func:`score`)
    get ``default_reward``. The input examples are not changed.
    """
    out = []
    for example in examples:
        if example.n_outcomes == 0:
            out.append(replace(example, reward_spec=reward.hash))
            continue
        result = score(reward, example.signals)
        if result is None:
            out.append(
                replace(
                    example,
                    reward=default_reward,
                    components={},
                    defaulted=True,
                    reward_spec=reward.hash,
                )
            )
        else:
            out.append(
                replace(
                    example,
                    reward=result.total,
                    components=result.components,
                    defaulted=False,
                    reward_spec=reward.hash,
                )
            )
    return out
