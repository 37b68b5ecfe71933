"""The reference a live window is compared with: what the policy's training data looked like.

Built once from the training snapshot (or :class:`~rlops.learn.data.LoggedData`, or
feature rows) and saved as JSON beside the policy artifact or the snapshot, so a server
can watch drift without reading training data. It holds the feature bins, each feature's
reference bin counts (for PSI), and the joint grid with the cells the reference occupied
(for coverage). The file carries a content hash over its body, checked on load.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import orjson

from rlops.core.canonical import content_hash
from rlops.core.errors import IntegrityError, NotFoundError, ValidationError
from rlops.core.features import FeatureSchema
from rlops.monitoring.bins import (
    FeatureBins,
    Prepared,
    matrix_columns,
    prepare_columns,
    prepare_rows,
)
from rlops.monitoring.grid import JointGrid

if TYPE_CHECKING:  # training code stays off the serving path
    from rlops.learn.data import LoggedData

FORMAT = "rlops.monitoring.reference/1"
FILENAME = "reference.json"
I64 = npt.NDArray[np.int64]


def _action_codes(
    actions: Sequence[str] | npt.NDArray[np.integer[Any]], n: int
) -> npt.NDArray[np.intp]:
    """Logged actions as integer codes (ids in sorted order, or the indices given)."""
    array = np.asarray(actions)
    if array.shape != (n,):
        raise ValidationError(f"actions must hold one action per row ({n})", field="actions")
    if np.issubdtype(array.dtype, np.integer):
        if n and array.min() < 0:
            raise ValidationError("action indices must be >= 0", field="actions")
        return array.astype(np.intp)
    _, codes = np.unique(array.astype(str), return_inverse=True)
    return codes.astype(np.intp).reshape(n)


@dataclass(frozen=True, slots=True)
class ReferenceConfig:
    """How a reference bins.

    ``bins`` quantile bins per numeric feature for PSI: 10 is the usual choice, fine
    enough to see a shift and coarse enough that a few thousand rows fill every bin.
    The coverage grid crosses ``grid_features`` numeric features (or ``grid_names``) in
    ``grid_bins`` bins with every bool and category; 5 bins make its edges a subset of
    the deciles, so serving bins each row once. The grid keeps at most ``max_cells``
    cells (a server holds a map of them) and at most one cell that can hold values per
    ``rows_per_cell`` reference rows: a snapshot too small to fill its grid would read
    ordinary traffic as unseen.
    """

    bins: int = 10
    grid_bins: int = 5
    grid_features: int = 4
    grid_names: tuple[str, ...] | None = None
    max_cells: int = 65_536
    rows_per_cell: int = 10

    def __post_init__(self) -> None:
        for name in ("max_cells", "rows_per_cell"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1 << 24:
                raise ValidationError(f"{name} must be an integer in [1, 2^24]", field=name)


@dataclass(frozen=True, eq=False)
class Reference:
    """Feature bins, reference bin counts and occupied grid cells of one training sample.

    ``counts[name]`` are the reference rows per bin of ``bins``'s feature ``name``;
    ``cells`` the grid cells the sample occupied (ascending) and ``cell_counts`` its rows
    in each. ``source`` names the sample (a snapshot content id).
    """

    schema: FeatureSchema
    bins: FeatureBins
    counts: Mapping[str, I64]
    grid: JointGrid
    cells: I64
    cell_counts: I64
    rows: int
    source: str = ""

    def __post_init__(self) -> None:
        for b in self.bins.features:
            counts = self.counts.get(b.name)
            if counts is None or counts.shape != (b.size,):
                raise ValidationError(
                    f"reference counts for {b.name!r} must have {b.size} bins",
                    field=f"counts.{b.name}",
                )
        binned = {b.name: b for b in self.bins.features}
        for g in self.grid.features:
            same = binned.get(g.name)
            if same is None or (same.kind, same.categories) != (g.kind, g.categories):
                raise ValidationError(
                    f"grid feature {g.name!r} must be binned alike in bins", field="grid"
                )
        if self.cells.shape != self.cell_counts.shape or self.cells.ndim != 1:
            raise ValidationError("cells and cell_counts differ in shape", field="cells")
        if self.rows < 1 or int(self.cell_counts.sum()) != self.rows:
            raise ValidationError("cell_counts must add up to rows >= 1", field="cell_counts")
        if self.cells.size and (
            np.any(np.diff(self.cells) <= 0)
            or self.cells[0] < 0
            or self.cells[-1] >= self.grid.n_cells
        ):
            raise ValidationError("cells must be ascending ids inside the grid", field="cells")

    @classmethod
    def from_prepared(
        cls,
        prepared: Prepared,
        schema: FeatureSchema,
        config: ReferenceConfig | None = None,
        *,
        source: str = "",
        actions: Sequence[str] | npt.NDArray[np.integer[Any]] | None = None,
    ) -> Reference:
        """From prepared rows (see :mod:`rlops.monitoring.bins`).

        ``actions``, the action logged with each row (ids or catalog indices), let the
        grid cross the numeric features the logged choices depend on most (see
        :meth:`JointGrid.fit`); without them it takes the ones that vary most.
        """
        config = config if config is not None else ReferenceConfig()
        n = prepared.n
        if n < 1:
            raise ValidationError("a reference needs at least one row", field="rows")
        feature_bins = FeatureBins.fit(schema, prepared, bins=config.bins)
        flat = np.bincount(
            feature_bins.flat(feature_bins.codes(prepared)), minlength=feature_bins.width
        )
        grid = JointGrid.fit(
            schema,
            prepared,
            bins=config.grid_bins,
            max_numeric=config.grid_features,
            names=config.grid_names,
            max_cells=config.max_cells,
            max_filled=max(1, n // config.rows_per_cell),
            actions=None if actions is None else _action_codes(actions, n),
        )
        cells, cell_counts = np.unique(grid.cells(prepared), return_counts=True)
        return cls(
            schema=schema,
            bins=feature_bins,
            counts=feature_bins.split(flat.astype(np.int64)),
            grid=grid,
            cells=cells.astype(np.int64),
            cell_counts=cell_counts.astype(np.int64),
            rows=n,
            source=source,
        )

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Mapping[str, object]],
        schema: FeatureSchema,
        config: ReferenceConfig | None = None,
        *,
        source: str = "",
        actions: Sequence[str] | None = None,
    ) -> Reference:
        """From feature mappings (decisions' or examples' ``features``)."""
        prepared = prepare_rows(schema.features, rows)
        return cls.from_prepared(prepared, schema, config, source=source, actions=actions)

    @classmethod
    def from_matrix(
        cls,
        x: npt.NDArray[Any],
        schema: FeatureSchema,
        config: ReferenceConfig | None = None,
        *,
        source: str = "",
        actions: Sequence[str] | npt.NDArray[np.integer[Any]] | None = None,
    ) -> Reference:
        """From a ``(n, schema.dim)`` schema matrix (one-hot categories)."""
        prepared = prepare_columns(schema.features, matrix_columns(x, schema), len(x))
        return cls.from_prepared(prepared, schema, config, source=source, actions=actions)

    @classmethod
    def from_logged(cls, data: LoggedData, config: ReferenceConfig | None = None) -> Reference:
        """From the dataset a policy was trained on; ``source`` is its snapshot id."""
        return cls.from_matrix(
            data.features,
            data.schema,
            config,
            source=data.snapshot_id or "",
            actions=data.actions,
        )

    @classmethod
    def from_snapshot(
        cls, path: Path | str, schema: FeatureSchema, config: ReferenceConfig | None = None
    ) -> Reference:
        """From a Parquet training snapshot (verified on read)."""
        from rlops.store.snapshot import read_snapshot

        snapshot = read_snapshot(path)
        return cls.from_rows(
            snapshot.feature_rows(),
            schema,
            config,
            source=snapshot.info.content_id,
            actions=snapshot.action_ids,
        )

    def _body(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema": self.schema.to_json(),
            "bins": self.bins.to_json(),
            "counts": {name: c.tolist() for name, c in self.counts.items()},
            "grid": self.grid.to_json(),
            "cells": self.cells.tolist(),
            "cell_counts": self.cell_counts.tolist(),
            "rows": self.rows,
            "source": self.source,
        }

    def to_json(self) -> dict[str, Any]:
        body = self._body()
        return {**body, "content_hash": content_hash(body)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reference:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ValidationError(f"not a monitoring reference ({FORMAT})", field="format")
        try:
            reference = cls(
                schema=FeatureSchema.from_json(data["schema"]),
                bins=FeatureBins.from_json(data["bins"]),
                counts={k: np.asarray(v, dtype=np.int64) for k, v in data["counts"].items()},
                grid=JointGrid.from_json(data["grid"]),
                cells=np.asarray(data["cells"], dtype=np.int64),
                cell_counts=np.asarray(data["cell_counts"], dtype=np.int64),
                rows=int(data["rows"]),
                source=str(data.get("source", "")),
            )
        except KeyError as missing:
            raise ValidationError(f"reference is missing {missing}", field=str(missing)) from None
        stated = data.get("content_hash")
        if stated is not None and stated != content_hash(reference._body()):
            raise IntegrityError("reference content does not match its hash", field="content_hash")
        return reference

    def write(self, directory: Path | str) -> Path:
        """Write ``<directory>/reference.json`` atomically."""
        path = Path(directory) / FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, path: Path | str) -> Reference:
        """Read a reference file (or ``<directory>/reference.json``) and verify its hash."""
        path = Path(path)
        if path.is_dir():
            path = path / FILENAME
        if not path.is_file():
            raise NotFoundError(f"no monitoring reference at {path}", field="path")
        try:
            data = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as error:
            raise IntegrityError(f"{path}: not JSON ({error})", field="path") from None
        return cls.from_json(data)
