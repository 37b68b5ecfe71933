"""Redis Streams transport: publish, consume, acknowledge, claim, dead letters, trim."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest
import redis

from rlops.core.errors import ValidationError
from rlops.stream.codec import (
    UndecodableError,
    decode,
    decode_entry,
    encode_decision,
    encode_decisions,
    encode_outcome,
)
from rlops.stream.config import StreamConfig, parse_stream_url
from rlops.stream.consumer import RedisConsumer
from rlops.stream.partition import partition_of
from rlops.stream.publisher import RedisPublisher
from rlops.stream.redis_client import VolatileStreamError
from tests.factories import decision, outcome
from tests.serving.redis_server import PrivateRedis
from tests.stream.conftest import stream_config


def _pub(config: StreamConfig, closing: list[Any]) -> RedisPublisher:
    publisher = RedisPublisher(config)
    closing.append(publisher)
    return publisher


def test_url_settings_and_refusals() -> None:
    config = parse_stream_url(
        "redis://h:1/2?stream=s&partitions=3&group=g&claim_idle=5&allow_volatile=1"
    )
    assert (config.redis_url, config.stream, config.partitions, config.group) == (
        "redis://h:1/2",
        "s",
        3,
        "g",
    )
    assert config.claim_idle == 5.0 and config.allow_volatile
    assert config.keys == ("s:0", "s:1", "s:2") and config.dead_key == "s:dead"
    for url, field in [
        ("redis://h?partitions=0", "partitions"),
        ("redis://h?partitions=x", "partitions"),
        ("redis://h?claim_idle=0", "claim_idle"),
        ("redis://h?allow_volatile=maybe", "allow_volatile"),
        ("redis://h?colour=red", "colour"),
        ("sqlite:///x.db", "transport"),
    ]:
        with pytest.raises(ValidationError) as error:
            parse_stream_url(url)
        assert error.value.field == field, url


def test_partition_is_a_stable_hash_shared_by_an_event_and_its_outcomes() -> None:
    # CRC-32 values, fixed across processes and releases (Python's hash() is salted)
    assert [partition_of(f"e{i:06d}", 8) for i in range(8)] == [1, 7, 5, 3, 0, 6, 4, 2]
    assert partition_of("order-17", 16) == 4
    counts = [0] * 8
    for i in range(8000):
        counts[partition_of(f"e{i:06d}", 8)] += 1
    assert min(counts) > 800  # spread evenly enough: each near 1000
    d, o = decision(42), outcome(7, 42)
    assert partition_of(d.event_id, 8) == partition_of(o.event_id, 8)


def test_codec_round_trip_and_refusals() -> None:
    d, o = decision(3), outcome(1, 3)
    assert decode({b"d": encode_decision(d)}) == d
    assert decode({b"o": encode_outcome(o)}) == o
    bad_propensity = msgspec.msgpack.encode(
        [*msgspec.msgpack.decode(encode_decision(d))[:9], 2.0, False]
    )
    for fields in (
        {b"d": b"\xc1junk"},
        {b"d": bad_propensity},
        {b"o": encode_decision(d)},
        {b"x": b"1"},
        {b"d": encode_decision(d), b"o": encode_outcome(o)},
    ):
        with pytest.raises(UndecodableError) as error:
            decode(fields)
        assert error.value.field == "message"


def test_publish_consume_ack(durable_redis: PrivateRedis, closing: list[Any]) -> None:
    config = stream_config(durable_redis)
    publisher = RedisPublisher(config)
    closing.append(publisher)
    decisions = [decision(i) for i in range(50)]
    outcomes = [outcome(i, i) for i in range(0, 50, 2)]
    assert publisher.append_decisions(decisions).inserted == 50
    assert publisher.append_outcomes(outcomes).inserted == 25
    client = redis.Redis.from_url(config.redis_url)
    closing.append(client)
    # each record sits in its event's partition, one entry per partition and batch
    entries = 0
    for p, key in enumerate(config.keys):
        for _id, fields in client.xrange(key):
            entries += 1
            decoded = decode_entry(fields)
            assert decoded.refused == [] and decoded.records
            assert {partition_of(r.event_id, 4) for r in decoded.records} == {p}
    assert entries <= 2 * len(config.keys)
    consumer = RedisConsumer(config, name="a")
    closing.append(consumer)
    batch = consumer.read(1000)
    assert sorted(batch.decisions, key=lambda d: d.event_id) == decisions
    assert sorted(batch.outcomes, key=lambda o: o.outcome_id) == outcomes
    assert batch.entries == entries and consumer.pending() == entries
    consumer.ack(batch)
    assert consumer.pending() == 0 and consumer.read(1000, block=False).entries == 0


def consumer_entries(config: StreamConfig, n: int) -> int:
    """Entries one published batch of decisions 0..n-1 makes: one per partition touched."""
    return len({partition_of(decision(i).event_id, config.partitions) for i in range(n)})


def test_a_stale_consumers_entries_are_claimed_by_another(
    durable_redis: PrivateRedis, closing: list[Any]
) -> None:
    config = stream_config(durable_redis)
    _pub(config, closing).append_decisions([decision(i) for i in range(20)])
    dead = RedisConsumer(config, name="dead")
    closing.append(dead)
    taken = dead.read(1000)  # read, never acknowledged: the worker "died"
    assert len(taken.decisions) == 20 and taken.entries == consumer_entries(config, 20)
    other = RedisConsumer(config, name="other")
    closing.append(other)
    assert other.read(1000, block=False).entries == 0  # not stale yet
    time.sleep(config.claim_idle + 0.05)
    other._last_claim = float("-inf")
    claimed = other.read(1000, block=False)
    assert claimed.claimed == taken.entries and len(claimed.decisions) == 20
    other.ack(claimed)
    assert other.pending() == 0 and other.claimed == taken.entries


def test_a_batch_entry_refuses_its_bad_records_alone() -> None:
    good = [decision(i) for i in range(3)]
    wires = msgspec.msgpack.decode(encode_decisions(good))
    wires[1][9] = 2.0  # propensity out of (0, 1]
    decoded = decode_entry({b"D": msgspec.msgpack.encode(wires)})
    assert decoded.records == [good[0], good[2]]
    [(index, why)] = decoded.refused
    assert index == 1 and "`propensity`" in why
    assert decode_entry({b"D": encode_decisions(good)}).records == good
    with pytest.raises(UndecodableError):
        decode_entry({b"D": b"\xc1junk"})
    misplaced = decode_entry({b"O": encode_decisions(good)})  # decisions as outcomes
    assert misplaced.records == [] and [i for i, _ in misplaced.refused] == [0, 1, 2]


def test_a_bad_record_in_a_published_batch_is_dead_lettered_and_the_rest_logged(
    durable_redis: PrivateRedis, closing: list[Any]
) -> None:
    config = stream_config(durable_redis)
    client = redis.Redis.from_url(config.redis_url)
    closing.append(client)
    wires = msgspec.msgpack.decode(encode_decisions([decision(1), decision(2)]))
    wires[0][0] = ""  # an empty event id
    client.xadd(config.key(0), {b"D": msgspec.msgpack.encode(wires)})
    consumer = RedisConsumer(config, name="a")
    closing.append(consumer)
    batch = consumer.read(1000)
    assert batch.decisions == [decision(2)] and len(batch.dead) == 1
    assert batch.dead[0].error.startswith("record 0:")
    consumer.ack(batch)
    assert consumer.pending() == 0 and len(client.xrange(config.dead_key)) == 1


def test_undecodable_entries_go_to_dead_letters_and_are_acked(
    durable_redis: PrivateRedis, closing: list[Any]
) -> None:
    config = stream_config(durable_redis)
    client = redis.Redis.from_url(config.redis_url)
    closing.append(client)
    _pub(config, closing).append_decisions([decision(1)])
    client.xadd(config.key(0), {b"d": b"\xc1not msgpack"})
    client.xadd(config.key(1), {b"x": b"1"})
    consumer = RedisConsumer(config, name="a")
    closing.append(consumer)
    batch = consumer.read(1000)
    assert len(batch.decisions) == 1 and len(batch.dead) == 2
    consumer.ack(batch)
    assert consumer.pending() == 0 and consumer.dead_letters == 2
    letters = client.xrange(config.dead_key)
    assert len(letters) == 2
    by_source = {f[b"source"]: f for _id, f in letters}
    assert by_source[config.key(0).encode()][b"raw:d"] == b"\xc1not msgpack"
    assert b"DecodeError" in by_source[config.key(0).encode()][b"error"]
    assert by_source[config.key(1).encode()][b"raw:x"] == b"1"


def test_trim_removes_only_what_every_group_acknowledged(
    durable_redis: PrivateRedis, closing: list[Any]
) -> None:
    config = stream_config(durable_redis, "&partitions=1")
    client = redis.Redis.from_url(config.redis_url)
    closing.append(client)
    publisher = RedisPublisher(config)
    consumer = RedisConsumer(config, name="a")
    closing.append(consumer)
    for i in range(10):  # ten published batches: ten entries
        publisher.append_decisions([decision(i)])
    first = consumer.read(4)  # 4 delivered, pending
    assert first.entries == 4
    assert consumer.trim() == 0  # the oldest entry is still pending
    consumer.ack(first)
    assert consumer.trim() == 3  # all but the last delivered go
    assert client.xlen(config.key(0)) == 7
    consumer.ack(consumer.read(100))
    consumer.trim()
    assert client.xlen(config.key(0)) == 1
    # a second group that has read nothing holds everything back
    for i in range(10, 15):
        publisher.append_decisions([decision(i)])
    client.xgroup_create(config.key(0), "audit", id="0")
    consumer.ack(consumer.read(100))
    assert consumer.trim() == 0 and client.xlen(config.key(0)) == 6


def test_a_lost_group_is_recreated_from_zero(
    volatile_redis: PrivateRedis, closing: list[Any]
) -> None:
    config = stream_config(volatile_redis, "&allow_volatile=1")
    publisher = RedisPublisher(config)
    closing.append(publisher)
    consumer = RedisConsumer(config, name="a")
    publisher.append_decisions([decision(1)])
    consumer.ack(consumer.read(100))
    volatile_redis.stop()
    volatile_redis.start()  # came back empty: no stream, no group
    publisher.append_decisions([decision(2), decision(3)])
    batch = consumer.read(100)
    assert sorted(d.event_id for d in batch.decisions) == ["e000002", "e000003"]
    assert consumer.group_created == 4 + 4 and consumer.reconnects >= 0


def test_a_volatile_redis_is_refused_unless_allowed(
    volatile_redis: PrivateRedis, closing: list[Any]
) -> None:
    config = stream_config(volatile_redis)
    for make in (RedisPublisher, RedisConsumer):
        with pytest.raises(VolatileStreamError) as error:
            closing.append(make(config))
        assert error.value.field == "transport" and "appendonly" in error.value.message
    client = redis.Redis.from_url(config.redis_url)
    closing.append(client)
    assert client.keys("*") == []  # refused before touching anything
