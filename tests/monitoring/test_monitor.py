"""The monitors fed as the server and the joiner feed them, on a manual clock."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from rlops.core.clock import ManualClock
from rlops.core.errors import ValidationError
from rlops.monitoring.detectors import kl_rows, mode_collapse
from rlops.monitoring.monitor import DecisionMonitor, MonitorConfig
from rlops.monitoring.outcomes import OutcomeConfig, OutcomeMonitor
from rlops.monitoring.reference import Reference
from rlops.monitoring.segments import SegmentConfig, Segmenter, default_segment
from rlops.monitoring.window import WindowConfig
from rlops.sim.advisor_core import ADVISOR_SCHEMA
from rlops.sim.pricing_core import PRICING_SCHEMA
from rlops.store.log import JoinStepReport
from tests.monitoring.helpers import ACTIONS, decided, example, pricing_rows

PRICING = MonitorConfig(segment=default_segment("pricing"))
MINUTE = 60.0


def _stream(top_share: float, n: int, seed: int) -> list[str]:
    """``n`` actions, ``top_share`` of them ACTIONS[4] and the rest spread over the others."""
    top = round(top_share * n)
    rest = [ACTIONS[i % 4] for i in range(n - top)]
    actions = [ACTIONS[4]] * top + rest
    order = np.random.default_rng(seed).permutation(n)
    return [actions[i] for i in order]


@pytest.mark.parametrize(("share", "collapsed"), [(0.85, True), (0.40, False)])
def test_mode_collapse_in_one_segment(share: float, collapsed: bool) -> None:
    clock = ManualClock(0.0)
    monitor = DecisionMonitor(PRICING_SCHEMA, config=PRICING, clock=clock)
    uniform = [ACTIONS[i % 5] for i in range(400)]
    rows = {
        s: pricing_rows(400, seed=i, segments=(s,))
        for i, s in enumerate(PRICING_SCHEMA["segment"].categories)
    }
    for start in range(0, 400, 64):  # micro-batches over ten minutes
        stop = min(start + 64, 400)
        for segment, seg_rows in rows.items():
            chosen = (
                _stream(share, 400, seed=1)[start:stop]
                if segment == "premium"
                else uniform[start:stop]
            )
            monitor.observe(decided(seg_rows[start:stop], chosen, start=start))
        clock.advance(MINUTE)
    snapshot = monitor.snapshot()
    assert snapshot.decisions == 1200
    premium = snapshot.top_shares[("control", "premium")]
    assert (premium.action, premium.n) == (ACTIONS[4], 400)
    assert premium.share == pytest.approx(share)
    found = mode_collapse(snapshot.top_shares, threshold=0.8, min_count=100)
    assert set(found) == ({("control", "premium")} if collapsed else set())
    assert snapshot.action_counts[("control", "premium", ACTIONS[4])] == round(400 * share)


def test_arm_shares_and_kl_to_the_baseline() -> None:
    rng = np.random.default_rng(5)
    monitor = DecisionMonitor(PRICING_SCHEMA, config=PRICING, clock=ManualClock())
    rows = pricing_rows(64, seed=2)
    explored = [i % 4 == 0 for i in range(64)]
    served = rng.dirichlet(np.ones(5), size=64)
    baseline = rng.dirichlet(np.ones(5), size=64)
    monitor.observe(decided(rows, [ACTIONS[0]] * 64, explored=explored), served, baseline)
    monitor.observe(decided(rows[:16], [ACTIONS[1]] * 16, arm="canary", fallback=True))
    snapshot = monitor.snapshot()
    control, canary = snapshot.arms["control"], snapshot.arms["canary"]
    assert (control.decisions, control.explored_share, control.fallback_share) == (64, 0.25, 0.0)
    assert (canary.decisions, canary.fallback_share, canary.kl) == (16, 1.0, None)
    expected = kl_rows(served, baseline, eps=PRICING.kl_eps)
    assert control.kl is not None
    assert control.kl.n == 64
    assert control.kl.mean == pytest.approx(expected.mean(), rel=1e-12)
    assert control.kl.std == pytest.approx(expected.std(ddof=1), rel=1e-6)


def test_the_window_forgets_old_batches() -> None:
    clock = ManualClock(0.0)
    config = MonitorConfig(window=WindowConfig(MINUTE, 15), segment=default_segment("pricing"))
    monitor = DecisionMonitor(PRICING_SCHEMA, config=config, clock=clock)
    monitor.observe(decided(pricing_rows(10, seed=1), [ACTIONS[0]] * 10))
    clock.set(10 * MINUTE)
    monitor.observe(decided(pricing_rows(5, seed=2), [ACTIONS[1]] * 5))
    assert monitor.snapshot().decisions == 15
    clock.set(15 * MINUTE)
    snapshot = monitor.snapshot()
    assert snapshot.decisions == 5
    assert {k[2] for k in snapshot.action_counts} == {ACTIONS[1]}


def test_drift_and_coverage_against_the_reference() -> None:
    training = pricing_rows(20_000, seed=20)
    # the logged prices went down when ours was above 1: the grid crosses price_ratio
    logged = [ACTIONS[0] if float(r["price_ratio"]) > 1.0 else ACTIONS[4] for r in training]
    reference = Reference.from_rows(training, PRICING_SCHEMA, source="s1", actions=logged)
    assert "price_ratio" in reference.grid.names
    clock = ManualClock(0.0)
    calm = DecisionMonitor(PRICING_SCHEMA, reference, PRICING, clock)
    shifted = DecisionMonitor(PRICING_SCHEMA, reference, PRICING, clock)
    same, moved = pricing_rows(3000, seed=21), pricing_rows(3000, seed=22, price_shift=0.5)
    for start in range(0, 3000, 64):
        calm.observe(
            decided(same[start : start + 64], [ACTIONS[0]] * len(same[start : start + 64]))
        )
        shifted.observe(
            decided(moved[start : start + 64], [ACTIONS[0]] * len(moved[start : start + 64]))
        )
    quiet, loud = calm.snapshot(), shifted.snapshot()
    assert quiet.reference == "s1"
    assert set(quiet.psi) == set(PRICING_SCHEMA.names)
    assert max(quiet.psi.values()) < 0.02
    assert loud.psi["price_ratio"] > 1.0
    assert quiet.coverage is not None and loud.coverage is not None
    assert quiet.coverage.rows == 3000
    assert quiet.coverage.unseen_share < 0.01
    # prices five standard deviations up are mostly above the reference's maximum
    assert loud.coverage.unseen_share > 0.5
    # a reference swap starts drift afresh
    shifted.set_reference(None)
    assert shifted.snapshot().psi == {} and shifted.snapshot().coverage is None


def test_unit_ids_never_become_keys() -> None:
    config = MonitorConfig(
        window=WindowConfig(MINUTE, 15, max_keys=64), segment=default_segment("pricing")
    )
    monitor = DecisionMonitor(PRICING_SCHEMA, config=config, clock=ManualClock())
    rows = pricing_rows(1000, seed=3)
    for start in range(0, 100_000, 1000):  # 100,000 decisions, each for a new unit
        monitor.observe(decided(rows, [ACTIONS[i % 5] for i in range(1000)], start=start))
    snapshot = monitor.snapshot()
    assert snapshot.decisions == 100_000
    assert monitor._sums.n_keys == 15  # 1 arm x 3 segments x 5 actions
    assert snapshot.other_decisions == 0


def test_snapshot_to_json_is_plain() -> None:
    monitor = DecisionMonitor(PRICING_SCHEMA, config=PRICING, clock=ManualClock())
    monitor.observe(decided(pricing_rows(3, seed=1), ACTIONS[:3]))
    data = monitor.snapshot().to_json()
    assert data["decisions"] == 3
    assert {"arm", "segment", "action", "count"} == set(data["action_counts"][0])
    assert data["arms"]["control"]["kl"] is None


def test_advisor_segments_by_risk_tolerance_thirds() -> None:
    segmenter = Segmenter(default_segment("advisor"), ADVISOR_SCHEMA)
    assert segmenter.labels == ("<0.333333", "[0.333333,0.666667)", ">=0.666667", "other")
    rows: list[dict[str, object]] = [
        {"risk_tolerance": 0.1},
        {"risk_tolerance": 0.5},
        {"risk_tolerance": 0.9},
        {"risk_tolerance": "x"},
        {},
    ]
    assert segmenter.label(rows) == [
        "<0.333333",
        "[0.333333,0.666667)",
        ">=0.666667",
        "other",
        "other",
    ]
    pricing = Segmenter(default_segment("pricing"), PRICING_SCHEMA)
    assert pricing.label([{"segment": "premium"}, {"segment": "vip"}]) == ["premium", "other"]
    weekend = Segmenter(SegmentConfig("weekend"), PRICING_SCHEMA)
    assert weekend.label([{"weekend": True}, {}]) == ["true", "other"]
    assert Segmenter(SegmentConfig(), PRICING_SCHEMA).label([{}]) == ["all"]


def test_outcome_monitor_rewards_statuses_and_lag() -> None:
    clock = ManualClock(2000.0)
    config = OutcomeConfig(reward_window_seconds=60.0, window=WindowConfig(MINUTE, 15))
    monitor = OutcomeMonitor(config, clock)
    examples = [example(i, float(r)) for i, r in enumerate([1.0, 2.0, 3.0, 6.0])]
    examples += [
        example(10, 0.0, defaulted=True, joined_at=1200.0),
        example(11, 5.0, version="v2", arm="canary"),
        example(1, 100.0, revision=1),  # a late revision does not move the mean
    ]
    monitor.observe(examples)
    monitor.observe_join_step(JoinStepReport(quarantined=2, late_outcomes=1))
    assert monitor.observe_pending(np.array([1500.0, 1800.0])) == 2000.0 - 1500.0 - 60.0
    snapshot = monitor.snapshot()
    v1 = snapshot.rewards[("v1", "control")]
    values = [1.0, 2.0, 3.0, 6.0, 0.0]
    assert v1.n == 5
    assert v1.mean == pytest.approx(np.mean(values))
    assert v1.std == pytest.approx(np.std(values, ddof=1))
    assert snapshot.rewards[("v2", "canary")].n == 1
    assert snapshot.statuses == {
        "joined": 5,
        "defaulted": 1,
        "late": 1,
        "late_outcomes": 1,
        "quarantined": 2,
    }
    delays = [1100.0 - 1000.0 - 60.0] * 5 + [1200.0 - 1000.0 - 60.0]
    assert snapshot.join_delay.n == 6
    assert snapshot.join_delay.mean == pytest.approx(np.mean(delays))
    assert snapshot.join_lag == 440.0
    clock.advance(20 * MINUTE)
    later = monitor.snapshot()
    assert later.rewards == {} and later.statuses["joined"] == 0
    assert later.to_json()["join_lag"] == 440.0


def test_outcome_monitor_averages_one_reward_version() -> None:
    config = OutcomeConfig(reward_window_seconds=0.0, reward_spec="r2")
    monitor = OutcomeMonitor(config, ManualClock(0.0))
    monitor.observe([example(0, 1.0, spec="r1"), example(1, 3.0, spec="r2")])
    snapshot = monitor.snapshot()
    assert snapshot.rewards[("v1", "control")].mean == 3.0
    assert snapshot.statuses["joined"] == 2


INVALID: list[tuple[Callable[[], object], str]] = [
    (lambda: MonitorConfig(kl_eps=0.0), "kl_eps"),
    (lambda: MonitorConfig(psi_eps=-1.0), "psi_eps"),
    (lambda: MonitorConfig(psi_min_count=0), "psi_min_count"),
    (lambda: OutcomeConfig(reward_window_seconds=-1.0), "reward_window_seconds"),
    (lambda: OutcomeConfig(reward_window_seconds=1.0, z=0.0), "z"),
    (lambda: SegmentConfig(None, edges=(1.0,)), "segment.edges"),
    (lambda: SegmentConfig("x", edges=(2.0, 1.0)), "segment.edges"),
    (lambda: Segmenter(SegmentConfig("nope"), PRICING_SCHEMA), "features.nope"),
    (lambda: Segmenter(SegmentConfig("price_ratio"), PRICING_SCHEMA), "segment.edges"),
    (lambda: Segmenter(SegmentConfig("segment", edges=(1.0,)), PRICING_SCHEMA), "segment.edges"),
    (
        lambda: DecisionMonitor(PRICING_SCHEMA, config=PRICING).observe(
            decided(pricing_rows(2, seed=0), ACTIONS[:2]), served_probs=np.full((2, 5), 0.2)
        ),
        "baseline_probs",
    ),
    (
        lambda: DecisionMonitor(PRICING_SCHEMA, config=PRICING).observe(
            decided(pricing_rows(2, seed=0), ACTIONS[:2]),
            np.full((3, 5), 0.2),
            np.full((3, 5), 0.2),
        ),
        "served_probs",
    ),
    (
        lambda: DecisionMonitor(
            ADVISOR_SCHEMA, Reference.from_rows(pricing_rows(20, seed=0), PRICING_SCHEMA)
        ),
        "reference",
    ),
    (lambda: OutcomeMonitor(OutcomeConfig(1.0)).observe_pending([1.0], now=float("nan")), "now"),
]


@pytest.mark.parametrize(("build", "field"), INVALID)
def test_invalid_inputs_name_the_field(build: Callable[[], object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        build()
    assert caught.value.field == field
