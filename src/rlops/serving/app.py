"""The HTTP shell: decode, authorise, call the service, encode. Nothing else lives here.

Every route is a plain Starlette endpoint with msgspec bodies. On this machine a no-op
route inside a FastAPI application answered about 23% fewer requests per second than the
same route on bare Starlette (FastAPI's extra middleware), and a pydantic model costs
several times a whole no-op request, so the hot path cannot afford either. What FastAPI
would give, an OpenAPI document and its Swagger page, is generated here from the same
msgspec types the endpoints decode with (:mod:`rlops.serving.openapi`), so the document
describes every route as it behaves; the page is FastAPI's Swagger UI helper.

Every error is JSON ``{code, message, field}``: 400 malformed JSON, 401/403 tokens, 404,
405, 409 conflicts, 413 too large, 422 invalid input, 503 (with Retry-After) when the log
cannot take more. A valid decision request never gets a 5xx: the service falls back to
the baseline rules, and only the log refusing a write (nothing acknowledged) is a 503.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.openapi.docs import get_swagger_ui_html
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from rlops.core.actions import check_id
from rlops.core.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    RlopsError,
    ValidationError,
)
from rlops.core.records import Outcome
from rlops.serving import wire
from rlops.serving.auth import AuthError, Scope, TokenBook
from rlops.serving.front import DecisionFront
from rlops.serving.openapi import openapi_document
from rlops.serving.service import DecisionService
from rlops.serving.writer import LogUnavailableError, OverloadedError

log = logging.getLogger(__name__)
JSON = "application/json"
#: The built-in dashboard (charts drawn in the browser from this server's /metrics).
DASHBOARD = Path(__file__).resolve().parent.parent / "monitoring" / "dashboard.html"


@dataclass(frozen=True, slots=True)
class Limits:
    """Request size limits in bytes (a batch may be larger than one decision)."""

    body_bytes: int = 64 * 1024
    batch_body_bytes: int = 4 * 1024 * 1024


class TooLargeError(RlopsError):
    code = "too_large"


_STATUS: tuple[tuple[type[RlopsError], int], ...] = (
    (AuthError, 401),
    (TooLargeError, 413),
    (NotFoundError, 404),
    (ConflictError, 409),
    (IntegrityError, 409),
    (OverloadedError, 503),
    (LogUnavailableError, 503),
    (ValidationError, 422),
)


@dataclass(frozen=True, slots=True)
class Call:
    """What a handler gets: the body (read within the route's limit), the token's name,
    and the path parameters."""

    body: bytes
    actor: str | None
    params: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: tuple[tuple[bytes, bytes], ...] = ()


def json_reply(body: Any, status: int = 200) -> Reply:
    return Reply(status, wire.encode(body))


def error_reply(error: RlopsError) -> Reply:
    status = next((s for kind, s in _STATUS if isinstance(error, kind)), 400)
    code = error.code
    if isinstance(error, AuthError):
        status = error.status
    elif isinstance(error, ValidationError) and error.field == "body":
        status, code = 400, "malformed_json"
    headers: tuple[tuple[bytes, bytes], ...] = ()
    if isinstance(error, OverloadedError):
        headers = ((b"retry-after", str(max(1, round(error.retry_after))).encode()),)
    elif isinstance(error, LogUnavailableError):
        headers = ((b"retry-after", b"1"),)
    elif status == 401:
        headers = ((b"www-authenticate", b"Bearer"),)
    body = wire.ErrorBody(code=code, message=error.message, field=error.field)
    return Reply(status, wire.encode(body), headers=headers)


async def read_body(receive: Receive, headers: list[tuple[bytes, bytes]], limit: int) -> bytes:
    """The body, refused with 413 past ``limit`` bytes before or while reading it."""
    for name, value in headers:
        if name == b"content-length":
            if not value.isdigit():
                raise ValidationError("Content-Length is not a number", field="content-length")
            if int(value) > limit:
                raise TooLargeError(
                    f"the body is {int(value)} bytes; the limit is {limit}", field="body"
                )
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            raise ValidationError("the client disconnected", field="body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLargeError(f"the body exceeds the limit of {limit} bytes", field="body")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


Handler = Callable[[Call], Awaitable[Reply]]


class Endpoint:
    """One route as a bare ASGI application: auth, body limit, errors as JSON, latency.

    Starlette's ``Request``/``Response`` objects and its function-endpoint wrapper cost
    more per request than our whole decision; the router still matches paths and
    methods (404/405), and this does the rest on the raw ASGI messages.
    """

    def __init__(
        self, api: Api, route: str, scope: Scope | None, handler: Handler, limit: int
    ) -> None:
        self.api = api
        self.route = route
        self.scope = scope
        self.handler = handler
        self.limit = limit
        self.metrics = api.service.metrics
        self.latency = self.metrics.latency.labels(route)

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        try:
            actor = None
            if self.scope is not None:
                authorization = next(
                    (v.decode("latin-1") for k, v in headers if k == b"authorization"), None
                )
                actor = self.api.tokens.authorize(authorization, self.scope)
            body = (
                await read_body(receive, headers, self.limit) if scope["method"] != "GET" else b""
            )
            reply = await self.handler(Call(body, actor, scope.get("path_params", {})))
        except RlopsError as error:
            reply = error_reply(error)
            if isinstance(error, OverloadedError | LogUnavailableError):
                self.metrics.refused.labels(self.route, error.code).inc()
            else:
                self.metrics.client_errors.labels(self.route, error.code).inc()
        except Exception:  # a bug: still JSON, still counted, never a stack trace
            log.exception("%s failed", self.route)
            body_ = wire.ErrorBody(code="internal_error", message="internal error")
            reply = Reply(500, wire.encode(body_))
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    (b"content-type", reply.content_type),
                    (b"content-length", str(len(reply.body)).encode()),
                    *reply.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})
        self.latency.observe(time.perf_counter() - started)


class Api:
    """The routes over one service; ``app()`` assembles the ASGI application."""

    def __init__(
        self,
        service: DecisionService,
        front: DecisionFront,
        tokens: TokenBook,
        limits: Limits = Limits(),
        *,
        lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self.service = service
        self.front = front
        self.tokens = tokens
        self.limits = limits
        self._lifespan = lifespan
        self._openapi: dict[str, Any] | None = None

    # -- decisions and outcomes -----------------------------------------------------------

    async def decision(self, call: Call) -> Reply:
        req: wire.DecisionRequest = wire.decode(wire.DECISION, call.body)
        context = self._checked(req)
        (decided,) = await self.front.decide([(req.unit_id, context, req.request_id)])
        return json_reply(_response(decided))

    async def decision_batch(self, call: Call) -> Reply:
        batch: wire.DecisionBatchRequest = wire.decode(wire.DECISION_BATCH, call.body)
        items = []
        for i, req in enumerate(batch.requests):
            try:
                context = self._checked(req)
            except ValidationError as error:
                raise ValidationError(
                    f"requests[{i}].{error.message}", field=f"requests[{i}].{error.field}"
                ) from None
            items.append((req.unit_id, context, req.request_id))
        decided = await self.front.decide(items)
        return json_reply(wire.DecisionBatchResponse([_response(d) for d in decided]))

    def _checked(self, req: wire.DecisionRequest) -> dict[str, Any]:
        wire.require_utf8(req.unit_id, "unit_id")
        if req.request_id is not None:
            wire.require_utf8(req.request_id, "request_id")
        return self.service.check(req.context)

    async def outcomes(self, call: Call) -> Reply:
        decoded = wire.decode(wire.OUTCOMES, call.body)
        many = isinstance(decoded, list)
        received = time.time()
        records = []
        for i, item in enumerate(decoded if many else [decoded]):
            try:
                for name in item.signals:
                    wire.require_utf8(name, f"signals.{name!a}")
                records.append(
                    Outcome(
                        outcome_id=item.outcome_id,
                        event_id=item.event_id,
                        ts=received if item.ts is None else item.ts,
                        signals=item.signals,
                    )
                )
            except ValidationError as error:
                field = f"[{i}].{error.field}" if many else error.field
                raise ValidationError(f"{field}: {error.message}", field=field) from None
        accepted = await self.front.record_outcomes(records)
        return json_reply(wire.OutcomeAccepted(accepted), status=202)

    # -- health and metrics ---------------------------------------------------------------

    async def healthz(self, call: Call) -> Reply:
        return json_reply(wire.Health(status="ok"))

    async def readyz(self, call: Call) -> Reply:
        ready, checks = self.service.readiness()
        return json_reply(
            wire.Health(status="ready" if ready else "not_ready", checks=checks),
            status=200 if ready else 503,
        )

    async def metrics(self, call: Call) -> Reply:
        self.service.metrics.pending.set(self.service.writer.pending)
        text = generate_latest(self.service.metrics.registry)
        return Reply(200, text, content_type=CONTENT_TYPE_LATEST.encode())

    # -- administration -------------------------------------------------------------------

    def _arms(self) -> list[wire.ArmState]:
        return [
            wire.ArmState(
                name=arm.name,
                alias=arm.alias,
                share=arm.share,
                serving_version=self.service.serving_version(arm.alias),
                fallback=self.service.serving_version(arm.alias) is None,
            )
            for arm in self.service.router.experiment.arms
        ]

    async def policies(self, call: Call) -> Reply:
        service = self.service
        aliases = [
            wire.AliasState(
                alias=a.alias,
                version=a.version,
                revision=a.revision,
                loaded_version=service.serving_version(a.alias),
            )
            for a in service.registry.aliases(service.name)
        ]
        return json_reply(
            wire.PoliciesResponse(
                name=service.name,
                app=service.app,
                baseline_version=service.baseline.version,
                aliases=aliases,
                arms=self._arms(),
                experiment=service.router.experiment.to_json(),
            )
        )

    def _moved(self, record: Any) -> Reply:
        return json_reply(
            wire.AliasMoved(
                name=record.name,
                alias=record.alias,
                version=record.version,
                revision=record.revision,
                serving=self._arms(),
            )
        )

    async def promote(self, call: Call) -> Reply:
        alias = check_id(call.params["alias"], "alias")
        body: wire.PromoteRequest = wire.decode(wire.PROMOTE, call.body)
        record = self.service.promote(
            alias,
            body.version,
            actor=f"http:{call.actor}",
            reason=body.reason,
            force=body.force,
            expected_revision=wire.revision(body.expected_revision),
        )
        return self._moved(record)

    async def rollback(self, call: Call) -> Reply:
        alias = check_id(call.params["alias"], "alias")
        body: wire.RollbackRequest = wire.decode(wire.ROLLBACK, call.body)
        record = self.service.rollback(
            alias,
            actor=f"http:{call.actor}",
            reason=body.reason,
            expected_revision=wire.revision(body.expected_revision),
        )
        return self._moved(record)

    async def experiment(self, call: Call) -> Reply:
        return json_reply(self.service.router.experiment.to_json())

    async def set_shares(self, call: Call) -> Reply:
        body: wire.SharesRequest = wire.decode(wire.SHARES, call.body)
        return json_reply(
            self.service.set_shares(
                body.shares, expected_revision=wire.revision(body.expected_revision)
            )
        )

    # -- assembly -------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        if self._openapi is None:
            self._openapi = openapi_document(self.service.schema, self.tokens)
        return self._openapi

    def app(self) -> Starlette:
        small, large = self.limits.body_bytes, self.limits.batch_body_bytes
        routes: list[tuple[str, str, Scope | None, Handler, str]] = [
            ("/v1/decisions", "decisions", "decide", self.decision, "POST"),
            ("/v1/decisions/batch", "decisions_batch", "decide", self.decision_batch, "POST"),
            ("/v1/outcomes", "outcomes", "outcomes", self.outcomes, "POST"),
            ("/healthz", "healthz", None, self.healthz, "GET"),
            ("/readyz", "readyz", None, self.readyz, "GET"),
            ("/metrics", "metrics", None, self.metrics, "GET"),
            ("/v1/policies", "policies", "admin", self.policies, "GET"),
            ("/v1/policies/{alias}/promote", "promote", "admin", self.promote, "POST"),
            ("/v1/policies/{alias}/rollback", "rollback", "admin", self.rollback, "POST"),
            ("/v1/experiment", "experiment", "admin", self.experiment, "GET"),
            ("/v1/experiment/shares", "set_shares", "admin", self.set_shares, "POST"),
        ]

        async def document(request: Request) -> Response:
            return Response(wire.encode(self.document()), media_type=JSON)

        dashboard_html = DASHBOARD.read_text()

        async def dashboard(request: Request) -> HTMLResponse:
            return HTMLResponse(dashboard_html)

        async def docs(request: Request) -> HTMLResponse:
            return get_swagger_ui_html(openapi_url="/openapi.json", title="rlops policy server")

        endpoints = [
            (
                path,
                method,
                Endpoint(
                    self,
                    name,
                    scope,
                    handler,
                    large if "batch" in name or name == "outcomes" else small,
                ),
            )
            for path, name, scope, handler, method in routes
        ]
        return ServerApp(
            fast_paths={
                (method, path): endpoint for path, method, endpoint in endpoints if "{" not in path
            },
            routes=[
                *(Route(path, endpoint, methods=[method]) for path, method, endpoint in endpoints),
                Route("/openapi.json", document, methods=["GET"]),
                Route("/docs", docs, methods=["GET"]),
                Route("/dashboard", dashboard, methods=["GET"]),
            ],
            exception_handlers={HTTPException: _http_error},
            lifespan=self._lifespan,
        )


class ServerApp(Starlette):
    """Starlette, with exact-path routes answered before its middleware and router.

    Each ``send`` through Starlette's two exception middlewares passes two Python
    wrappers; with the router's matching, that was a third of a decision's cost on the
    event loop. :class:`Endpoint` catches every exception itself, so for a known method
    and path the stack adds nothing; anything else (404, 405, path parameters, the
    documentation) goes through Starlette as usual.
    """

    def __init__(
        self, *args: Any, fast_paths: dict[tuple[str, str], Endpoint], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fast_paths = fast_paths

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.fast_paths.get((scope["method"], scope["path"]))
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _response(decided: Any) -> wire.DecisionResponse:
    d = decided.decision
    return wire.DecisionResponse(
        event_id=d.event_id,
        action_id=d.action_id,
        propensity=d.propensity,
        policy_version=d.policy_version,
        arm=d.arm,
        explored=d.explored,
        fallback=decided.fallback,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 in our error format."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    codes = {404: "not_found", 405: "method_not_allowed"}
    body = wire.ErrorBody(
        code=codes.get(status, "http_error"),
        message=f"{request.method} {request.url.path}: "
        + (exc.detail if isinstance(exc, HTTPException) else "error"),
        field="path" if status == 404 else "method" if status == 405 else None,
    )
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    return Response(wire.encode(body), status_code=status, media_type=JSON, headers=headers)
