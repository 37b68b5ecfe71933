"""Learners: bandit updates, offline RL (CQL, BC), online RL (Stable-Baselines3), fine-tuning.

Training code lives here and only here; serving imports :mod:`rlops.policies`, never this.
"""
