"""Parquet snapshots: content ids, identical arrays on read-back, tamper detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from rlops.core import Example, Feature, FeatureSchema, IntegrityError, ValidationError
from rlops.store.snapshot import read_snapshot, write_snapshot

SCHEMA = FeatureSchema.of(
    [
        Feature("x"),
        Feature("n", "int", default=0),
        Feature("seg", "category", categories=("s1", "s2")),
    ]
)


def examples(n: int = 20) -> list[Example]:
    rng = np.random.default_rng(0)
    return [
        Example(
            event_id=f"e{i:04d}",
            features={"x": float(rng.normal()), "n": i % 3, "seg": "s1" if i % 2 else "s2"},
            action_ids=("a", "b"),
            action_id="ab"[i % 2],
            propensity=0.5,
            reward=float(rng.normal()),
            reward_spec="h1",
            late=i % 5 == 0,
            app="pricing",
            ts=1000.0 + i,
            revision=i % 2,
            n_outcomes=i % 3,
            defaulted=i % 3 == 0,
            signals={} if i % 3 == 0 else {"converted": 1.0},
            components={} if i % 3 == 0 else {"conversion_margin": 0.3},
        )
        for i in range(n)
    ]


def test_snapshot_reads_back_identical_records_and_arrays(tmp_path: Path) -> None:
    data = examples()
    info = write_snapshot(data, tmp_path)
    snap = read_snapshot(info.path)
    assert snap.info.content_id == info.content_id and info.rows == len(data)
    assert snap.examples() == sorted(data, key=lambda e: e.event_id)
    np.testing.assert_array_equal(snap.rewards, [e.reward for e in data])
    np.testing.assert_array_equal(snap.propensities, [e.propensity for e in data])
    np.testing.assert_array_equal(snap.features(SCHEMA), SCHEMA.matrix([e.features for e in data]))
    assert snap.action_ids == [e.action_id for e in data]


def test_content_id_depends_on_data_not_order_or_time(tmp_path: Path) -> None:
    data = examples()
    a = write_snapshot(data, tmp_path / "a")
    b = write_snapshot(list(reversed(data)), tmp_path / "b")
    assert a.content_id == b.content_id
    changed = [
        *data[:-1],
        Example(**{**data[-1].to_json(), "reward": 9.0, "action_ids": ("a", "b")}),
    ]
    assert write_snapshot(changed, tmp_path / "c").content_id != a.content_id


def test_tampered_snapshot_is_refused(tmp_path: Path) -> None:
    info = write_snapshot(examples(), tmp_path)
    table = pq.read_table(info.path)
    rewards = table.column("reward").to_pylist()
    rewards[3] += 1.0
    tampered = table.set_column(table.schema.get_field_index("reward"), "reward", [rewards])
    pq.write_table(tampered, info.path)
    with pytest.raises(IntegrityError, match="content id"):
        read_snapshot(info.path)


def test_bad_snapshot_inputs() -> None:
    with pytest.raises(ValidationError):
        write_snapshot([], "/tmp/never")
    twice = examples(2)[:1] * 2
    with pytest.raises(ValidationError, match="duplicate"):
        write_snapshot(twice, "/tmp/never")
