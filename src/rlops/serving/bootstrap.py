"""The baseline rules as a verified policy, and production on day one.

A server always holds the application's rule engine as an artifact: it answers when an
arm's policy cannot (the fallback), and on a fresh registry it becomes ``production``, so
rlops serves the moment it is installed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from rlops.core.actions import ActionCatalog
from rlops.core.errors import RlopsError
from rlops.core.features import FeatureSchema
from rlops.policies.artifact import LoadedPolicy, load_policy, save_policy
from rlops.policies.rules import RulesPolicy
from rlops.registry.records import PRODUCTION
from rlops.registry.registry import Registry


def baseline_policy(
    name: str, schema: FeatureSchema, catalog: ActionCatalog, engine: Any
) -> LoadedPolicy:
    """The rule engine as a verified artifact (the fallback, and production on day one).

    Saved and loaded through the artifact format, so its version is the same content hash
    the registry gives it, and the fallback is logged under a real version.
    """
    with tempfile.TemporaryDirectory(prefix="rlops-baseline-") as scratch:
        directory = Path(scratch) / "baseline"
        save_policy(
            directory,
            RulesPolicy.of(engine),
            name=name,
            schema=schema,
            catalog=catalog,
            training_config={"baseline": True},
            created_at=0.0,
        )
        return load_policy(directory)


def ensure_production(registry: Registry, baseline: LoadedPolicy, name: str) -> bool:
    """Register the baseline and make it ``production`` if the registry has none yet.

    This is how a fresh directory serves the rules the moment rlops is installed.
    Returns whether it did anything.
    """
    if registry.alias(name, PRODUCTION) is not None:
        return False
    with tempfile.TemporaryDirectory(prefix="rlops-baseline-") as scratch:
        directory = Path(scratch) / "baseline"
        save_policy(
            directory,
            baseline.policy,
            name=name,
            schema=baseline.manifest.feature_schema,
            catalog=baseline.manifest.action_catalog,
            training_config={"baseline": True},
            created_at=0.0,
        )
        record = registry.register(directory, actor="rlops-serve")
    try:
        registry.promote(
            name,
            record.version,
            actor="rlops-serve",
            reason="bootstrap: no production policy yet, serving the baseline rules",
            force=True,
            expected_revision=0,
        )
    except RlopsError:  # another worker bootstrapped first: fine, it is the same version
        if registry.alias(name, PRODUCTION) is None:
            raise
    return True
