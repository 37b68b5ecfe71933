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

Label = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=r"^[^\u0000]+$")]
Identifier = Annotated[
    str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:+\-]*$")
]
ContextValue = float | int | bool | str
SignalName = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[^\u0000]+$")]
Reason = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=1000, pattern=r"^[^\u0000]*[^\s\u0000][^\u0000]*$"),
]
# JSON Schema's "integer" admits 10.0, which msgspec's int refuses; a number that is a
# multiple of 1 says the same and decodes both ways.
Revision = Annotated[float, msgspec.Meta(ge=0, le=2**53, multiple_of=1)]
Share = Annotated[float, msgspec.Meta(ge=0, le=1)]
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
    signals: Annotated[dict[SignalName, float], msgspec.Meta(min_length=1, max_length=256)]
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
    """Every move made over HTTP says why (it is kept in the alias history)."""

    version: Identifier
    reason: Reason
    force: bool = False
    expected_revision: Revision | None = None


class RollbackRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    reason: Reason
    expected_revision: Revision | None = None


class AliasMoved(msgspec.Struct, frozen=True):
    name: str
    alias: str
    version: str
    revision: int
    serving: list[ArmState]


class SharesRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """New traffic shares by arm name (arms not named keep theirs; the total stays 1)."""

    shares: Annotated[dict[Identifier, Share], msgspec.Meta(min_length=1)]
    expected_revision: Revision | None = None


_AT = re.compile(r" - at (?:`key` in )?`\$(?P<path>[^`]*)`$")
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


def revision(value: float | None) -> int | None:
    return None if value is None else int(value)


def require_utf8(text: str, field: str) -> str:
    """Refuse a lone surrogate (valid JSON, but no UTF-8): one such string would fail the
    group commit for every request sharing it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{field}: not valid Unicode text", field=field) from None
    return text


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
