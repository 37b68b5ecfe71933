"""The server through a real HTTP client: contract, errors, auth, admin, fallback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from rlops.core.errors import ValidationError
from rlops.registry.registry import Registry
from rlops.serving.experiments import Arm, Experiment, save_experiment
from rlops.serving.server import Server, ServerConfig, create_app
from rlops.serving.writer import OverloadedError
from rlops.store import open_log
from tests.serving.helpers import ADMIN, DECIDE, OUTCOMES, auth, register_mlp, server_config


@pytest.fixture
def config(tmp_path: Path) -> ServerConfig:
    return server_config(tmp_path)


def client_for(config: ServerConfig) -> TestClient:
    return TestClient(create_app(config), raise_server_exceptions=False)


@pytest.fixture
def client(config: ServerConfig) -> Iterator[TestClient]:
    with client_for(config) as c:
        yield c


def server_of(client: TestClient) -> Server:
    app = client.app
    assert isinstance(app, Starlette)
    server: Server = app.state.server
    return server


def logged(config: ServerConfig) -> dict[str, Any]:
    log = open_log(config.log)
    try:
        return {d.event_id: d for d in log.decisions()}
    finally:
        log.close()


def metric(client: TestClient, name: str, **labels: str) -> float:
    """The value of one Prometheus series from /metrics (0 if absent)."""
    text = client.get("/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric_name, _, rest = series.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if metric_name == name and got == want:
            return float(value)
    return 0.0


# -- a fresh directory serves the rules -------------------------------------------------


def test_a_fresh_directory_serves_the_baseline_rules_and_logs_what_it_used(
    client: TestClient, config: ServerConfig
) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    response = client.post(
        "/v1/decisions", json={"unit_id": "sku-1", "context": {"price_ratio": 1.3}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "event_id",
        "action_id",
        "propensity",
        "policy_version",
        "arm",
        "explored",
        "fallback",
    }
    with Registry.open(config.registry) as registry:
        production = registry.require_alias("pricing", "production")
    assert body["policy_version"] == production.version
    assert body["arm"] == "production" and body["fallback"] is False
    assert body["propensity"] == 1.0  # the rules are deterministic
    stored = logged(config)[body["event_id"]]
    assert stored.action_id == body["action_id"] and stored.propensity == 1.0
    assert stored.features["price_ratio"] == 1.3  # the request's value
    assert stored.features["inventory_ratio"] == 1.0  # the schema default, as used
    assert (
        metric(client, "rlops_feature_defaults_total", app="pricing", feature="inventory_ratio")
        == 1.0
    )


def test_batch_decisions_keep_request_order_and_are_all_logged(
    client: TestClient, config: ServerConfig
) -> None:
    requests = [{"unit_id": f"u{i}", "context": {"price_ratio": 0.8 + 0.1 * i}} for i in range(5)]
    response = client.post("/v1/decisions/batch", json={"requests": requests})
    assert response.status_code == 200, response.text
    decisions = response.json()["decisions"]
    stored = logged(config)
    assert [stored[d["event_id"]].unit_id for d in decisions] == [f"u{i}" for i in range(5)]
    assert len(stored) == 5


def test_outcomes_one_or_many_are_logged_once(client: TestClient, config: ServerConfig) -> None:
    event = client.post("/v1/decisions", json={"unit_id": "u"}).json()["event_id"]
    one = {"outcome_id": "o-1", "event_id": event, "signals": {"converted": 1, "margin_rate": 0.2}}
    assert client.post("/v1/outcomes", json=one).json() == {"accepted": 1}
    many = [one, {"outcome_id": "o-2", "event_id": event, "ts": 5.0, "signals": {"x": 0.5}}]
    response = client.post("/v1/outcomes", json=many)
    assert response.status_code == 202 and response.json() == {"accepted": 2}
    log = open_log(config.log)
    outcomes = {o.outcome_id: o for o in log.outcomes()}
    log.close()
    assert set(outcomes) == {"o-1", "o-2"} and outcomes["o-2"].ts == 5.0


# -- bad input: JSON errors naming the field, nothing written ---------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/v1/decisions", {"unit_id": "u", "context": {"colour": 1}}, 422, "context.colour"),
        (
            "/v1/decisions",
            {"unit_id": "u", "context": {"price_ratio": "x"}},
            422,
            "context.price_ratio",
        ),
        (
            "/v1/decisions",
            {"unit_id": "u", "context": {"price_ratio": 99.0}},
            422,
            "context.price_ratio",
        ),
        ("/v1/decisions", {"unit_id": "u", "context": {"weekend": [1]}}, 422, "context.weekend"),
        ("/v1/decisions", {"context": {}}, 422, "unit_id"),
        ("/v1/decisions", {"unit_id": ""}, 422, "unit_id"),
        ("/v1/decisions", {"unit_id": "u", "extra": 1}, 422, "extra"),
        ("/v1/decisions/batch", {"requests": []}, 422, "requests"),
        (
            "/v1/decisions/batch",
            {"requests": [{"unit_id": "a"}, {"unit_id": "b", "context": {"nope": 1}}]},
            422,
            "requests[1].context.nope",
        ),
        ("/v1/outcomes", {"outcome_id": "o", "event_id": "e", "signals": {}}, 422, "signals"),
        (
            "/v1/outcomes",
            [{"outcome_id": "o", "event_id": "e", "signals": {"": 1.0}}],
            422,
            "[0].signals",
        ),
        (
            "/v1/outcomes",
            {"outcome_id": "bad id!", "event_id": "e", "signals": {"x": 1}},
            422,
            "outcome_id",
        ),
    ],
)
def test_invalid_input_is_a_4xx_naming_the_field_and_changes_nothing(
    client: TestClient, config: ServerConfig, path: str, body: Any, status: int, field: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["code"] == "invalid_input" and error["field"] == field, error
    assert field.split(".")[-1].strip("[]0") in error["message"] or field in error["message"]
    assert logged(config) == {}


def test_malformed_json_unknown_routes_and_methods_are_json_errors(client: TestClient) -> None:
    bad = client.post(
        "/v1/decisions", content=b'{"unit_id": "u"', headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["code"] == "malformed_json"
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    wrong = client.get("/v1/decisions")
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"


def test_bodies_over_the_limit_are_refused_before_reading(tmp_path: Path) -> None:
    with client_for(server_config(tmp_path, body_bytes=200)) as client:
        big = {"unit_id": "u" * 100, "request_id": "r" * 150}
        response = client.post("/v1/decisions", json=big)
        assert response.status_code == 413 and response.json()["code"] == "too_large"
        chunked = client.post("/v1/decisions", content=iter([b"{" + b" " * 300 + b"}"]))
        assert chunked.status_code == 413
        too_many = {"requests": [{"unit_id": "u"}] * 1001}
        assert client.post("/v1/decisions/batch", json=too_many).status_code in (413, 422)
    assert logged(server_config(tmp_path)) == {}


# -- tokens ----------------------------------------------------------------------------------


def test_tokens_and_scopes(tmp_path: Path) -> None:
    from tests.serving.helpers import write_tokens

    config = server_config(tmp_path, tokens=str(write_tokens(tmp_path / "t.json", ())))
    with client_for(config) as client:
        body = {"unit_id": "u"}
        assert client.post("/v1/decisions", json=body).status_code == 401
        assert client.post("/v1/decisions", json=body, headers=auth(OUTCOMES)).status_code == 403
        denied = client.post("/v1/decisions", json=body, headers=auth("wrong"))
        assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
        assert denied.json()["code"] == "unauthorized"
        assert client.post("/v1/decisions", json=body, headers=auth(DECIDE)).status_code == 200
        assert client.get("/v1/policies").status_code == 401
        forbidden = client.get("/v1/policies", headers=auth(DECIDE))
        assert forbidden.status_code == 403 and forbidden.json()["code"] == "forbidden"
        assert client.get("/v1/policies", headers=auth(ADMIN)).status_code == 200
        # the docs and health stay open
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/healthz").status_code == 200


def test_admin_routes_need_a_token_even_when_decisions_are_open(client: TestClient) -> None:
    assert client.post("/v1/decisions", json={"unit_id": "u"}).status_code == 200
    assert client.get("/v1/policies").status_code == 401
    assert client.post("/v1/policies/production/rollback", json={"reason": "x"}).status_code == 401


# -- promotion and rollback over HTTP -------------------------------------------------------


def test_promote_and_rollback_over_http_switch_what_is_served(
    client: TestClient, config: ServerConfig
) -> None:
    baseline = client.post("/v1/decisions", json={"unit_id": "u"}).json()["policy_version"]
    version = register_mlp(config.registry)
    refused = client.post(
        "/v1/policies/production/promote",
        json={"version": version, "reason": "better"},
        headers=auth(ADMIN),
    )
    assert refused.status_code == 422 and refused.json()["field"] == "gate"
    moved = client.post(
        "/v1/policies/production/promote",
        json={"version": version, "force": True, "reason": "test", "expected_revision": 1},
        headers=auth(ADMIN),
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["serving"][0]["serving_version"] == version
    served = client.post("/v1/decisions", json={"unit_id": "u"}).json()
    assert served["policy_version"] == version and served["fallback"] is False
    stale = client.post(
        "/v1/policies/production/rollback",
        json={"expected_revision": 1, "reason": "stale"},
        headers=auth(ADMIN),
    )
    assert stale.status_code == 409 and stale.json()["code"] == "conflict"
    back = client.post(
        "/v1/policies/production/rollback", json={"reason": "test"}, headers=auth(ADMIN)
    )
    assert back.status_code == 200 and back.json()["version"] == baseline
    assert client.post("/v1/decisions", json={"unit_id": "u"}).json()["policy_version"] == baseline
    listing = client.get("/v1/policies", headers=auth(ADMIN)).json()
    assert listing["aliases"][0]["version"] == baseline and listing["baseline_version"] == baseline
    unknown = client.post(
        "/v1/policies/production/promote",
        json={"version": "nope", "force": True, "reason": "x"},
        headers=auth(ADMIN),
    )
    assert unknown.status_code == 404


# -- experiments, fallback, exploration -------------------------------------------------


def test_arms_are_sticky_logged_and_reshaped_at_run_time(tmp_path: Path) -> None:
    path = tmp_path / "experiment.json"
    save_experiment(
        path,
        Experiment(
            name="canary",
            salt="s1",
            arms=(Arm("control", "production", 0.5), Arm("canary", "candidate", 0.5)),
        ),
    )
    config = server_config(tmp_path, experiment=str(path), watch=True)
    version = register_mlp(config.registry)
    with client_for(config) as client:
        # production is bootstrapped; candidate exists once promoted, and the watcher sees it
        with Registry.open(config.registry) as registry:
            registry.promote("pricing", version, alias="candidate", reason="canary")
        service = server_of(client).service
        deadline = time.monotonic() + 10
        while service.serving_version("candidate") != version and time.monotonic() < deadline:
            time.sleep(0.02)
        first = {
            u: client.post("/v1/decisions", json={"unit_id": f"u{u}"}).json() for u in range(40)
        }
        arms = {d["arm"] for d in first.values()}
        assert arms == {"control", "canary"}
        again = {
            u: client.post("/v1/decisions", json={"unit_id": f"u{u}"}).json() for u in range(40)
        }
        assert all(first[u]["arm"] == again[u]["arm"] for u in range(40))
        canary = [d for d in first.values() if d["arm"] == "canary"]
        assert canary and all(d["policy_version"] == version and not d["fallback"] for d in canary)
        control = [d for d in first.values() if d["arm"] == "control"]
        assert all(d["policy_version"] == service.baseline.version for d in control)
        moved = client.post(
            "/v1/experiment/shares",
            json={"shares": {"control": 1.0, "canary": 0.0}},
            headers=auth(ADMIN),
        )
        assert moved.status_code == 200, moved.text
        after = [client.post("/v1/decisions", json={"unit_id": f"u{u}"}).json() for u in range(40)]
        assert {d["arm"] for d in after} == {"control"}
        bad = client.post(
            "/v1/experiment/shares", json={"shares": {"nope": 1.0}}, headers=auth(ADMIN)
        )
        assert bad.status_code == 404 and bad.json()["field"] == "shares.nope"
    stored = logged(config)
    assert {d.arm for d in stored.values()} == {"control", "canary"}


def test_a_missing_policy_falls_back_to_the_rules_and_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "experiment.json"
    save_experiment(
        path,
        Experiment("e", "s", arms=(Arm("canary", "candidate", 1.0),)),
    )
    config = server_config(tmp_path, experiment=str(path))
    with client_for(config) as client:
        assert client.get("/readyz").status_code == 503
        response = client.post("/v1/decisions", json={"unit_id": "u"})
        assert response.status_code == 200
        body = response.json()
        assert body["fallback"] is True and body["arm"] == "canary"
        assert body["policy_version"] == server_of(client).service.baseline.version
        assert (
            metric(client, "rlops_fallbacks_total", app="pricing", arm="canary", reason="missing")
            == 1.0
        )


def test_a_policy_that_raises_falls_back_and_never_5xx(
    client: TestClient, config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = register_mlp(config.registry, promote_to="production")
    service = server_of(client).service
    with Registry.open(config.registry) as registry:
        service.follow(registry.require_alias("pricing", "production"))
    assert client.post("/v1/decisions", json={"unit_id": "u"}).json()["policy_version"] == version
    handle = service.handle("production")
    assert handle is not None
    policy = handle.current.policy

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise FloatingPointError("a NaN in layer 2")

    monkeypatch.setattr(type(policy), "scores", broken)
    response = client.post("/v1/decisions", json={"unit_id": "u"})
    assert response.status_code == 200 and response.json()["fallback"] is True
    assert response.json()["policy_version"] == service.baseline.version
    assert (
        metric(client, "rlops_fallbacks_total", app="pricing", arm="production", reason="error")
        == 1.0
    )


def test_a_damaged_production_artifact_is_not_served(tmp_path: Path) -> None:
    config = server_config(tmp_path)
    version = register_mlp(config.registry, promote_to="production")
    with Registry.open(config.registry) as registry:
        weights = registry.root / registry.version("pricing", version).path / "weights.npz"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with client_for(config) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "IntegrityError" in json.dumps(ready.json())
        body = client.post("/v1/decisions", json={"unit_id": "u"}).json()
        assert body["fallback"] is True and body["policy_version"] != version
        assert (
            metric(client, "rlops_policy_load_failures_total", app="pricing", alias="production")
            == 1.0
        )


def test_the_draw_is_seeded_by_request_id_and_the_propensity_is_the_served_probability(
    tmp_path: Path,
) -> None:
    exploration = {"kind": "epsilon", "schedule": {"kind": "constant", "start": 0.5}}
    config = server_config(tmp_path, exploration=exploration)
    register_mlp(config.registry, promote_to="production")
    with client_for(config) as client:
        k = len(server_of(client).service.catalog)
        replies = [
            client.post("/v1/decisions", json={"unit_id": "u", "request_id": f"r{i % 10}"}).json()
            for i in range(200)
        ]
    by_request: dict[str, set[tuple[str, float]]] = {}
    for i, r in enumerate(replies):
        by_request.setdefault(f"r{i % 10}", set()).add((r["action_id"], r["propensity"]))
    assert all(len(v) == 1 for v in by_request.values())  # same request id, same draw
    greedy, other = 0.5 + 0.5 / k, 0.5 / k
    for r in replies:
        expected = other if r["explored"] else greedy
        assert r["propensity"] == pytest.approx(expected)


def test_store_features_are_used_and_the_request_wins(
    client: TestClient, config: ServerConfig
) -> None:
    store = server_of(client).service.store
    assert store is not None
    store.load_batch({"sku-9": {"inventory_ratio": 0.2, "price_ratio": 1.1}})
    body = client.post(
        "/v1/decisions", json={"unit_id": "sku-9", "context": {"price_ratio": 0.9}}
    ).json()
    stored = logged(config)[body["event_id"]]
    assert stored.features["inventory_ratio"] == 0.2 and stored.features["price_ratio"] == 0.9


# -- the log cannot keep up: 503 with Retry-After, nothing acknowledged is lost ----------


def test_overload_is_503_with_retry_after(
    client: TestClient, config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = server_of(client).writer

    def full(*args: Any, **kwargs: Any) -> None:
        raise OverloadedError("50000 records are waiting", retry_after=2.0)

    monkeypatch.setattr(writer, "submit", full)
    response = client.post("/v1/decisions", json={"unit_id": "u"})
    assert response.status_code == 503 and response.headers["retry-after"] == "2"
    assert response.json()["code"] == "overloaded"
    outcome = {"outcome_id": "o", "event_id": "e", "signals": {"x": 1.0}}
    assert client.post("/v1/outcomes", json=outcome).status_code == 503
    assert (
        metric(client, "rlops_requests_refused_total", route="decisions", reason="overloaded")
        == 1.0
    )


def test_a_failing_log_is_503_not_ready_and_recovers(
    client: TestClient, config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = server_of(client).writer.sink
    assert sink is not None
    real = sink.append_decisions

    def disk_full(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(sink, "append_decisions", disk_full)
    failed = client.post("/v1/decisions", json={"unit_id": "u"})
    assert failed.status_code == 503 and failed.json()["code"] == "log_unavailable"
    assert client.get("/readyz").status_code == 503
    monkeypatch.setattr(sink, "append_decisions", real)
    ok = client.post("/v1/decisions", json={"unit_id": "u"})
    assert ok.status_code == 200
    assert list(logged(config)) == [ok.json()["event_id"]]
    assert client.get("/readyz").status_code == 200


def test_unknown_server_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="colour"):
        ServerConfig.from_json({"colour": "blue"})


def test_exploration_can_be_limited_to_one_arm_and_one_segment(tmp_path: Path) -> None:
    from rlops.exploration.explorer import ExplorationConfig
    from rlops.exploration.schedules import Schedule

    path = tmp_path / "experiment.json"
    uniform = ExplorationConfig("epsilon", Schedule("constant", start=1.0))
    save_experiment(
        path,
        Experiment(
            "e",
            "s",
            arms=(
                Arm("quiet", "production", 0.5),
                Arm("explore", "production", 0.5, uniform, {"segment": "bargain"}),
            ),
        ),
    )
    config = server_config(tmp_path, experiment=str(path))
    register_mlp(config.registry, promote_to="production")
    with client_for(config) as client:
        k = len(server_of(client).service.catalog)
        replies = [
            (
                segment,
                client.post(
                    "/v1/decisions",
                    json={"unit_id": f"u{i}", "context": {"segment": segment}},
                ).json(),
            )
            for i in range(120)
            for segment in ("bargain", "regular")
        ]
    for segment, reply in replies:
        if reply["arm"] == "explore" and segment == "bargain":
            assert reply["propensity"] == pytest.approx(1.0 / k)  # epsilon 1: uniform
        else:
            assert reply["propensity"] == 1.0 and reply["explored"] is False
    explored = [r for s, r in replies if r["arm"] == "explore" and s == "bargain"]
    assert len(explored) > 20 and any(r["explored"] for r in explored)


def test_a_policy_that_returns_nan_falls_back_without_failing_the_batch(
    client: TestClient, config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    register_mlp(config.registry, promote_to="production")
    service = server_of(client).service
    with Registry.open(config.registry) as registry:
        service.follow(registry.require_alias("pricing", "production"))
    handle = service.handle("production")
    assert handle is not None
    policy = handle.current.policy

    def nan_scores(self: Any, features: Any, actions: Any) -> Any:
        return np.full((len(features), len(actions)), np.nan)

    monkeypatch.setattr(type(policy), "scores", nan_scores)
    batch = {"requests": [{"unit_id": f"u{i}"} for i in range(5)]}
    response = client.post("/v1/decisions/batch", json=batch)
    assert response.status_code == 200, response.text
    assert all(d["fallback"] for d in response.json()["decisions"])
    assert service.alias_of("production") == "production"
    assert service.alias_of("an-arm-that-ended") is None


def test_readiness_stays_down_while_decisions_fail_even_if_outcomes_commit(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = server_of(client).writer
    sink = writer.sink
    assert sink is not None

    def disk_full(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(sink, "append_decisions", disk_full)
    assert client.post("/v1/decisions", json={"unit_id": "u"}).status_code == 503
    outcome = {"outcome_id": "o1", "event_id": "e1", "signals": {"x": 1.0}}
    assert client.post("/v1/outcomes", json=outcome).status_code == 202
    assert client.get("/readyz").status_code == 503
