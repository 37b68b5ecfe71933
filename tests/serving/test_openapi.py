"""The OpenAPI document is accurate: schemathesis drives every route from it and finds no
5xx and no response that breaks the document."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from starlette.applications import Starlette

from rlops.serving.server import create_app
from tests.serving.helpers import ADMIN, auth, register_mlp, server_config

# schemathesis's pytest plugin needs the schema at collection time (its fixture loader
# breaks under pytest 9), so the app is built when the module is imported.
_DIRECTORY = Path(tempfile.mkdtemp(prefix="rlops-openapi-"))
_CONFIG = server_config(_DIRECTORY)
register_mlp(_CONFIG.registry)
API = create_app(_CONFIG)


async def _without_lifespan(scope: Any, receive: Any, send: Any) -> None:
    """The app, with lifespan events answered here: the test client starts and stops a
    lifespan around every call, and a real shutdown closes the log."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await API(scope, receive, send)


schema = schemathesis.openapi.from_asgi("/openapi.json", _without_lifespan)


@pytest.fixture(scope="module", autouse=True)
def _close_the_app() -> Iterator[None]:
    yield
    API.state.server.close()
    shutil.rmtree(_DIRECTORY, ignore_errors=True)


@pytest.fixture
def api() -> Starlette:
    return API


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_5xx_and_no_schema_violation(case: schemathesis.Case[Any]) -> None:
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
        "/dashboard",
    }
    context = document["components"]["schemas"]["DecisionRequest"]["properties"]["context"]
    assert context["additionalProperties"] is False
    assert context["properties"]["price_ratio"] == {
        "type": "number",
        "minimum": 0.0,
        "maximum": 10.0,
        "description": "our current price / base price",
    }
