"""Batch features from Parquet into the online store.

A batch job writes one Parquet file per run: a string key column (``unit_id``) and one
column per schema feature it computes. The whole file is checked against the schema
before anything is written, and then loaded as one atomic batch, so a bad file changes
nothing and a good one replaces the rows of its units at once.
"""

from __future__ import annotations

from pathlib import Path

from rlops.apps.spaces import app_schema as app_schema  # the commands look schemas up here
from rlops.core.errors import ValidationError
from rlops.core.features import FeatureSchema, FeatureValue
from rlops.serving.feature_store import FeatureStore


def read_feature_batch(
    path: Path, schema: FeatureSchema, *, key: str = "unit_id"
) -> dict[str, dict[str, FeatureValue]]:
    """Unit id -> checked features, from a Parquet file; null cells are left out.

    A null means "not computed for this unit": the unit's row omits the feature and
    serving falls back to the schema default. Rows are numbered from 0 in messages.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise ValidationError(f"cannot read Parquet file {path}: {error}", field="path") from None
    names = table.column_names
    if key not in names:
        raise ValidationError(
            f"{path} has no key column {key!r}; columns: {names}", field=f"column {key}"
        )
    if not (
        pa.types.is_string(table.schema.field(key).type)
        or pa.types.is_large_string(table.schema.field(key).type)
    ):
        raise ValidationError(
            f"key column {key!r} must hold strings, not {table.schema.field(key).type}",
            field=f"column {key}",
        )
    known = set(schema.names)
    for name in names:
        if name != key and name not in known:
            raise ValidationError(
                f"unknown column {name!r}: not a feature of the schema {list(schema.names)}",
                field=f"column {name}",
            )
    if len(set(names)) != len(names):
        raise ValidationError(f"{path} repeats a column name: {names}", field="columns")

    unit_ids: list[str] = []
    rows: dict[str, dict[str, FeatureValue]] = {}
    first_row: dict[str, int] = {}
    for i, unit_id in enumerate(table.column(key).to_pylist()):
        if not unit_id:
            raise ValidationError(
                f"row {i} column {key}: a unit id must be a non-empty string, got {unit_id!r}",
                field=f"row {i} column {key}",
            )
        if unit_id in rows:
            raise ValidationError(
                f"row {i} column {key}: duplicate unit id {unit_id!r} (first in row "
                f"{first_row[unit_id]})",
                field=f"row {i} column {key}",
            )
        rows[unit_id] = {}
        first_row[unit_id] = i
        unit_ids.append(unit_id)
    for name in names:
        if name == key:
            continue
        feature = schema[name]
        values = table.column(name).to_pylist()
        for i, (unit_id, value) in enumerate(zip(unit_ids, values, strict=True)):
            if value is None:
                continue
            try:
                rows[unit_id][name] = feature.check(value)
            except ValidationError as error:
                raise ValidationError(
                    f"row {i} column {name}: {error.message}", field=f"row {i} column {name}"
                ) from None
    return rows


def load_features(
    path: Path,
    store: FeatureStore,
    schema: FeatureSchema,
    *,
    key: str = "unit_id",
    ttl_seconds: float | None,
) -> int:
    """Check the whole file, then load it as one atomic batch; the number of units."""
    rows = read_feature_batch(path, schema, key=key)
    return store.load_batch(rows, ttl_seconds=ttl_seconds)
