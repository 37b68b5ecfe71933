"""Watching agents in production: rolling windows, detectors, alerts, delivery, guardrails.

The server feeds a :class:`DecisionMonitor` once per micro-batch
(``monitor.observe(decided, served_probs, baseline_probs)``); the joiner feeds an
:class:`OutcomeMonitor` with the examples it wrote. Their frozen snapshots go to the
detectors (:mod:`rlops.monitoring.detectors`), pure functions whose numbers alert rules
compare with thresholds. Drift and coverage compare with a :class:`Reference` built from
the policy's training data and saved beside it.

Nothing here keys anything by a unit or event id, and every window caps its keys.
"""

from rlops.monitoring.detectors import (
    Coverage,
    RewardDrop,
    RewardStats,
    TopShare,
    action_shares,
    feature_drift,
    join_lag,
    kl_divergence_rows,
    kl_rows,
    mode_collapse,
    psi,
    reward_drop,
    reward_summary,
    state_coverage,
)
from rlops.monitoring.monitor import ArmSummary, DecisionMonitor, MonitorConfig, MonitorSnapshot
from rlops.monitoring.outcomes import OutcomeConfig, OutcomeMonitor, OutcomeSnapshot
from rlops.monitoring.reference import Reference, ReferenceConfig
from rlops.monitoring.segments import SegmentConfig, default_segment
from rlops.monitoring.window import (
    Moments,
    RollingCounts,
    RollingHistogram,
    RollingSums,
    WindowConfig,
)

__all__ = [
    "ArmSummary",
    "Coverage",
    "DecisionMonitor",
    "Moments",
    "MonitorConfig",
    "MonitorSnapshot",
    "OutcomeConfig",
    "OutcomeMonitor",
    "OutcomeSnapshot",
    "Reference",
    "ReferenceConfig",
    "RewardDrop",
    "RewardStats",
    "RollingCounts",
    "RollingHistogram",
    "RollingSums",
    "SegmentConfig",
    "TopShare",
    "WindowConfig",
    "action_shares",
    "default_segment",
    "feature_drift",
    "join_lag",
    "kl_divergence_rows",
    "kl_rows",
    "mode_collapse",
    "psi",
    "reward_drop",
    "reward_summary",
    "state_coverage",
]
