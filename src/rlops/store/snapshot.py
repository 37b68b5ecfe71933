"""Training-data snapshots: joined examples as Parquet with a content id.

The content id is a hash of the data (rows sorted by event id, spec and revision), not
of the time of export, so the same examples always give the same id and the registry
can name exactly what a policy was trained on. Features, signals and reward components
become one column each (``feature.x``, ``signal.y``, ``reward.z``) so DuckDB, Polars or
Spark read a snapshot without knowing our records.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from rlops.core.errors import IntegrityError, NotFoundError, ValidationError
from rlops.core.features import FeatureSchema
from rlops.core.records import Example

FORMAT_VERSION = "1"
_PREFIXES = {"features": "feature.", "signals": "signal.", "components": "reward."}
_FIXED: tuple[tuple[str, pa.DataType], ...] = (
    ("event_id", pa.string()),
    ("reward_spec", pa.string()),
    ("revision", pa.int64()),
    ("app", pa.string()),
    ("ts", pa.float64()),
    ("unit_id", pa.string()),
    ("arm", pa.string()),
    ("policy_version", pa.string()),
    ("action_id", pa.string()),
    ("action_ids", pa.list_(pa.string())),
    ("propensity", pa.float64()),
    ("reward", pa.float64()),
    ("late", pa.bool_()),
    ("defaulted", pa.bool_()),
    ("n_outcomes", pa.int64()),
    ("joined_at", pa.float64()),
)


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    content_id: str
    path: Path
    rows: int


def _infer(values: list[Any]) -> pa.DataType:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, str) for v in present):
        return pa.string()
    if present and all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if any(isinstance(v, str) for v in present):
        raise ValidationError("a feature mixes text and numbers across examples", field="features")
    return pa.float64()


def examples_table(examples: Sequence[Example]) -> pa.Table:
    """The examples as an Arrow table in canonical row order."""
    if not examples:
        raise ValidationError("a snapshot needs at least one example", field="examples")
    ordered = sorted(examples, key=lambda e: (e.event_id, e.reward_spec, e.revision))
    keys = [(e.event_id, e.reward_spec, e.revision) for e in ordered]
    if len(set(keys)) != len(keys):
        raise ValidationError(
            "duplicate (event_id, reward_spec, revision) in examples", field="examples"
        )
    columns: dict[str, pa.Array] = {}
    for name, dtype in _FIXED:
        columns[name] = pa.array([getattr(e, name) for e in ordered], type=dtype)
    for attr, prefix in _PREFIXES.items():
        names = sorted({k for e in ordered for k in getattr(e, attr)})
        for key in names:
            values = [getattr(e, attr).get(key) for e in ordered]
            columns[prefix + key] = pa.array(values, type=_infer(values))
    return pa.table(columns)


def _type_name(dtype: pa.DataType) -> str:
    """A type's name independent of Parquet's list-field naming and string widths."""
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return f"list<{_type_name(dtype.value_type)}>"
    if pa.types.is_large_string(dtype):
        return "string"
    return str(dtype)


def content_id(table: pa.Table) -> str:
    """sha256 over column names, types and values in canonical JSON, column by column."""
    digest = hashlib.sha256(f"rlops-snapshot-{FORMAT_VERSION}".encode())
    for name in sorted(table.column_names):
        column = table.column(name)
        digest.update(orjson.dumps([name, _type_name(column.type)]))
        digest.update(orjson.dumps(column.to_pylist()))
    return digest.hexdigest()[:24]


def write_snapshot(examples: Sequence[Example], directory: Path | str) -> SnapshotInfo:
    """Write ``<directory>/<content_id>.parquet`` atomically; rewriting is a no-op."""
    table = examples_table(examples)
    cid = content_id(table)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{cid}.parquet"
    if not path.exists():
        metadata = {b"rlops.content_id": cid.encode(), b"rlops.format": FORMAT_VERSION.encode()}
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        pq.write_table(table.replace_schema_metadata(metadata), tmp, compression="zstd")
        os.replace(tmp, path)
    return SnapshotInfo(content_id=cid, path=path, rows=table.num_rows)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A verified snapshot: the table and typed views of it."""

    info: SnapshotInfo
    table: pa.Table

    def column(self, name: str) -> npt.NDArray[Any]:
        return np.asarray(self.table.column(name).to_numpy(zero_copy_only=False))

    @property
    def rewards(self) -> npt.NDArray[np.float64]:
        return self.column("reward").astype(np.float64)

    @property
    def propensities(self) -> npt.NDArray[np.float64]:
        return self.column("propensity").astype(np.float64)

    @property
    def event_ids(self) -> list[str]:
        return [str(v) for v in self.table.column("event_id").to_pylist()]

    @property
    def action_ids(self) -> list[str]:
        return [str(v) for v in self.table.column("action_id").to_pylist()]

    def feature_rows(self) -> list[dict[str, Any]]:
        prefix = _PREFIXES["features"]
        names = [n for n in self.table.column_names if n.startswith(prefix)]
        data = {n: self.table.column(n).to_pylist() for n in names}
        return [
            {n[len(prefix) :]: data[n][i] for n in names if data[n][i] is not None}
            for i in range(self.table.num_rows)
        ]

    def features(self, schema: FeatureSchema) -> npt.NDArray[np.float32]:
        """The ``(n, schema.dim)`` float32 feature matrix, built by name."""
        return schema.matrix(self.feature_rows())

    def examples(self) -> list[Example]:
        rows = self.table.to_pylist()
        out = []
        for row in rows:
            fields: dict[str, Any] = {name: row[name] for name, _ in _FIXED}
            fields["action_ids"] = tuple(fields["action_ids"])
            for attr, prefix in _PREFIXES.items():
                fields[attr] = {
                    k[len(prefix) :]: v
                    for k, v in row.items()
                    if k.startswith(prefix) and v is not None
                }
            out.append(Example(**fields))
        return out


def read_snapshot(path: Path | str) -> Snapshot:
    """Read and verify a snapshot; a changed file fails with :class:`IntegrityError`."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"no snapshot at {path}", field="path")
    table = pq.read_table(path)
    stated = (table.schema.metadata or {}).get(b"rlops.content_id", b"").decode()
    table = table.replace_schema_metadata(None)
    actual = content_id(table)
    if stated != actual:
        raise IntegrityError(
            f"snapshot {path.name}: content id {actual} does not match the recorded {stated!r}",
            field="path",
        )
    return Snapshot(
        info=SnapshotInfo(content_id=actual, path=path, rows=table.num_rows), table=table
    )
