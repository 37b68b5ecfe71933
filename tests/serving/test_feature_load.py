"""Batch features from Parquet: checked whole before anything is written, then one batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from rlops.cli import app
from rlops.core.clock import ManualClock
from rlops.core.errors import ValidationError
from rlops.serving.feature_load import app_schema, load_features, read_feature_batch
from rlops.serving.feature_store import MemoryFeatureStore, RedisFeatureStore
from rlops.sim.advisor_core import ADVISOR_SCHEMA
from rlops.sim.pricing_core import PRICING_SCHEMA
from tests.serving.conftest import count_keys
from tests.serving.redis_server import free_port

runner = CliRunner()

GOOD: dict[str, list[Any]] = {
    "unit_id": ["p1", "p2", "p3"],
    "inventory_ratio": [0.5, None, 2.0],
    "segment": ["premium", "regular", None],
    "weekend": [True, False, None],
    "recent_views": [3, 0, 50],
}
EXPECTED = {
    "p1": {"inventory_ratio": 0.5, "segment": "premium", "weekend": True, "recent_views": 3},
    "p2": {"segment": "regular", "weekend": False, "recent_views": 0},
    "p3": {"inventory_ratio": 2.0, "recent_views": 50},
}


def write(path: Path, columns: dict[str, list[Any]]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def test_read_keeps_types_and_leaves_nulls_out(tmp_path: Path) -> None:
    rows = read_feature_batch(write(tmp_path / "f.parquet", GOOD), PRICING_SCHEMA)
    assert rows == EXPECTED
    assert type(rows["p1"]["recent_views"]) is int and type(rows["p1"]["weekend"]) is bool


def test_a_custom_key_column(tmp_path: Path) -> None:
    path = write(tmp_path / "f.parquet", {"user": ["a"], "horizon_years": [3]})
    assert read_feature_batch(path, ADVISOR_SCHEMA, key="user") == {"a": {"horizon_years": 3.0}}


BAD: list[tuple[str, dict[str, list[Any]], str, str]] = [
    ("unknown column", {**GOOD, "colour": ["r", "g", "b"]}, "column colour", "unknown column"),
    (
        "out of bounds",
        {**GOOD, "inventory_ratio": [0.5, -1.0, 2.0]},
        "row 1 column inventory_ratio",
        "outside",
    ),
    (
        "bad category",
        {**GOOD, "segment": ["premium", "gold", None]},
        "row 1 column segment",
        "must be one of",
    ),
    (
        "wrong type",
        {**GOOD, "recent_views": ["3", "0", "1"]},
        "row 0 column recent_views",
        "must be a number",
    ),
    ("duplicate id", {**GOOD, "unit_id": ["p1", "p2", "p1"]}, "row 2 column unit_id", "duplicate"),
    ("null id", {**GOOD, "unit_id": ["p1", None, "p3"]}, "row 1 column unit_id", "non-empty"),
    ("no key", {k: v for k, v in GOOD.items() if k != "unit_id"}, "column unit_id", "no key"),
    ("numeric key", {**GOOD, "unit_id": [1, 2, 3]}, "column unit_id", "strings"),
]


@pytest.mark.parametrize(("case", "columns", "field", "words"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_file_names_the_field_and_loads_nothing(
    tmp_path: Path, case: str, columns: dict[str, list[Any]], field: str, words: str
) -> None:
    path = write(tmp_path / "bad.parquet", columns)
    store = MemoryFeatureStore("pricing", clock=ManualClock())
    store.load_batch({"p1": {"segment": "regular"}})
    with pytest.raises(ValidationError) as caught:
        load_features(path, store, PRICING_SCHEMA, ttl_seconds=60.0)
    assert caught.value.field == field and words in caught.value.message, case
    assert store.lookup(["p1", "p2", "p3"]).rows == [{"segment": "regular"}, None, None]


def test_a_missing_or_broken_file_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        read_feature_batch(tmp_path / "absent.parquet", PRICING_SCHEMA)
    assert caught.value.field == "path"
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValidationError):
        read_feature_batch(tmp_path / "junk.parquet", PRICING_SCHEMA)


def test_app_schema() -> None:
    assert app_schema("pricing") is PRICING_SCHEMA and app_schema("advisor") is ADVISOR_SCHEMA
    with pytest.raises(ValidationError) as caught:
        app_schema("chess")
    assert caught.value.field == "app"


def load_args(path: Path, url: str, prefix: str, *extra: str) -> list[str]:
    return ["features", "load", str(path), "--app", "pricing", "--store", url,
            "--prefix", prefix, *extra]  # fmt: skip


@pytest.mark.redis
def test_cli_loads_a_file_into_redis(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    path = write(tmp_path / "f.parquet", GOOD)
    result = runner.invoke(app, load_args(path, redis_url, redis_prefix, "--ttl", "60"))
    assert result.exit_code == 0, result.output
    assert "loaded 3 units of pricing features" in result.output
    store = RedisFeatureStore(redis_url, "pricing", prefix=redis_prefix, socket_timeout=2.0)
    assert store.lookup(["p1", "p2", "p3"]).rows == list(EXPECTED.values())
    store.close()
    import redis

    client: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
    assert 55_000 < client.pttl(f"{redis_prefix}:pricing:p1") <= 60_000
    client.close()


@pytest.mark.redis
@pytest.mark.parametrize(("case", "columns", "field", "words"), BAD, ids=[b[0] for b in BAD])
def test_cli_refuses_a_bad_file_and_writes_nothing(
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    case: str,
    columns: dict[str, list[Any]],
    field: str,
    words: str,
) -> None:
    first = write(tmp_path / "first.parquet", {"unit_id": ["p1", "old"], "recent_views": [9, 9]})
    assert runner.invoke(app, load_args(first, redis_url, redis_prefix)).exit_code == 0
    before = count_keys(redis_url, redis_prefix)
    result = runner.invoke(app, load_args(write(tmp_path / "bad.parquet", columns), redis_url,
                                          redis_prefix))  # fmt: skip
    assert result.exit_code == 2, case
    assert "invalid_input" in result.stderr and words in result.stderr
    assert field.split()[-1] in result.stderr  # the column is named
    assert count_keys(redis_url, redis_prefix) == before == 2
    store = RedisFeatureStore(redis_url, "pricing", prefix=redis_prefix, socket_timeout=2.0)
    assert store.lookup(["p1", "p2"]).rows == [{"recent_views": 9}, None]
    store.close()


def test_cli_refuses_an_unknown_app_and_a_down_store(tmp_path: Path) -> None:
    path = write(tmp_path / "f.parquet", GOOD)
    unknown = runner.invoke(app, ["features", "load", str(path), "--app", "chess"])
    assert unknown.exit_code == 2 and "unknown app 'chess'" in unknown.stderr
    down = f"redis://127.0.0.1:{free_port()}/0"
    result = runner.invoke(
        app, ["features", "load", str(path), "--app", "pricing", "--store", down]
    )
    assert result.exit_code == 2 and "store_unavailable" in result.stderr
    assert "nothing was written" in result.stderr
    bad_ttl = runner.invoke(
        app, ["features", "load", str(path), "--app", "pricing", "--store", "memory", "--ttl", "-1"]
    )
    assert bad_ttl.exit_code == 2 and "ttl_seconds" in bad_ttl.stderr


def test_cli_memory_store_only_checks(tmp_path: Path) -> None:
    path = write(tmp_path / "f.parquet", GOOD)
    result = runner.invoke(app, ["features", "load", str(path), "--app", "pricing", "--store",
                                 "memory"])  # fmt: skip
    assert result.exit_code == 0 and "loaded 3 units" in result.output
    assert "nothing persists" in result.output
