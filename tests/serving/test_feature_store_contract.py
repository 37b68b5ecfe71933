"""The feature store contract: every backend passes the same assertions.

Memory runs on a manual clock; Redis runs on the shared server with a key prefix of its
own and real (short) TTLs.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from rlops.core.clock import ManualClock
from rlops.core.errors import ValidationError
from rlops.core.features import FeatureValue
from rlops.serving.feature_store import (
    FeatureStore,
    MemoryFeatureStore,
    RedisFeatureStore,
    open_feature_store,
)


@dataclass(frozen=True)
class Case:
    store: FeatureStore
    expire: Callable[[float], object]  # let this many seconds of the store's time pass


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    if request.param == "memory":
        clock = ManualClock(1000.0)
        memory = MemoryFeatureStore("pricing", clock=clock)
        yield Case(memory, clock.advance)
        memory.close()
        return
    url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    # generous read timeouts: this machine is shared, and the contract is not about outages
    store = RedisFeatureStore(url, "pricing", prefix=prefix, socket_timeout=2.0)
    yield Case(store, time.sleep)
    store.close()


def test_lookup_returns_rows_in_order_with_none_for_missing(case: Case) -> None:
    loaded = case.store.load_batch({"u1": {"x": 1.5, "seg": "vip"}, "u2": {"n": 3, "b": True}})
    assert loaded == 2
    result = case.store.lookup(["u2", "nobody", "u1", "u2"])
    assert result.available
    assert result.rows == [{"n": 3, "b": True}, None, {"x": 1.5, "seg": "vip"}, {"n": 3, "b": True}]
    # types survive the round trip: 3 stays an int, True a bool, 1.5 a float
    row = result.rows[0]
    assert row is not None and type(row["n"]) is int and type(row["b"]) is bool
    assert case.store.lookup([]).rows == []


def test_overwrite_replaces_the_whole_row(case: Case) -> None:
    case.store.load_batch({"u1": {"a": 1, "b": 2}, "u2": {"a": 5}})
    case.store.load_batch({"u1": {"a": 3}})
    assert case.store.lookup(["u1", "u2"]).rows == [{"a": 3}, {"a": 5}]


def test_rows_expire_after_their_ttl(case: Case) -> None:
    case.store.load_batch({"short": {"a": 1}}, ttl_seconds=0.2)
    case.store.load_batch({"forever": {"a": 2}})
    case.store.load_batch({"long": {"a": 3}}, ttl_seconds=60.0)
    assert case.store.lookup(["short", "forever", "long"]).rows == [{"a": 1}, {"a": 2}, {"a": 3}]
    case.expire(0.4)
    assert case.store.lookup(["short", "forever", "long"]).rows == [None, {"a": 2}, {"a": 3}]


def test_an_overwrite_without_ttl_keeps_the_row(case: Case) -> None:
    case.store.load_batch({"u": {"a": 1}}, ttl_seconds=0.2)
    case.store.load_batch({"u": {"a": 2}})
    case.expire(0.4)
    assert case.store.lookup(["u"]).rows == [{"a": 2}]


def test_a_returned_row_is_a_copy(case: Case) -> None:
    case.store.load_batch({"u": {"a": 1}})
    row = case.store.lookup(["u"]).rows[0]
    assert row is not None
    row["a"] = 99
    assert case.store.lookup(["u"]).rows == [{"a": 1}]


@pytest.mark.parametrize(
    ("rows", "ttl", "field"),
    [
        ({"u": {"a": float("nan")}}, None, "rows.u.a"),
        ({"u": {"a": [1, 2]}}, None, "rows.u.a"),
        ({"u": {"a": None}}, None, "rows.u.a"),
        ({"": {"a": 1}}, None, "rows"),
        ({"u": [("a", 1)]}, None, "rows.u"),
        ({"u": {"a": 1}}, 0.0, "ttl_seconds"),
        ({"u": {"a": 1}}, -5.0, "ttl_seconds"),
        ({"u": {"a": 1}}, float("inf"), "ttl_seconds"),
    ],
)
def test_a_bad_batch_is_refused_and_writes_nothing(
    case: Case, rows: dict[str, object], ttl: float | None, field: str
) -> None:
    batch = {"first": {"a": 1}, **rows}
    with pytest.raises(ValidationError) as caught:
        case.store.load_batch(batch, ttl_seconds=ttl)  # type: ignore[arg-type]  # bad on purpose
    assert caught.value.field == field
    assert case.store.lookup(["first", "u"]).rows == [None, None]


def test_an_empty_batch_loads_nothing(case: Case) -> None:
    assert case.store.load_batch({}) == 0


def test_readers_see_all_of_a_batch_or_none_of_it(case: Case) -> None:
    """A reader hammering lookups during loads never sees two batch versions at once.

    Loads run back to back while the reader reads, and the interpreter switches threads
    every 10 microseconds, so a load that wrote row by row would be caught half done.
    """
    ids = [f"unit-{i}" for i in range(5000)]
    case.store.load_batch({u: {"version": 0, "i": i} for i, u in enumerate(ids)})
    seen: list[set[FeatureValue | None]] = []
    errors: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            rows = case.store.lookup(ids).rows
            versions = {None if row is None else row["version"] for row in rows}
            seen.append(versions)
            if len(versions) != 1 or None in versions:
                errors.append(f"mixed batch: versions {sorted(map(str, versions))}")
                return

    batches = [{u: {"version": v, "i": i} for i, u in enumerate(ids)} for v in range(1, 13)]
    interval = sys.getswitchinterval()
    reader = threading.Thread(target=read)
    sys.setswitchinterval(1e-5)
    try:
        reader.start()
        for batch in batches:
            assert case.store.load_batch(batch) == 5000
    finally:
        done.set()
        reader.join(timeout=30)
        sys.setswitchinterval(interval)
    assert not errors, errors[0]
    observed = {v for versions in seen for v in versions}
    assert len(observed) >= 3, f"the reader saw too few batches to test anything: {observed}"


def test_open_feature_store_by_url() -> None:
    memory = open_feature_store("memory", "pricing")
    assert isinstance(memory, MemoryFeatureStore) and memory.app == "pricing"
    assert isinstance(open_feature_store("memory://", "advisor"), MemoryFeatureStore)
    redis_store = open_feature_store("redis://127.0.0.1:6379/0", "pricing", prefix="p")
    assert isinstance(redis_store, RedisFeatureStore)
    redis_store.close()  # never connected: opening does not touch the network


@pytest.mark.parametrize(
    ("url", "app", "field"),
    [
        ("postgres://x", "pricing", "features"),
        ("", "pricing", "features"),
        ("memory", "bad app!", "app"),
        ("redis://127.0.0.1:notaport/0", "pricing", "features"),
    ],
)
def test_open_feature_store_refuses(url: str, app: str, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        open_feature_store(url, app)
    assert caught.value.field == field
