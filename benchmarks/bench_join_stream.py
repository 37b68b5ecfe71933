"""Join throughput through Redis Streams with 1, 2 and 4 worker processes.

Publishes N decisions and an outcome for every other one (N examples) as servers do, in
batches of 1,000 (one entry per partition and batch), then runs ``rlops join --workers W
--transport redis://...`` until every example is in a fresh SQLite log. Our figure is N
over both times together (process start-up included). The baseline, in the same run
with the same client, is what ``redis-benchmark`` measures: one message per record
through bare pipelined XADD, then XREADGROUP and XACK, expressed in the same unit (one
decision plus its outcomes = one example).
Uses the shared Redis (127.0.0.1:6379, or RLOPS_REDIS_URL) under a unique stream name,
deleted afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from benchmarks.common import BenchResult
from rlops.core.records import Decision, Outcome
from rlops.store import open_log
from rlops.stream.codec import encode_decision, encode_outcome
from rlops.stream.config import StreamConfig, parse_stream_url
from rlops.stream.partition import partition_of
from rlops.stream.publisher import RedisPublisher

REDIS_URL = os.environ.get("RLOPS_REDIS_URL", "redis://127.0.0.1:6379/0")
RLOPS = str(Path(sys.executable).parent / "rlops")
N = int(os.environ.get("BENCH_JOIN_STREAM_N", "200000"))
PUBLISH_BATCH = 1000
ACTIONS = ("a", "b", "c")


def records(n: int) -> tuple[list[Decision], list[Outcome]]:
    decisions = [
        Decision(
            event_id=f"e{i:08d}", ts=1000.0 + i, app="pricing", unit_id=f"u{i % 97}",
            arm="control", policy_version="v1",
            features={"x": float(i), "seg": "s1", "n": i % 3, "flag": i % 2 == 0},
            action_ids=ACTIONS, action_id=ACTIONS[i % 3], propensity=1 / 3,
        )
        for i in range(n)
    ]  # fmt: skip
    outcomes = [
        Outcome(f"o{i:08d}", f"e{i:08d}", 1001.0 + i, {"converted": 1.0, "margin_rate": 0.2})
        for i in range(0, n, 2)
    ]
    return decisions, outcomes


def _cleanup(client: redis.Redis[bytes], config: StreamConfig) -> None:
    client.delete(*config.keys, config.dead_key)


def raw_rate(config: StreamConfig, decisions: list[Decision], outcomes: list[Outcome]) -> float:
    """Examples/s through bare XADD + XREADGROUP + XACK of the same encoded messages."""
    client: redis.Redis[bytes] = redis.Redis.from_url(config.redis_url)
    entries = [
        (config.key(partition_of(d.event_id, config.partitions)), b"d", encode_decision(d))
        for d in decisions
    ]
    entries += [
        (config.key(partition_of(o.event_id, config.partitions)), b"o", encode_outcome(o))
        for o in outcomes
    ]
    for key in config.keys:
        client.xgroup_create(key, "raw", id="0", mkstream=True)
    start = time.perf_counter()
    for i in range(0, len(entries), 1000):
        pipe = client.pipeline(transaction=False)
        for key, field, payload in entries[i : i + 1000]:
            pipe.xadd(key, {field: payload})
        pipe.execute()
    seen = 0
    streams = dict.fromkeys(config.keys, ">")
    while seen < len(entries):
        reply = client.xreadgroup("raw", "c", streams, count=1000 // config.partitions + 1)
        pipe = client.pipeline(transaction=False)
        for key, got in reply:
            pipe.xack(key, "raw", *[entry_id for entry_id, _ in got])
            seen += len(got)
        pipe.execute()
    elapsed = time.perf_counter() - start
    _cleanup(client, config)
    client.close()
    return len(decisions) / elapsed


def publish(config_url: str, decisions: list[Decision], outcomes: list[Outcome]) -> float:
    """Publish as servers do, in batches: decisions, then the outcomes of those decisions
    (``outcomes[k]`` belongs to decision ``2k``); returns the seconds it took."""
    publisher = RedisPublisher(parse_stream_url(config_url))
    start = time.perf_counter()
    for i in range(0, len(decisions), PUBLISH_BATCH):
        publisher.append_decisions(decisions[i : i + PUBLISH_BATCH])
        publisher.append_outcomes(outcomes[i // 2 : (i + PUBLISH_BATCH) // 2])
    elapsed = time.perf_counter() - start
    publisher.close()
    return elapsed


def stream_rate(
    config_url: str, decisions: list[Decision], outcomes: list[Outcome], workers: int
) -> float:
    """Examples/s from the first XADD until the last example is in the log: publishing,
    then ``rlops join --workers W`` (process start-up included) draining the stream."""
    config = parse_stream_url(config_url)
    published = publish(config_url, decisions, outcomes)
    with tempfile.TemporaryDirectory() as tmp:
        log_url = f"sqlite:///{tmp}/log.db"
        open_log(log_url).close()
        start = time.perf_counter()
        done = subprocess.run(
            [RLOPS, "join", "--workers", str(workers), "--transport", config_url, "--log", log_url,
             "--app", "pricing", "--batch-size", "5000"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        with open_log(log_url) as log:
            stats = log.stats()
    client: redis.Redis[bytes] = redis.Redis.from_url(config.redis_url)
    _cleanup(client, config)
    client.close()
    assert stats.examples_current == len(decisions), stats
    return len(decisions) / (published + elapsed)


def run() -> list[BenchResult]:
    decisions, outcomes = records(N)
    results = []
    base = f"{REDIS_URL}?partitions=8&allow_volatile=1&stream=rlops-bench-{uuid.uuid4().hex[:8]}"
    raw = raw_rate(parse_stream_url(base + "-raw"), decisions, outcomes)
    for workers in (1, 2, 4):
        rate = stream_rate(f"{base}-{workers}", decisions, outcomes, workers)
        results.append(
            BenchResult(
                name=f"join.stream.redis.workers{workers}", value=rate, unit="examples/s",
                baseline="bare XADD+XREADGROUP+XACK, one message per record, same client",
                baseline_value=raw, ratio=rate / raw,
                target=">= 20000/s and >= 0.3x raw",
                passed=rate >= 20_000 and rate / raw >= 0.3,
            )
        )  # fmt: skip
    for r in results:
        print(f"{r.name}: {r.value:,.0f} {r.unit} vs {r.baseline_value:,.0f} (ratio {r.ratio:.2f})")
    return results
