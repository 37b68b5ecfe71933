"""The policy registry: versioned artifacts, aliases, gates, and the serving-side handle.

Import what you need from its modules; this package imports nothing heavy, so the
serving path (:mod:`rlops.registry.handle`) stays numpy only.
"""

from rlops.registry.gate_record import BatteryCheck, GateRecord, KlCheck, OffPolicyCheck
from rlops.registry.handle import PolicyHandle, Served
from rlops.registry.records import (
    CANDIDATE,
    PRODUCTION,
    AliasEvent,
    AliasRecord,
    VersionRecord,
)
from rlops.registry.registry import Registry

__all__ = [
    "CANDIDATE",
    "PRODUCTION",
    "AliasEvent",
    "AliasRecord",
    "BatteryCheck",
    "GateRecord",
    "KlCheck",
    "OffPolicyCheck",
    "PolicyHandle",
    "Registry",
    "Served",
    "VersionRecord",
]
