"""The two reference servers of ``bench_server``: the stack's ceiling and the seed design.

``noop_app`` is the least a Python JSON endpoint can do under our server settings: bare
Starlette reads the request's JSON body and answers a fixed object. Whatever a decision
adds (validation, features, policy, logging) shows as distance below it.

``seed_app`` is the design rlops replaces, written the way it was: FastAPI with pydantic
request and response models and a Stable-Baselines3 ``predict`` per request, logging
nothing. Its handler is ``async`` so the baseline does not pay a thread-pool hop per
request on top of its real costs. The model path comes from ``RLOPS_BENCH_SEED_MODEL``,
read in the factory, and the model loads in the lifespan, so importing this module
needs neither torch nor the file.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from rlops.sim.pricing_core import PRICING_ACTIONS, PRICING_SCHEMA

SEED_MODEL_ENV = "RLOPS_BENCH_SEED_MODEL"


async def _noop(request: Request) -> Response:
    body = await request.json()
    return JSONResponse({"ok": True, "unit_id": body["unit_id"]})


async def _readyz(request: Request) -> Response:
    return PlainTextResponse("ready")


noop_app = Starlette(
    routes=[Route("/noop", _noop, methods=["POST"]), Route("/readyz", _readyz, methods=["GET"])]
)


class SeedRequest(BaseModel):
    unit_id: str
    context: dict[str, float | int | bool | str]


class SeedDecision(BaseModel):
    unit_id: str
    action_id: str


def seed_app() -> FastAPI:
    """The seed server (a uvicorn ``--factory``)."""
    path = os.environ[SEED_MODEL_ENV]
    models: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from stable_baselines3 import PPO

        models["ppo"] = PPO.load(path, device="cpu")
        yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/decisions", response_model=SeedDecision)
    async def decide(request: SeedRequest) -> SeedDecision:
        obs = PRICING_SCHEMA.vector(request.context)
        action, _ = models["ppo"].predict(obs, deterministic=True)
        return SeedDecision(unit_id=request.unit_id, action_id=PRICING_ACTIONS.ids[int(action)])

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app
