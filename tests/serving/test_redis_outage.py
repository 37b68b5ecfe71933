"""Redis stopped mid-run: decisions go on with schema defaults (counted); Redis back:
lookups resume by themselves."""

from __future__ import annotations

import time
from pathlib import Path

from starlette.testclient import TestClient

from rlops.serving.feature_store import RedisFeatureStore
from rlops.serving.server import create_app
from tests.serving.helpers import server_config
from tests.serving.redis_server import PrivateRedis
from tests.serving.test_http import logged, metric, server_of

ROWS = {f"sku-{i}": {"inventory_ratio": 0.25, "sales_velocity": 7.0} for i in range(20)}


def test_decisions_survive_a_redis_outage_and_lookups_resume(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    config = server_config(tmp_path, features=private_redis.url)
    with TestClient(create_app(config)) as client:
        store = server_of(client).service.store
        assert isinstance(store, RedisFeatureStore)
        store.load_batch(ROWS, ttl_seconds=600)

        def decide(unit: str) -> dict[str, object]:
            response = client.post("/v1/decisions", json={"unit_id": unit})
            assert response.status_code == 200, response.text
            return dict(response.json())

        before = decide("sku-1")
        private_redis.stop()
        started = time.perf_counter()
        during = [decide(f"sku-{i}") for i in range(2, 12)]
        elapsed = time.perf_counter() - started
        assert elapsed < 3.0  # the breaker answers at once after the first timeout
        assert metric(client, "rlops_feature_store_unavailable_total", app="pricing") == 10.0
        assert (
            metric(client, "rlops_feature_defaults_total", app="pricing", feature="inventory_ratio")
            == 10.0
        )

        private_redis.start()  # an empty Redis (it keeps nothing on disk): reload the batch
        time.sleep(1.05)  # the breaker's retry window (1 s by default)
        deadline = time.monotonic() + 5
        while True:
            store.load_batch(ROWS, ttl_seconds=600)
            after = decide("sku-15")
            if logged(config)[str(after["event_id"])].features["inventory_ratio"] == 0.25:
                break
            assert time.monotonic() < deadline, "lookups did not resume"
            time.sleep(0.1)

    by_id = logged(config)
    assert by_id[str(before["event_id"])].features["inventory_ratio"] == 0.25
    for d in during:
        used = by_id[str(d["event_id"])]
        assert used.features["inventory_ratio"] == 1.0  # the schema default, as logged
        assert used.features["sales_velocity"] == 0.0
