"""The OpenAPI 3.1 document, generated from the msgspec types the endpoints decode with.

The decision context is described per application from its :class:`FeatureSchema`
(names, types, bounds, categories), so the document is exactly as strict as the server:
a client generated from it, or schemathesis, sends what the server accepts.
"""

from __future__ import annotations

from typing import Any

import msgspec

from rlops.core.features import FeatureSchema
from rlops.serving import wire
from rlops.serving.auth import TokenBook

REF = "#/components/schemas/{name}"
_TYPES: tuple[Any, ...] = (
    wire.DecisionRequest,
    wire.DecisionBatchRequest,
    wire.DecisionResponse,
    wire.DecisionBatchResponse,
    wire.OutcomeIn,
    wire.OutcomesBody,
    wire.OutcomeAccepted,
    wire.ErrorBody,
    wire.Health,
    wire.PoliciesResponse,
    wire.PromoteRequest,
    wire.RollbackRequest,
    wire.AliasMoved,
    wire.SharesRequest,
)


def context_schema(schema: FeatureSchema) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for f in schema.features:
        if f.kind == "category":
            spec: dict[str, Any] = {"type": "string", "enum": list(f.categories)}
        elif f.kind == "bool":
            spec = {"type": "boolean"}
        else:
            spec = {"type": "integer" if f.kind == "int" else "number"}
            if f.low is not None:
                spec["minimum"] = f.low
            if f.high is not None:
                spec["maximum"] = f.high
        if f.description:
            spec["description"] = f.description
        properties[f.name] = spec
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "description": "Features by name; they win over the feature store's values.",
    }


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_document(schema: FeatureSchema, tokens: TokenBook) -> dict[str, Any]:
    refs, components = msgspec.json.schema_components(_TYPES, ref_template=REF)
    ref = dict(
        zip(
            (
                "decision",
                "batch",
                "decided",
                "decided_batch",
                "outcome",
                "outcomes",
                "accepted",
                "error",
                "health",
                "policies",
                "promote",
                "rollback",
                "moved",
                "shares",
            ),
            refs,
            strict=True,
        )
    )
    components["DecisionRequest"]["properties"]["context"] = context_schema(schema)
    error = ref["error"]

    def errors(*codes: int) -> dict[str, Any]:
        described = {
            400: "Malformed JSON",
            401: "Missing or unknown bearer token",
            403: "The token lacks the route's scope",
            404: "Not found",
            409: "Conflict (a stale expected_revision, a damaged artifact)",
            413: "The body is too large",
            422: "Invalid input; `field` names it",
            503: "The log cannot take more now; retry after Retry-After seconds",
        }
        return {str(c): _json(described[c], error) for c in codes}

    bearer: list[dict[str, list[str]]] = [{"bearer": []}]

    def security(scope: str) -> list[dict[str, list[str]]]:
        return [{}, *bearer] if scope in tokens.open_scopes else bearer

    alias_param = {
        "name": "alias",
        "in": "path",
        "required": True,
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:+\-]*$",
        },
    }
    client = (400, 401, 403, 413, 422)
    admin = (400, 401, 403, 404, 409, 413, 422)
    paths: dict[str, Any] = {
        "/v1/decisions": {
            "post": {
                "summary": "Decide for one unit",
                "operationId": "decide",
                "security": security("decide"),
                "requestBody": _body(ref["decision"]),
                "responses": {
                    "200": _json("The decision, logged durably", ref["decided"]),
                    **errors(*client, 503),
                },
            }
        },
        "/v1/decisions/batch": {
            "post": {
                "summary": "Decide for many units",
                "operationId": "decideBatch",
                "security": security("decide"),
                "requestBody": _body(ref["batch"]),
                "responses": {
                    "200": _json("The decisions, in request order", ref["decided_batch"]),
                    **errors(*client, 503),
                },
            }
        },
        "/v1/outcomes": {
            "post": {
                "summary": "Log one outcome or an array of them",
                "operationId": "recordOutcomes",
                "security": security("outcomes"),
                "requestBody": _body(ref["outcomes"]),
                "responses": {
                    "202": _json("Durably logged", ref["accepted"]),
                    **errors(*client, 503),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "operationId": "healthz",
                "responses": {"200": _json("The process answers", ref["health"])},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: a verified policy per arm and a writable log",
                "operationId": "readyz",
                "responses": {
                    "200": _json("Ready", ref["health"]),
                    "503": _json("Not ready; `checks` says why", ref["health"]),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text format 0.0.4",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/dashboard": {
            "get": {
                "summary": "The built-in dashboard (HTML; charts from /metrics)",
                "operationId": "dashboard",
                "responses": {
                    "200": {
                        "description": "An HTML page",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/v1/policies": {
            "get": {
                "summary": "Aliases, arms and what each serves",
                "operationId": "listPolicies",
                "security": bearer,
                "responses": {
                    "200": _json("The serving state", ref["policies"]),
                    **errors(401, 403),
                },
            }
        },
        "/v1/policies/{alias}/promote": {
            "post": {
                "summary": "Point an alias at a version (gated aliases need a passing gate)",
                "operationId": "promote",
                "security": bearer,
                "parameters": [alias_param],
                "requestBody": _body(ref["promote"]),
                "responses": {"200": _json("The alias moved", ref["moved"]), **errors(*admin)},
            }
        },
        "/v1/policies/{alias}/rollback": {
            "post": {
                "summary": "Move an alias back to its previous version",
                "operationId": "rollback",
                "security": bearer,
                "parameters": [alias_param],
                "requestBody": _body(ref["rollback"]),
                "responses": {"200": _json("The alias moved", ref["moved"]), **errors(*admin)},
            }
        },
        "/v1/experiment": {
            "get": {
                "summary": "The experiment: arms, aliases, shares",
                "operationId": "experiment",
                "security": bearer,
                "responses": {
                    "200": _json("The experiment", {"type": "object"}),
                    **errors(401, 403),
                },
            }
        },
        "/v1/experiment/shares": {
            "post": {
                "summary": "Change traffic shares at run time (staged rollout)",
                "operationId": "setShares",
                "security": bearer,
                "requestBody": _body(ref["shares"]),
                "responses": {
                    "200": _json("The new experiment", {"type": "object"}),
                    **errors(*admin),
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rlops policy server",
            "version": "1",
            "description": "Decisions with propensities, outcomes, and policy administration.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
