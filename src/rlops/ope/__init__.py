"""Counterfactual (off-policy) evaluation: estimators, intervals, diagnostics, importers.

Estimators take plain arrays through :class:`BanditInputs`; :mod:`rlops.ope.data` turns
logged :class:`~rlops.core.records.Example` records into those arrays.
"""

from rlops.ope.dm import DirectMethod
from rlops.ope.dr import DoublyRobust
from rlops.ope.dr_os import DROS
from rlops.ope.estimate import BanditInputs, Estimate, Estimator, Terms
from rlops.ope.evaluate import estimate, estimate_all
from rlops.ope.intervals import Bernstein, Bootstrap, Normal
from rlops.ope.ips import IPS
from rlops.ope.sndr import SNDR
from rlops.ope.snips import SNIPS
from rlops.ope.switch_dr import SwitchDR

__all__ = [
    "DROS",
    "IPS",
    "SNDR",
    "SNIPS",
    "BanditInputs",
    "Bernstein",
    "Bootstrap",
    "DirectMethod",
    "DoublyRobust",
    "Estimate",
    "Estimator",
    "Normal",
    "SwitchDR",
    "Terms",
    "estimate",
    "estimate_all",
]
