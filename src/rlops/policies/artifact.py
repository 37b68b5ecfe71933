"""The policy artifact: a directory of ``manifest.json`` + ``weights.npz``, never a pickle.

The manifest names the family, its parameters, the feature schema and action catalog,
the reward-spec hash, the training snapshot id, the training config, evaluation results,
the parent version, who made it and when, and the sha256, shape and dtype of every file
and array. ``version`` is a content hash of everything that defines the model's
behaviour (family, parameters, array contents, schema, catalog, reward, data, config,
parent) and not of when it was saved, so retraining with the same seed gives the same
version. Loading recomputes every checksum and the version and refuses any mismatch:
one changed byte, a missing file or a manifest that lies about shapes is an
:class:`~rlops.core.errors.IntegrityError`, and the caller keeps serving what it had.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import orjson

from rlops.core.actions import ActionCatalog
from rlops.core.canonical import canonical_json, content_hash
from rlops.core.errors import IntegrityError, NotFoundError, ValidationError
from rlops.core.features import FeatureSchema
from rlops.policies.contract import Policy

FORMAT = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.npz"
Arrays = dict[str, npt.NDArray[Any]]


class SaveablePolicy(Policy, Protocol):
    """A policy family the artifact can write: parameters as JSON plus named arrays."""

    @property
    def family(self) -> str: ...  # read-only, so a family's ClassVar satisfies it

    def to_artifact(self) -> tuple[dict[str, Any], Arrays]: ...


Loader = Callable[[dict[str, Any], Arrays], Any]
FAMILIES: dict[str, Loader] = {}


def register_family(name: str, loader: Loader) -> None:
    """Make ``family`` loadable; each numpy inference family registers itself here."""
    FAMILIES[name] = loader


def _builtin_families() -> None:
    from rlops.policies.bandit import BanditPolicy
    from rlops.policies.linear import BilinearPolicy, LinearPolicy
    from rlops.policies.mlp import MLPPolicy
    from rlops.policies.rules import RulesPolicy

    for kind in (LinearPolicy, BilinearPolicy, MLPPolicy, RulesPolicy, BanditPolicy):
        FAMILIES.setdefault(kind.family, kind.from_artifact)


def library_version() -> str:
    try:
        return package_version("rlops")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def array_digest(array: npt.NDArray[Any]) -> str:
    """sha256 of an array's dtype, shape and C-order bytes."""
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """Everything needed to load, verify, serve and explain a policy version."""

    name: str
    version: str
    family: str
    params: dict[str, Any]
    feature_schema: FeatureSchema
    action_catalog: ActionCatalog
    reward_spec_hash: str | None
    snapshot_id: str | None
    training_config: dict[str, Any]
    evaluation: dict[str, Any]
    parent_version: str | None
    created_at: float
    created_by: str
    library_version: str
    arrays: dict[str, dict[str, Any]]  # name -> {shape, dtype, sha256}
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {sha256, bytes}
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "name": self.name,
            "version": self.version,
            "family": self.family,
            "params": self.params,
            "feature_schema": self.feature_schema.to_json(),
            "action_catalog": self.action_catalog.to_json(),
            "reward_spec_hash": self.reward_spec_hash,
            "snapshot_id": self.snapshot_id,
            "training_config": self.training_config,
            "evaluation": self.evaluation,
            "parent_version": self.parent_version,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "library_version": self.library_version,
            "arrays": self.arrays,
            "files": self.files,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        try:
            if data.get("format") != FORMAT:
                raise IntegrityError(
                    f"unknown artifact format {data.get('format')!r}", field="format"
                )
            return cls(
                name=str(data["name"]),
                version=str(data["version"]),
                family=str(data["family"]),
                params=dict(data["params"]),
                feature_schema=FeatureSchema.from_json(data["feature_schema"]),
                action_catalog=ActionCatalog.from_json(data["action_catalog"]),
                reward_spec_hash=data.get("reward_spec_hash"),
                snapshot_id=data.get("snapshot_id"),
                training_config=dict(data.get("training_config") or {}),
                evaluation=dict(data.get("evaluation") or {}),
                parent_version=data.get("parent_version"),
                created_at=float(data["created_at"]),
                created_by=str(data["created_by"]),
                library_version=str(data["library_version"]),
                arrays={k: dict(v) for k, v in data["arrays"].items()},
                files={k: dict(v) for k, v in data.get("files", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, IntegrityError):
                raise
            raise IntegrityError(f"the manifest is malformed: {exc!r}", field="manifest") from None


def model_version(
    *,
    family: str,
    params: dict[str, Any],
    arrays: Mapping[str, dict[str, Any]],
    schema: FeatureSchema,
    catalog: ActionCatalog,
    reward_spec_hash: str | None,
    snapshot_id: str | None,
    training_config: dict[str, Any],
    parent_version: str | None,
) -> str:
    """The content hash that names a model: what it computes and what it came from."""
    return content_hash(
        {
            "family": family,
            "params": params,
            "arrays": {k: arrays[k]["sha256"] for k in sorted(arrays)},
            "schema": schema.version,
            "catalog": catalog.version,
            "reward": reward_spec_hash,
            "snapshot": snapshot_id,
            "config": training_config,
            "parent": parent_version,
        },
        length=20,
    )


@dataclass(frozen=True)
class LoadedPolicy:
    manifest: Manifest
    policy: Any  # a Policy of the manifest's family

    @property
    def version(self) -> str:
        return self.manifest.version


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_policy(
    directory: Path | str,
    policy: SaveablePolicy,
    *,
    name: str,
    schema: FeatureSchema,
    catalog: ActionCatalog,
    reward_spec_hash: str | None = None,
    snapshot_id: str | None = None,
    training_config: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    parent_version: str | None = None,
    created_at: float,
    created_by: str = "rlops",
) -> Manifest:
    """Write ``policy`` as an artifact directory (atomically: it appears whole or not at all)."""
    target = Path(directory)
    if target.exists() and any(target.iterdir()):
        raise ValidationError(f"{target} exists and is not empty", field="directory")
    params, arrays = policy.to_artifact()
    for key, array in arrays.items():
        if np.asarray(array).dtype == object:
            raise ValidationError(
                f"array {key!r} has dtype object; artifacts hold numbers only", field=key
            )
    dim = getattr(policy, "dim", None)
    if dim is not None and dim != schema.dim:
        raise ValidationError(
            f"the policy reads {dim} features; the schema builds {schema.dim}", field="schema"
        )
    config = dict(training_config or {})
    canonical_json(params), canonical_json(config), canonical_json(dict(evaluation or {}))
    described = {
        k: {"shape": list(np.shape(a)), "dtype": np.asarray(a).dtype.str, "sha256": array_digest(a)}
        for k, a in arrays.items()
    }
    version = model_version(
        family=policy.family,
        params=params,
        arrays=described,
        schema=schema,
        catalog=catalog,
        reward_spec_hash=reward_spec_hash,
        snapshot_id=snapshot_id,
        training_config=config,
        parent_version=parent_version,
    )
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **{k: np.ascontiguousarray(a) for k, a in arrays.items()})
    weights = buffer.getvalue()
    manifest = Manifest(
        name=name,
        version=version,
        family=policy.family,
        params=params,
        feature_schema=schema,
        action_catalog=catalog,
        reward_spec_hash=reward_spec_hash,
        snapshot_id=snapshot_id,
        training_config=config,
        evaluation=dict(evaluation or {}),
        parent_version=parent_version,
        created_at=float(created_at),
        created_by=created_by,
        library_version=library_version(),
        arrays=described,
        files={WEIGHTS: {"sha256": hashlib.sha256(weights).hexdigest(), "bytes": len(weights)}},
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".artifact-", dir=target.parent))
    try:
        for file_name, content in (
            (WEIGHTS, weights),
            (
                MANIFEST,
                orjson.dumps(manifest.to_json(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS),
            ),
        ):
            with (staging / file_name).open("wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def read_manifest(directory: Path | str) -> Manifest:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise NotFoundError(f"no policy artifact at {directory} (no {MANIFEST})", field="artifact")
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise IntegrityError(f"{path} is not valid JSON: {exc}", field="manifest") from None
    if not isinstance(data, dict):
        raise IntegrityError(f"{path} is not a JSON object", field="manifest")
    return Manifest.from_json(data)


def _read_arrays(directory: Path, manifest: Manifest) -> Arrays:
    for file_name, expected in manifest.files.items():
        path = directory / file_name
        if not path.is_file():
            raise IntegrityError(f"artifact file {file_name} is missing", field=file_name)
        if _sha256(path) != expected.get("sha256"):
            raise IntegrityError(
                f"artifact file {file_name} fails its sha256 check", field=file_name
            )
    if WEIGHTS not in manifest.files:
        raise IntegrityError(f"the manifest does not list {WEIGHTS}", field="files")
    arrays: Arrays = {}
    try:
        with np.load(directory / WEIGHTS, allow_pickle=False) as npz:
            names = set(npz.files)
            if names != set(manifest.arrays):
                raise IntegrityError(
                    f"weights hold arrays {sorted(names)}; "
                    f"the manifest lists {sorted(manifest.arrays)}",
                    field="arrays",
                )
            for key in sorted(names):
                arrays[key] = npz[key]
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise IntegrityError(f"{WEIGHTS} cannot be read: {exc}", field=WEIGHTS) from None
    for key, array in arrays.items():
        described = manifest.arrays[key]
        if list(array.shape) != list(
            described.get("shape", [])
        ) or array.dtype.str != described.get("dtype"):
            raise IntegrityError(
                f"array {key!r} is {array.dtype.str}{list(array.shape)}; the manifest says "
                f"{described.get('dtype')}{described.get('shape')}",
                field=f"arrays.{key}",
            )
        if array_digest(array) != described.get("sha256"):
            raise IntegrityError(f"array {key!r} fails its checksum", field=f"arrays.{key}")
    return arrays


def load_policy(directory: Path | str) -> LoadedPolicy:
    """Read, verify and build the policy; any mismatch raises :class:`IntegrityError`."""
    path = Path(directory)
    manifest = read_manifest(path)
    arrays = _read_arrays(path, manifest)
    expected = model_version(
        family=manifest.family,
        params=manifest.params,
        arrays=manifest.arrays,
        schema=manifest.feature_schema,
        catalog=manifest.action_catalog,
        reward_spec_hash=manifest.reward_spec_hash,
        snapshot_id=manifest.snapshot_id,
        training_config=manifest.training_config,
        parent_version=manifest.parent_version,
    )
    if expected != manifest.version:
        raise IntegrityError(
            f"the manifest says version {manifest.version}; its content hashes to {expected}",
            field="version",
        )
    _builtin_families()
    loader = FAMILIES.get(manifest.family)
    if loader is None:
        raise IntegrityError(f"unknown policy family {manifest.family!r}", field="family")
    try:
        policy = loader(manifest.params, arrays)
    except (ValidationError, KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(
            f"the {manifest.family} policy cannot be built: {exc}", field="params"
        ) from None
    dim = getattr(policy, "dim", None)
    if dim is not None and dim != manifest.feature_schema.dim:
        raise IntegrityError(
            f"the policy reads {dim} features; its schema builds {manifest.feature_schema.dim}",
            field="feature_schema",
        )
    return LoadedPolicy(manifest=manifest, policy=policy)
