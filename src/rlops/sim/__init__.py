"""Simulators for both applications, their rule baselines and the scenario battery.

``import rlops`` registers ``rlops/Pricing-v0`` and ``rlops/Advisor-v0`` with Gymnasium
(see :func:`register_envs`); this package imports nothing heavy until used.
"""

from __future__ import annotations

PRICING_ENV_ID = "rlops/Pricing-v0"
ADVISOR_ENV_ID = "rlops/Advisor-v0"


def register_envs() -> None:
    """Register both environments with Gymnasium by entry-point string (idempotent)."""
    import gymnasium

    registered = gymnasium.registry
    if PRICING_ENV_ID not in registered:
        gymnasium.register(PRICING_ENV_ID, entry_point="rlops.sim.pricing_env:PricingEnv")
    if ADVISOR_ENV_ID not in registered:
        gymnasium.register(ADVISOR_ENV_ID, entry_point="rlops.sim.advisor_env:AdvisorEnv")


__all__ = ["ADVISOR_ENV_ID", "PRICING_ENV_ID", "register_envs"]
