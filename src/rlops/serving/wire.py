"""The HTTP contract's bodies, as msgspec structs: one definition for decoding and for OpenAPI.

msgspec decodes and validates a decision request in a few microseconds, where a pydantic
model costs several times the whole no-op request on this stack, so the hot path uses
these structs and the OpenAPI document is generated from the same types (nothing to keep
in sync by hand). Decoding errors become :class:`~rlops.core.errors.ValidationError`
naming the offending field, so every 4xx says what to fix.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

from rlops.core.errors import ValidationError

Label = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Identifier = Annotated[
    str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:+\-]*$")
]
ContextValue = float | int | bool | str
MAX_BATCH = 1000


class DecisionRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One decision: the unit (user, product) and the caller's context, which wins over
    stored features. ``request_id`` seeds the draw, so a replayed request gets the same
    action from the same distribution."""

    unit_id: Label
    context: dict[str, ContextValue] = {}
    request_id: Label | None = None


class DecisionBatchRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    requests: Annotated[list[DecisionRequest], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class DecisionResponse(msgspec.Struct, frozen=True):
    """What was decided, with the propensity that makes it usable for off-policy evaluation.

    ``fallback`` says the baseline rules answered because the arm's policy could not.
    """

    event_id: str
    action_id: str
    propensity: float
    policy_version: str
    arm: str
    explored: bool
    fallback: bool


class DecisionBatchResponse(msgspec.Struct, frozen=True):
    decisions: list[DecisionResponse]


class OutcomeIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """An observation about a decision; ``ts`` defaults to the time it is received."""

    outcome_id: Identifier
    event_id: Identifier
    signals: Annotated[dict[str, float], msgspec.Meta(min_length=1, max_length=256)]
    ts: float | None = None


OutcomeList = Annotated[list[OutcomeIn], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]
#: ``POST /v1/outcomes`` takes one outcome object or an array of them.
OutcomesBody = OutcomeIn | OutcomeList


class OutcomeAccepted(msgspec.Struct, frozen=True):
    """Outcomes durably logged (a retried ``outcome_id`` counts once in the log)."""

    accepted: int


class ErrorBody(msgspec.Struct, frozen=True):
    code: str
    message: str
    field: str | None = None


class Health(msgspec.Struct, frozen=True):
    status: str
    checks: dict[str, str] = {}


class AliasState(msgspec.Struct, frozen=True):
    alias: str
    version: str
    revision: int
    loaded_version: str | None = None


class ArmState(msgspec.Struct, frozen=True):
    name: str
    alias: str
    share: float
    serving_version: str | None
    fallback: bool


class PoliciesResponse(msgspec.Struct, frozen=True):
    name: str
    app: str
    baseline_version: str
    aliases: list[AliasState]
    arms: list[ArmState]
    experiment: dict[str, Any]


class PromoteRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    version: Identifier
    reason: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    force: bool = False
    expected_revision: Annotated[int, msgspec.Meta(ge=0)] | None = None


class RollbackRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    reason: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    expected_revision: Annotated[int, msgspec.Meta(ge=0)] | None = None


class AliasMoved(msgspec.Struct, frozen=True):
    name: str
    alias: str
    version: str
    revision: int
    serving: list[ArmState]


class SharesRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """New traffic shares by arm name (arms not named keep theirs; the total stays 1)."""

    shares: Annotated[dict[str, float], msgspec.Meta(min_length=1)]
    expected_revision: Annotated[int, msgspec.Meta(ge=0)] | None = None


_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_NAMED = re.compile(r"(?:unknown|missing required) field `(?P<name>[^`]+)`")


def error_field(message: str) -> str | None:
    """``$.context.price`` style paths from msgspec messages as ``context.price``."""
    at = _AT.search(message)
    path = at.group("path").lstrip(".") if at else ""
    named = _NAMED.search(message)
    if named:
        path = f"{path}.{named.group('name')}" if path else named.group("name")
    return path or None


def _offending_key(body: bytes, container: str) -> str | None:
    """The first key of ``container`` whose value is not a scalar (msgspec says ``[...]``)."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    mapping = data.get(container) if isinstance(data, dict) else None
    if not isinstance(mapping, dict):
        return None
    for key, value in mapping.items():
        if not isinstance(value, bool | int | float | str):
            return f"{container}.{key}"
    return None


def decoder_errors(body: bytes, error: msgspec.DecodeError) -> ValidationError:
    """A decode failure as our error, with the field named wherever msgspec knows it."""
    message = str(error)
    if not isinstance(error, msgspec.ValidationError):
        return ValidationError(f"the body is not valid JSON: {message}", field="body")
    field = error_field(message)
    if field is not None and field.endswith("[...]"):
        field = _offending_key(body, field.removesuffix("[...]")) or field
    clean = _AT.sub("", message)
    return ValidationError(f"{field}: {clean}" if field else clean, field=field or "body")


def decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as error:
        raise decoder_errors(body, error) from None


encode = msgspec.json.Encoder().encode
DECISION = msgspec.json.Decoder(DecisionRequest)
DECISION_BATCH = msgspec.json.Decoder(DecisionBatchRequest)
OUTCOMES = msgspec.json.Decoder(OutcomesBody)
PROMOTE = msgspec.json.Decoder(PromoteRequest)
ROLLBACK = msgspec.json.Decoder(RollbackRequest)
SHARES = msgspec.json.Decoder(SharesRequest)
