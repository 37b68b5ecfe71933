"""Numpy inference for every policy family, and the artifact they are saved as.

Nothing here imports torch: the serving path loads an artifact and evaluates it in
numpy, whatever trained it.
"""

from rlops.policies.artifact import LoadedPolicy, Manifest, load_policy, read_manifest, save_policy
from rlops.policies.bandit import BanditPolicy
from rlops.policies.bandit_rules import DecisionRule
from rlops.policies.contract import Head, Policy, ScoringPolicy, greedy, kl_divergence, softmax
from rlops.policies.linear import BilinearPolicy, LinearPolicy
from rlops.policies.mlp import MLPPolicy
from rlops.policies.rules import RulesPolicy

__all__ = [
    "BanditPolicy",
    "BilinearPolicy",
    "DecisionRule",
    "Head",
    "LinearPolicy",
    "LoadedPolicy",
    "MLPPolicy",
    "Manifest",
    "Policy",
    "RulesPolicy",
    "ScoringPolicy",
    "greedy",
    "kl_divergence",
    "load_policy",
    "read_manifest",
    "save_policy",
    "softmax",
]
