"""Redis specifics: the fixed key layout, one round trip per lookup, corrupt rows, and
outages (a stopped server, a server that never answers) behind the circuit breaker."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import orjson
import pytest
import redis

from rlops.core.clock import ManualClock
from rlops.core.errors import RlopsError
from rlops.core.features import FeatureValue
from rlops.serving.feature_store import RedisFeatureStore, StoreUnavailableError
from tests.serving.redis_server import PrivateRedis, free_port

pytestmark = pytest.mark.redis

ROWS: dict[str, dict[str, FeatureValue]] = {
    "u1": {"price_ratio": 1.2},
    "u2": {"segment": "vip"},
    "u3": {"recent_views": 4},
}
IDS = list(ROWS)


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis[bytes]]:
    client: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def command_calls(client: redis.Redis[bytes]) -> dict[str, int]:
    """Calls per command since the last CONFIG RESETSTAT, without the test's own."""
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if name not in ("cmdstat_info", "cmdstat_config|resetstat")
    }


def timed_lookup(store: RedisFeatureStore) -> tuple[bool, float]:
    start = time.perf_counter()
    result = store.lookup(IDS)
    elapsed = time.perf_counter() - start
    if not result.available:
        assert result.rows == [None] * len(IDS)
    return result.available, elapsed


def test_layout_is_one_json_object_per_unit_with_its_ttl(
    redis_url: str, redis_prefix: str, raw: redis.Redis[bytes]
) -> None:
    """The benchmark and other writers rely on this exact layout."""
    store = RedisFeatureStore(redis_url, "pricing", prefix=redis_prefix)
    assert store.load_batch(ROWS, ttl_seconds=30.0) == 3
    assert store.key("u1") == f"{redis_prefix}:pricing:u1"
    assert orjson.loads(raw.get(f"{redis_prefix}:pricing:u2") or b"") == {"segment": "vip"}
    assert 29_000 < raw.pttl(f"{redis_prefix}:pricing:u1") <= 30_000
    raw.set(f"{redis_prefix}:pricing:u9", orjson.dumps({"weekend": True}))  # written directly
    assert store.lookup(["u9"]).rows == [{"weekend": True}]
    store.close()


def test_corrupt_rows_read_as_missing_and_are_counted(
    redis_url: str, redis_prefix: str, raw: redis.Redis[bytes]
) -> None:
    store = RedisFeatureStore(redis_url, "pricing", prefix=redis_prefix)
    store.load_batch({"good": {"a": 1}})
    raw.set(store.key("broken"), b"{not json")
    raw.set(store.key("list"), b"[1, 2]")
    result = store.lookup(["broken", "good", "list"])
    assert result.available and result.rows == [None, {"a": 1}, None]
    assert (store.corrupt, store.failures, store.lookups) == (2, 0, 1)
    store.close()


def test_a_lookup_is_one_mget_and_a_load_one_transaction(private_redis: PrivateRedis) -> None:
    store = RedisFeatureStore(private_redis.url, "pricing", socket_timeout=1.0)
    ids = [f"u{i}" for i in range(64)]
    store.load_batch({u: {"recent_views": i} for i, u in enumerate(ids)})
    store.lookup(ids)  # connects (the client may send setup commands once)
    admin: redis.Redis[bytes] = redis.Redis.from_url(private_redis.url)
    admin.config_resetstat()
    result = store.lookup(ids)
    assert command_calls(admin) == {"mget": 1}
    assert result.rows == [{"recent_views": i} for i in range(64)]
    admin.config_resetstat()
    store.load_batch({u: {"recent_views": 0} for u in ids}, ttl_seconds=5.0)
    assert command_calls(admin) == {"multi": 1, "set": 64, "exec": 1}
    admin.close()
    store.close()


def test_redis_stopped_mid_run_then_back(private_redis: PrivateRedis) -> None:
    """Stopped: lookups answer unavailable fast, failing once per retry window and
    short-circuiting between; loads fail loudly. Back: lookups resume by themselves."""
    clock = ManualClock(0.0)
    store = RedisFeatureStore(private_redis.url, "pricing", retry_seconds=1.0, clock=clock)
    store.load_batch(ROWS)
    assert store.lookup(IDS).rows == list(ROWS.values())

    private_redis.stop()
    available, elapsed = timed_lookup(store)
    assert not available and elapsed < 0.5
    assert (store.failures, store.short_circuits) == (1, 0)
    for _ in range(5):
        available, elapsed = timed_lookup(store)
        assert not available and elapsed < 0.5
    assert (store.failures, store.short_circuits) == (1, 5)  # no network while open

    clock.advance(1.0)  # the window has passed: one probe, which fails and reopens
    available, elapsed = timed_lookup(store)
    assert not available and elapsed < 0.5
    assert (store.failures, store.short_circuits) == (2, 5)
    assert timed_lookup(store)[0] is False
    assert store.short_circuits == 6

    with pytest.raises(StoreUnavailableError) as caught:
        store.load_batch(ROWS)
    assert caught.value.code == "store_unavailable" and isinstance(caught.value, RlopsError)
    assert "nothing was written" in caught.value.message

    private_redis.start()
    assert store.load_batch(ROWS) == 3  # the server restarted empty; the batch job reloads
    assert store.lookup(IDS).available is False  # still inside the window: no network
    assert store.failures == 2
    clock.advance(1.0)
    result = store.lookup(IDS)
    assert result.available and result.rows == list(ROWS.values())
    assert not store.breaker_open
    assert store.lookup(IDS).available
    assert (store.failures, store.short_circuits, store.lookups) == (2, 7, 12)
    store.close()


def test_lookups_resume_on_the_real_clock(private_redis: PrivateRedis) -> None:
    store = RedisFeatureStore(private_redis.url, "advisor", retry_seconds=0.2)
    store.load_batch(ROWS)
    private_redis.stop()
    assert store.lookup(IDS).available is False
    private_redis.start()
    store.load_batch(ROWS)
    time.sleep(0.25)
    assert store.lookup(IDS).rows == list(ROWS.values())
    store.close()


def test_a_server_that_never_answers_costs_one_socket_timeout() -> None:
    """A hung Redis (connection accepted, no reply) must not hang the event loop."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # the kernel completes handshakes; nobody ever replies
        port = listener.getsockname()[1]
        clock = ManualClock(0.0)
        store = RedisFeatureStore(f"redis://127.0.0.1:{port}/0", "pricing", clock=clock)
        for _ in range(3):
            start = time.perf_counter()
            assert store.lookup(IDS).available is False
            assert time.perf_counter() - start < 0.5
            clock.advance(1.0)
        assert store.failures == 3
        store.close()


def test_nothing_listening_is_unavailable_not_an_exception() -> None:
    store = RedisFeatureStore(f"redis://127.0.0.1:{free_port()}/0", "pricing")
    result = store.lookup(IDS)
    assert result == type(result)(rows=[None, None, None], available=False)
    with pytest.raises(StoreUnavailableError):
        store.load_batch(ROWS, ttl_seconds=1.0)
    store.close()


def test_bad_settings_are_refused() -> None:
    from rlops.core.errors import ValidationError

    for option, value in [
        ("socket_timeout", 0.0),
        ("retry_seconds", -1.0),
        ("load_timeout", float("inf")),
        ("prefix", ""),
    ]:
        with pytest.raises(ValidationError) as caught:
            RedisFeatureStore("redis://127.0.0.1:6379/0", "pricing", **{option: value})  # type: ignore[arg-type]  # bad on purpose
        assert caught.value.field == option


def test_the_private_server_restarts_on_its_port_and_persists_nothing(
    private_redis: PrivateRedis,
) -> None:
    client: redis.Redis[bytes] = redis.Redis.from_url(private_redis.url, socket_timeout=2.0)
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}
    client.set("k", b"v")
    port = private_redis.port
    private_redis.stop()
    assert not private_redis.is_running()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    private_redis.start()
    assert private_redis.port == port and private_redis.is_running()
    assert client.ping() and client.get("k") is None  # same client, fresh empty server
    client.close()
