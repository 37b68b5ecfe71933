"""MLflow as an optional mirror of the registry (``pip install rlops[mlflow]``).

Teams that already browse experiments in MLflow see every rlops training run there: its
training config as params, its evaluation numbers as metrics, the artifact directory as
run artifacts. Each registered version becomes an MLflow model version of the same name,
tagged with the rlops content version and manifest sha256, and alias moves are mirrored
as MLflow model aliases (hook :meth:`MlflowMirror.on_move` into the registry).

The rlops index stays the source of truth for serving: MLflow's aliases carry no revision,
so they cannot arbitrate concurrent promotions, and an artifact fetched back from MLflow
is verified by :func:`~rlops.policies.artifact.load_policy` like any other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlops.core.errors import IntegrityError, NotFoundError, ValidationError
from rlops.policies.artifact import LoadedPolicy, Manifest, load_policy
from rlops.registry.records import AliasRecord, VersionRecord

ARTIFACT_PATH = "policy"
VERSION_TAG = "rlops.version"
SHA_TAG = "rlops.manifest_sha256"


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, Mapping):
        for key in sorted(value):
            _flatten(value[key], f"{prefix}.{key}" if prefix else str(key), out)
    elif prefix:
        out[prefix] = value
    return out


def run_params(manifest: Manifest) -> dict[str, str]:
    """The training config flattened to MLflow params (strings), plus the provenance."""
    params = {k: str(v) for k, v in _flatten(manifest.training_config, "", {}).items()}
    params["rlops.family"] = manifest.family
    params["rlops.reward_spec"] = str(manifest.reward_spec_hash)
    params["rlops.snapshot"] = str(manifest.snapshot_id)
    params["rlops.parent_version"] = str(manifest.parent_version)
    return params


def run_metrics(manifest: Manifest) -> dict[str, float]:
    """Every finite number in the manifest's evaluation results, by its flattened path."""
    out = {}
    for key, value in _flatten(manifest.evaluation, "", {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


class MlflowMirror:
    """Runs, model versions and aliases in an MLflow tracking server or store."""

    def __init__(
        self,
        tracking_uri: str,
        *,
        registry_uri: str | None = None,
        experiment: str = "rlops",
        artifact_location: str | None = None,
    ) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:  # pragma: no cover - exercised only without the extra
            raise ValidationError(
                "the MLflow backend needs `pip install rlops[mlflow]`", field="mlflow"
            ) from None
        self.client: Any = MlflowClient(
            tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri
        )
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id: str = (
            found.experiment_id
            if found is not None
            else self.client.create_experiment(experiment, artifact_location=artifact_location)
        )

    def log_training_run(
        self, artifact: Path, *, tags: Mapping[str, str] | None = None
    ) -> tuple[str, Manifest]:
        """One finished run for the artifact at ``artifact`` (verified first)."""
        from mlflow.entities import Metric, Param

        manifest = load_policy(artifact).manifest
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{manifest.name}-{manifest.version}",
            tags={VERSION_TAG: manifest.version, **(tags or {})},
        )
        run_id: str = run.info.run_id
        stamp = int(manifest.created_at * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, v, stamp, 0) for k, v in run_metrics(manifest).items()],
            params=[Param(k, v) for k, v in run_params(manifest).items()],
        )
        self.client.log_artifacts(run_id, str(artifact), ARTIFACT_PATH)
        self.client.set_terminated(run_id)
        return run_id, manifest

    def register(self, record: VersionRecord, artifact: Path) -> str:
        """Log the run and create the MLflow model version; returns its version number.

        Idempotent on the rlops version, like the registry: a version already mirrored is
        returned as it is.
        """
        existing = self._find(record.name, record.version)
        if existing is not None:
            return existing
        run_id, _ = self.log_training_run(artifact)
        if not self.client.search_registered_models(filter_string=f"name = '{record.name}'"):
            self.client.create_registered_model(record.name)
        created = self.client.create_model_version(
            record.name,
            f"runs:/{run_id}/{ARTIFACT_PATH}",
            run_id=run_id,
            tags={VERSION_TAG: record.version, SHA_TAG: record.manifest_sha256},
        )
        return str(created.version)

    def _find(self, name: str, version: str) -> str | None:
        found = self.client.search_model_versions(
            filter_string=f"name = '{name}' and tag.`{VERSION_TAG}` = '{version}'"
        )
        return str(found[0].version) if found else None

    def on_move(self, record: AliasRecord) -> None:
        """A registry hook: point the MLflow alias at the mirrored version."""
        number = self._find(record.name, record.version)
        if number is None:
            raise NotFoundError(
                f"{record.name} {record.version} is not mirrored in MLflow", field="version"
            )
        self.client.set_registered_model_alias(record.name, record.alias, number)

    def alias_version(self, name: str, alias: str) -> str:
        """The rlops version MLflow's ``alias`` points at."""
        model_version = self.client.get_model_version_by_alias(name, alias)
        return str(model_version.tags[VERSION_TAG])

    def load(self, name: str, alias: str, directory: Path) -> LoadedPolicy:
        """Download the version behind ``alias`` into ``directory`` and verify it."""
        model_version = self.client.get_model_version_by_alias(name, alias)
        path = self.client.download_artifacts(model_version.run_id, ARTIFACT_PATH, str(directory))
        loaded = load_policy(path)
        if loaded.version != model_version.tags.get(VERSION_TAG):
            raise IntegrityError(
                f"MLflow {name}@{alias} holds {loaded.version}, tagged "
                f"{model_version.tags.get(VERSION_TAG)}",
                field="version",
            )
        return loaded
