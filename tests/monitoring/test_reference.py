"""Feature bins, the coverage grid, and the reference file beside a policy or snapshot."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rlops.core.errors import IntegrityError, NotFoundError, ValidationError
from rlops.core.features import Feature, FeatureSchema, FeatureValue
from rlops.core.records import Example
from rlops.learn.data import LoggedData
from rlops.monitoring.bins import FeatureBinning, FeatureBins, prepare_columns, prepare_rows
from rlops.monitoring.detectors import feature_drift
from rlops.monitoring.grid import GridFromBins, JointGrid
from rlops.monitoring.reference import Reference, ReferenceConfig
from rlops.sim.pricing_core import PRICING_ACTIONS, PRICING_SCHEMA
from rlops.store.snapshot import write_snapshot
from tests.monitoring.helpers import ACTIONS, pricing_rows

SMALL = FeatureSchema.of(
    [
        Feature("x", low=0.0, high=100.0, default=0.0),
        Feature("n", "int", default=0),
        Feature("flag", "bool", default=False),
        Feature("seg", "category", default="a", categories=("a", "b")),
    ]
)


def test_quantile_edges_bins_and_the_missing_bin() -> None:
    rows: list[dict[str, object]] = [{"x": float(v)} for v in range(1, 101)]
    bins = FeatureBins.fit(SMALL, prepare_rows(SMALL.features, rows), bins=4)
    x = bins.features[0]
    # the minimum, numpy's linear quartiles of 1..100, and just above the maximum
    assert x.edges == (1.0, 25.75, 50.5, 75.25, float(np.nextafter(100.0, np.inf)))
    assert x.size == 7
    assert x.labels[:3] == ("missing", "<1", "[1,25.75)")
    values = [1.0, 25.75, 99.0, 100.0, 100.5, -3.0, None]
    counts = bins.bin_rows([{"x": v} for v in values] + [{}])
    # missing, below the minimum, four quantile bins, above the maximum
    np.testing.assert_array_equal(counts["x"], [2, 1, 1, 1, 0, 2, 1])
    np.testing.assert_array_equal(counts["n"], [8, 0])  # no reference values, no edges
    np.testing.assert_array_equal(counts["flag"], [8, 0, 0])


def test_tied_quantiles_merge_into_one_edge() -> None:
    rows: list[dict[str, object]] = [{"x": 0.0} for _ in range(60)]
    rows += [{"x": float(v)} for v in range(40)]
    bins = FeatureBins.fit(SMALL, prepare_rows(SMALL.features, rows), bins=10)
    edges = bins.features[0].edges
    assert edges[0] == 0.0 and len(edges) == len(set(edges)) < 9
    counts = bins.bin_rows(rows)["x"]
    assert counts[1] == 0  # nothing below 0
    assert counts.sum() == 100


def test_without_reference_values_edges_split_low_to_high() -> None:
    binning = FeatureBinning.fit(SMALL["x"], None, 4)
    assert binning.edges == (25.0, 50.0, 75.0)


def test_bool_category_and_stray_values() -> None:
    bins = FeatureBins.fit(SMALL, prepare_rows(SMALL.features, [{"x": 1.0}]))
    rows: list[dict[str, object]] = [
        {"flag": True, "seg": "b", "x": "oops"},
        {"flag": False, "seg": "zzz"},
        {"flag": 1, "seg": None},
    ]
    counts = bins.bin_rows(rows)
    np.testing.assert_array_equal(counts["flag"], [0, 1, 2])
    np.testing.assert_array_equal(counts["seg"], [2, 0, 1])  # unknown and None are missing
    assert counts["x"][0] == 3  # a string and two absences


def test_rows_and_float32_matrix_bin_alike() -> None:
    rows = pricing_rows(2000, seed=1)
    prepared = prepare_rows(PRICING_SCHEMA.features, rows)
    bins = FeatureBins.fit(PRICING_SCHEMA, prepared)
    matrix = PRICING_SCHEMA.matrix(rows)  # float32, as training data holds them
    by_rows = bins.bin_rows(rows)
    by_matrix = bins.bin_matrix(matrix, PRICING_SCHEMA)
    for name in PRICING_SCHEMA.names:
        np.testing.assert_array_equal(by_rows[name], by_matrix[name], err_msg=name)
        assert by_rows[name][1:].sum() == 2000  # nothing missing


def test_grid_cells_from_bins_match_binning_again() -> None:
    rows = pricing_rows(3000, seed=2)
    prepared = prepare_rows(PRICING_SCHEMA.features, rows)
    bins = FeatureBins.fit(PRICING_SCHEMA, prepared, bins=10)
    grid = JointGrid.fit(PRICING_SCHEMA, prepared, bins=5, max_numeric=4, max_filled=300)
    # 300 cells that hold values: weekend (2) x segment (3) x 50 -> two numeric features
    assert [b.kind for b in grid.features].count("float") + [b.kind for b in grid.features].count(
        "int"
    ) == 2
    assert {"weekend", "segment"} <= set(grid.names)
    lookup = GridFromBins.of(grid, bins)
    assert lookup is not None
    live = prepare_rows(PRICING_SCHEMA.features, pricing_rows(500, seed=3, price_shift=0.3))
    np.testing.assert_array_equal(lookup.cells(bins.codes(live)), grid.cells(live))
    # quartiles are not among the deciles: no lookup, the grid bins rows itself
    quartiles = JointGrid.fit(PRICING_SCHEMA, prepared, bins=4, max_filled=300)
    assert GridFromBins.of(quartiles, bins) is None


def test_grid_keeps_named_features() -> None:
    prepared = prepare_rows(PRICING_SCHEMA.features, pricing_rows(100, seed=4))
    grid = JointGrid.fit(PRICING_SCHEMA, prepared, names=("segment", "price_ratio"))
    assert grid.names == ("segment", "price_ratio")
    # 3 segments and missing; 5 quintiles, below, above and missing
    assert grid.n_cells == 4 * 8


def test_drift_on_a_shifted_feature_and_not_on_a_resample() -> None:
    reference = Reference.from_rows(pricing_rows(20_000, seed=10), PRICING_SCHEMA)
    resample = reference.bins.bin_rows(pricing_rows(5_000, seed=11))
    shifted = reference.bins.bin_rows(pricing_rows(5_000, seed=12, price_shift=0.1))
    calm = feature_drift(reference.counts, resample)
    moved = feature_drift(reference.counts, shifted)
    assert max(calm.values()) < 0.02  # about bins / n for no drift
    assert moved["price_ratio"] > 0.5  # a one-standard-deviation shift
    assert max(v for k, v in moved.items() if k != "price_ratio") < 0.02


def test_reference_round_trips_through_json_and_a_file(tmp_path: Path) -> None:
    reference = Reference.from_rows(pricing_rows(3000, seed=5), PRICING_SCHEMA, source="snap1")
    again = Reference.from_json(json.loads(json.dumps(reference.to_json())))
    assert again.to_json() == reference.to_json()
    path = reference.write(tmp_path)
    assert path.name == "reference.json"
    read = Reference.read(tmp_path)
    assert read.source == "snap1" and read.rows == 3000
    assert read.bins == reference.bins
    for name, counts in reference.counts.items():
        np.testing.assert_array_equal(read.counts[name], counts)
    np.testing.assert_array_equal(read.cells, reference.cells)


def test_a_changed_reference_file_is_refused(tmp_path: Path) -> None:
    path = Reference.from_rows(pricing_rows(500, seed=6), PRICING_SCHEMA).write(tmp_path)
    data = json.loads(path.read_text())
    data["counts"]["price_ratio"][1] += 1
    path.write_text(json.dumps(data))
    with pytest.raises(IntegrityError):
        Reference.read(path)
    path.write_text("{not json")
    with pytest.raises(IntegrityError):
        Reference.read(path)
    with pytest.raises(NotFoundError):
        Reference.read(tmp_path / "missing")


def _examples(rows: list[dict[str, FeatureValue]]) -> list[Example]:
    return [
        Example(
            event_id=f"e{i:05d}",
            features=row,
            action_ids=ACTIONS,
            action_id=ACTIONS[i % len(ACTIONS)],
            propensity=0.2,
            reward=0.0,
            reward_spec="r1",
            ts=1000.0 + i,
            unit_id=f"user-{i}",
        )
        for i, row in enumerate(rows)
    ]


def test_snapshot_logged_data_and_rows_give_one_reference(tmp_path: Path) -> None:
    rows = pricing_rows(1500, seed=8)
    examples = _examples(rows)
    info = write_snapshot(examples, tmp_path)
    from_snapshot = Reference.from_snapshot(info.path, PRICING_SCHEMA)
    logged = LoggedData.from_examples(examples, PRICING_SCHEMA, PRICING_ACTIONS)
    from_logged = Reference.from_logged(logged)
    from_rows = Reference.from_rows(rows, PRICING_SCHEMA, actions=[e.action_id for e in examples])
    assert from_snapshot.source == info.content_id
    for other in (from_logged, from_rows):
        assert other.bins == from_snapshot.bins
        for name, counts in from_snapshot.counts.items():
            np.testing.assert_array_equal(other.counts[name], counts, err_msg=name)
        np.testing.assert_array_equal(other.cells, from_snapshot.cells)


def test_the_grid_crosses_what_the_logged_actions_depend_on() -> None:
    rows = pricing_rows(5000, seed=4)
    logged = [ACTIONS[0] if float(r["competitor_ratio"]) > 1.0 else ACTIONS[1] for r in rows]
    config = ReferenceConfig(grid_features=1)
    informed = Reference.from_rows(rows, PRICING_SCHEMA, config, actions=logged)
    numeric = [b.name for b in informed.grid.features if b.kind in ("float", "int")]
    assert numeric == ["competitor_ratio"]
    assert {"weekend", "segment"} <= set(informed.grid.names)


def test_a_small_reference_gets_a_coarse_grid() -> None:
    small = Reference.from_rows(pricing_rows(200, seed=9), PRICING_SCHEMA)
    filled = np.prod([b.size - 1 for b in small.grid.features])
    assert filled <= 200 // ReferenceConfig().rows_per_cell
    assert int(small.cell_counts.sum()) == 200


INVALID: list[tuple[Callable[[], object], str]] = [
    (lambda: FeatureBinning("x", "float", edges=(2.0, 1.0)), "bins.x.edges"),
    (lambda: FeatureBinning("x", "bool", edges=(1.0,)), "bins.x.edges"),
    (lambda: FeatureBinning("x", "category"), "bins.x.categories"),
    (lambda: FeatureBinning("x", "text"), "bins.x.kind"),  # type: ignore[arg-type]  # the point
    (lambda: FeatureBins(()), "bins"),
    (lambda: FeatureBins.fit(SMALL, prepare_rows(SMALL.features, []), bins=0), "bins"),
    (lambda: prepare_columns(SMALL.features, {"x": [1.0]}, 2), "features.x"),
    (lambda: prepare_columns(SMALL.features, {"seg": np.array([1.0])}, 1), "features.seg"),
    (lambda: Reference.from_rows([], SMALL), "rows"),
    (lambda: Reference.from_matrix(np.zeros((3, 2)), SMALL), "features"),
    (lambda: ReferenceConfig(max_cells=0), "max_cells"),
    (
        lambda: Reference.from_rows([{"x": 1.0}], SMALL, ReferenceConfig(grid_names=("nope",))),
        "features.nope",
    ),
    (lambda: Reference.from_json({"format": "something else"}), "format"),
    (lambda: Reference.from_rows([{"x": 1.0}], SMALL, actions=["a", "b"]), "actions"),
    (lambda: Reference.from_matrix(np.zeros((1, 5)), SMALL, actions=np.array([-1])), "actions"),
]


@pytest.mark.parametrize(("build", "field"), INVALID)
def test_invalid_inputs_name_the_field(build: Callable[[], object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        build()
    assert caught.value.field == field
