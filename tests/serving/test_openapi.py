"""The OpenAPI document is accurate: schemathesis drives every route from it and finds no
5xx and no response that breaks the document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from starlette.applications import Starlette

from rlops.serving.server import create_app
from tests.serving.helpers import ADMIN, auth, register_mlp, server_config


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Starlette]:
    tmp: Path = tmp_path_factory.mktemp("openapi")
    config = server_config(tmp)
    register_mlp(config.registry)
    app = create_app(config)
    yield app
    app.state.server.close()


@pytest.fixture(scope="module")
def api_schema(api: Starlette) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", api)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_5xx_and_no_schema_violation(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=auth(ADMIN))


def test_the_document_describes_every_route(api: Starlette) -> None:
    from starlette.testclient import TestClient

    document = TestClient(api).get("/openapi.json").json()
    assert set(document["paths"]) == {
        "/v1/decisions",
        "/v1/decisions/batch",
        "/v1/outcomes",
        "/v1/policies",
        "/v1/policies/{alias}/promote",
        "/v1/policies/{alias}/rollback",
        "/v1/experiment",
        "/v1/experiment/shares",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    context = document["components"]["schemas"]["DecisionRequest"]["properties"]["context"]
    assert context["additionalProperties"] is False
    assert context["properties"]["price_ratio"] == {
        "type": "number", "minimum": 0.0, "maximum": 10.0,
        "description": "our current price / base price",
    }
