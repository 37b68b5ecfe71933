"""Records on the stream: compact msgpack arrays, validated when read back.

An entry carries records of one kind in a single field: a batch, ``D`` (decisions) or
``O`` (outcomes), as the publisher writes them, or one record, ``d`` or ``o``. A record
is a msgpack array in field order, about half the size of JSON. Batching is what makes
the stream fast: Redis and its client pay per entry (an id, a field map, a reply to
parse), so one entry per partition per published batch costs a fraction of one per
record. The decoder checks types with msgspec's typed decoding, then builds each record
through its validating constructor: a stream is an entry point anyone with access to
Redis can write to, so what comes off it is checked like a request. A record that fails
is refused alone and goes to the dead-letter stream; an entry that is not records at
all raises :class:`UndecodableError` and goes there whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from rlops.core.errors import RlopsError
from rlops.core.records import Decision, Outcome
from rlops.stream.wire import DecisionWire, OutcomeWire, decision_of, outcome_of

DECISION: Final = b"d"
OUTCOME: Final = b"o"
BATCH_DECISIONS: Final = b"D"
BATCH_OUTCOMES: Final = b"O"


class UndecodableError(RlopsError):
    """A stream entry that is not a valid record (it goes to the dead-letter stream)."""

    code = "undecodable"


_encoder = msgspec.msgpack.Encoder()
_decisions = msgspec.msgpack.Decoder(DecisionWire)
_outcomes = msgspec.msgpack.Decoder(OutcomeWire)
_batch = msgspec.msgpack.Decoder(list[msgspec.Raw])  # each record decoded alone
_decision_batch = msgspec.msgpack.Decoder(list[DecisionWire])
_outcome_batch = msgspec.msgpack.Decoder(list[OutcomeWire])


_PATH = re.compile(r"`\$\[(\d+)\]")


def named(error: msgspec.DecodeError, wire: type[msgspec.Struct]) -> str:
    """msgspec's message with the record's field named where it says ``$[i]``."""
    fields = wire.__struct_fields__

    def name(match: re.Match[str]) -> str:
        i = int(match.group(1))
        return f"`{fields[i]}" if i < len(fields) else str(match.group(0))

    return _PATH.sub(name, str(error))


def _record_of_decision(raw: msgspec.Raw) -> Decision:
    try:
        return decision_of(_decisions.decode(raw))
    except msgspec.DecodeError as error:
        raise UndecodableError(named(error, DecisionWire), field="message") from None


def _record_of_outcome(raw: msgspec.Raw) -> Outcome:
    try:
        return outcome_of(_outcomes.decode(raw))
    except msgspec.DecodeError as error:
        raise UndecodableError(named(error, OutcomeWire), field="message") from None


def encode_decision(d: Decision) -> bytes:
    return _encoder.encode(_decision_fields(d))


def encode_outcome(o: Outcome) -> bytes:
    return _encoder.encode(_outcome_fields(o))


def _decision_fields(d: Decision) -> tuple[object, ...]:
    return (
        d.event_id, d.ts, d.app, d.unit_id, d.arm, d.policy_version, d.features,
        d.action_ids, d.action_id, d.propensity, d.explored,
    )  # fmt: skip


def _outcome_fields(o: Outcome) -> tuple[object, ...]:
    return (o.outcome_id, o.event_id, o.ts, o.signals)


def encode_decisions(decisions: Sequence[Decision]) -> bytes:
    """Many decisions in one entry (field ``D``): one XADD and one reply for a batch."""
    return _encoder.encode([_decision_fields(d) for d in decisions])


def encode_outcomes(outcomes: Sequence[Outcome]) -> bytes:
    return _encoder.encode([_outcome_fields(o) for o in outcomes])


@dataclass(frozen=True, slots=True)
class Decoded:
    """An entry's valid records, and why each invalid one (by index) was refused."""

    records: list[Decision | Outcome]
    refused: list[tuple[int, str]]


def decode_entry(fields: dict[bytes, bytes]) -> Decoded:
    """Every record of one entry, each validated alone: one bad record in a batch is
    refused (and dead-lettered) without holding back the good ones. An entry that is not
    a record or a batch at all raises :class:`UndecodableError`.

    A batch is first decoded whole, typed (one call into msgspec); only a batch holding
    a malformed record is decoded again record by record, to refuse just that one.
    """
    if len(fields) == 1 and (BATCH_DECISIONS in fields or BATCH_OUTCOMES in fields):
        many = BATCH_DECISIONS in fields
        payload = fields[BATCH_DECISIONS if many else BATCH_OUTCOMES]
        try:
            if many:
                return _each(_decision_batch.decode(payload), decision_of)
            return _each(_outcome_batch.decode(payload), outcome_of)
        except msgspec.DecodeError:
            pass
        try:
            raws = _batch.decode(payload)
        except msgspec.DecodeError as error:
            raise UndecodableError(f"DecodeError: {error}", field="message") from None
        return _each(raws, _record_of_decision if many else _record_of_outcome)
    return Decoded([decode(fields)], [])


def _each(items: Sequence[Any], build: Callable[[Any], Decision | Outcome]) -> Decoded:
    """``build`` each item; an item it refuses is set aside with the reason."""
    records: list[Decision | Outcome] = []
    refused: list[tuple[int, str]] = []
    for i, item in enumerate(items):
        try:
            records.append(build(item))
        except RlopsError as error:
            refused.append((i, error.message))
    return Decoded(records, refused)


def decode(fields: dict[bytes, bytes]) -> Decision | Outcome:
    """The record in a one-record entry; :class:`UndecodableError` if there is none."""
    try:
        if len(fields) == 1:
            if DECISION in fields:
                return decision_of(_decisions.decode(fields[DECISION]))
            if OUTCOME in fields:
                return outcome_of(_outcomes.decode(fields[OUTCOME]))
    except (msgspec.DecodeError, RlopsError) as error:
        raise UndecodableError(f"{type(error).__name__}: {error}", field="message") from None
    names = sorted(k.decode(errors="replace") for k in fields)
    raise UndecodableError(
        f"an entry needs one field 'd', 'o', 'D' or 'O', got {names}", field="message"
    )
