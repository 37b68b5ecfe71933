"""The online feature store: stored features per unit, merged with the request's context.

The server asks the store once per micro-batch of requests, on its event loop thread, so a
lookup is one round trip for many units and must never hang. A store that cannot answer
says so (``Lookup.available`` is False) and the server decides with schema defaults; it
never raises on the lookup path.

Two backends share one contract (``tests/serving/test_feature_store_contract.py``):

- :class:`MemoryFeatureStore`, in-process, the embedded default;
- :class:`RedisFeatureStore`, one key per unit, ``{prefix}:{app}:{unit_id}``, holding one
  JSON object of feature name to value. A lookup is one ``MGET``; a batch load is one
  ``MULTI``/``EXEC`` transaction, so readers see all of a batch or none of it.

A unit's stored row is replaced whole by the next batch that carries the unit (a batch
holds each unit's complete row), and its TTL with it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rlops.core.actions import check_id
from rlops.core.clock import Clock, RealClock
from rlops.core.errors import RlopsError, ValidationError
from rlops.core.features import FeatureSchema, FeatureValue

DEFAULT_PREFIX = "rlops:features"

Row = dict[str, FeatureValue]


class StoreUnavailableError(RlopsError):
    """The feature store could not be reached for a write; nothing was loaded."""

    code = "store_unavailable"


@dataclass(frozen=True, slots=True)
class Lookup:
    """Stored rows for a list of unit ids.

    ``rows[i]`` belongs to ``unit_ids[i]``; None means no entry, an expired or corrupt one,
    or (with ``available`` False) that the store could not be asked at all.
    """

    rows: list[Row | None]
    available: bool


class FeatureStore(Protocol):
    """What the server needs from an online feature store."""

    app: str

    def lookup(self, unit_ids: Sequence[str]) -> Lookup:
        """Rows for ``unit_ids`` in order, in one round trip; never raises for an outage."""
        ...

    def load_batch(
        self, rows: Mapping[str, Mapping[str, FeatureValue]], *, ttl_seconds: float | None = None
    ) -> int:
        """Store every row or none (readers see all of the batch or none of it); the count."""
        ...

    def close(self) -> None: ...


def merge_features(
    schema: FeatureSchema,
    stored: Mapping[str, FeatureValue] | None,
    context: Mapping[str, object],
) -> tuple[dict[str, FeatureValue], tuple[str, ...]]:
    """The values a decision uses, and the names that fell back to the schema default.

    The request's ``context`` wins over ``stored``. A bad context value is the caller's
    error (``ValidationError`` naming ``context.<name>``); a stored value that fails its
    check counts as missing, because the store is not the caller's fault. Stored names the
    schema does not know are ignored (a batch job may run ahead of the deployed schema). A
    None in the context means "not provided", as in :meth:`FeatureSchema.resolve`.
    """
    values: dict[str, FeatureValue] = {}
    defaulted: list[str] = []
    used_context = 0
    for feature in schema.features:
        name = feature.name
        given = context.get(name)
        if name in context:
            used_context += 1
        if given is not None:
            try:
                values[name] = feature.check(given)
            except ValidationError as error:
                raise ValidationError(error.message, field=f"context.{name}") from None
            continue
        if stored is not None:
            kept = stored.get(name)
            if kept is not None:
                try:
                    values[name] = feature.check(kept)
                    continue
                except ValidationError:
                    pass
        if feature.default is None:
            raise ValidationError(
                f"required feature {name!r} is neither in the context nor stored",
                field=f"context.{name}",
            )
        values[name] = feature.default
        defaulted.append(name)
    if used_context != len(context):
        unknown = sorted(set(context) - set(schema.names))
        raise ValidationError(
            f"unknown feature {unknown[0]!r} in the context; schema features: {list(schema.names)}",
            field=f"context.{unknown[0]}",
        )
    return values, tuple(defaulted)


def _check_ttl(ttl_seconds: float | None) -> float | None:
    if ttl_seconds is None:
        return None
    if isinstance(ttl_seconds, bool) or not (
        isinstance(ttl_seconds, int | float) and math.isfinite(ttl_seconds) and ttl_seconds > 0
    ):
        raise ValidationError(
            f"ttl_seconds must be a positive number of seconds or None, got {ttl_seconds!r}",
            field="ttl_seconds",
        )
    return float(ttl_seconds)


def _plain(unit_id: str, name: str, value: object) -> FeatureValue:
    """``value`` as a plain JSON scalar, so both backends store exactly the same thing."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
    elif isinstance(value, str):
        return str(value)
    raise ValidationError(
        f"unit {unit_id!r}: feature {name!r} must be a finite number, a boolean or a string, "
        f"got {type(value).__name__} {value!r}",
        field=f"rows.{unit_id}.{name}",
    )


def check_batch(rows: Mapping[str, Mapping[str, FeatureValue]]) -> dict[str, Row]:
    """Plain copies of every row, or a ``ValidationError`` before anything is written."""
    if not isinstance(rows, Mapping):
        raise ValidationError("a batch must map unit ids to rows", field="rows")
    checked: dict[str, Row] = {}
    for unit_id, row in rows.items():
        if not isinstance(unit_id, str) or not unit_id:
            raise ValidationError(
                f"unit ids must be non-empty strings, got {unit_id!r}", field="rows"
            )
        if not isinstance(row, Mapping):
            raise ValidationError(
                f"unit {unit_id!r}: a row must map feature names to values",
                field=f"rows.{unit_id}",
            )
        plain: Row = {}
        for name, value in row.items():
            if not isinstance(name, str):
                raise ValidationError(
                    f"unit {unit_id!r}: feature names must be strings, got {name!r}",
                    field=f"rows.{unit_id}",
                )
            plain[name] = _plain(unit_id, name, value)
        checked[unit_id] = plain
    return checked


class MemoryFeatureStore:
    """In-process rows with an optional TTL measured on an injected clock.

    One lock guards the table: a batch is written under it in one ``dict.update`` of
    prebuilt entries, so a reader sees all of a batch or none of it. Expired rows read as
    missing and are dropped when met; :meth:`purge_expired` drops the rest.
    """

    def __init__(self, app: str, *, clock: Clock | None = None) -> None:
        self.app = check_id(app, "app")
        self._clock: Clock = clock if clock is not None else RealClock()
        self._rows: dict[str, tuple[Row, float]] = {}  # unit id -> (row, expires at)
        self._lock = threading.Lock()
        self.lookups = 0
        self.failures = 0  # stays 0: memory cannot be down; kept so both export alike
        self.short_circuits = 0
        self.corrupt = 0

    def lookup(self, unit_ids: Sequence[str]) -> Lookup:
        now = self._clock.now()
        rows: list[Row | None] = []
        with self._lock:
            self.lookups += 1
            for unit_id in unit_ids:
                entry = self._rows.get(unit_id)
                if entry is None:
                    rows.append(None)
                elif entry[1] <= now:
                    del self._rows[unit_id]
                    rows.append(None)
                else:
                    rows.append(dict(entry[0]))  # a copy: callers cannot edit the store
        return Lookup(rows=rows, available=True)

    def load_batch(
        self, rows: Mapping[str, Mapping[str, FeatureValue]], *, ttl_seconds: float | None = None
    ) -> int:
        ttl = _check_ttl(ttl_seconds)
        checked = check_batch(rows)
        expires = math.inf if ttl is None else self._clock.now() + ttl
        entries = {unit_id: (row, expires) for unit_id, row in checked.items()}
        with self._lock:
            self._rows.update(entries)
        return len(entries)

    def purge_expired(self) -> int:
        """Drop expired rows that no lookup has met; the number dropped."""
        now = self._clock.now()
        with self._lock:
            expired = [u for u, (_, expires) in self._rows.items() if expires <= now]
            for unit_id in expired:
                del self._rows[unit_id]
        return len(expired)

    def close(self) -> None:
        with self._lock:
            self._rows.clear()


class RedisFeatureStore:
    """Rows in Redis, read through a circuit breaker so an outage costs one timeout.

    Lookups use short socket timeouts (50 ms by default) and no client retries. On any
    Redis error a lookup returns unavailable, counts a failure and opens the breaker for
    ``retry_seconds``: meanwhile lookups return unavailable at once, without touching the
    network (``short_circuits``). After that one lookup probes Redis (others still short
    circuit); success closes the breaker, so lookups resume by themselves when Redis is back.

    Loads use a second client with long timeouts (``load_timeout``): a batch job can wait,
    and a load that fails raises :class:`StoreUnavailableError` rather than pass silently.

    Counters (``lookups``, ``failures``, ``short_circuits``, ``corrupt``) are plain ints for
    the server to export.
    """

    def __init__(
        self,
        url: str,
        app: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 0.05,
        socket_connect_timeout: float = 0.05,
        retry_seconds: float = 1.0,
        load_timeout: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self.app = check_id(app, "app")
        if not prefix or not isinstance(prefix, str):
            raise ValidationError(
                f"prefix must be a non-empty string, got {prefix!r}", field="prefix"
            )
        for name, seconds in (
            ("socket_timeout", socket_timeout),
            ("socket_connect_timeout", socket_connect_timeout),
            ("retry_seconds", retry_seconds),
            ("load_timeout", load_timeout),
        ):
            if not (isinstance(seconds, int | float) and 0 < seconds < math.inf):
                raise ValidationError(
                    f"{name} must be positive seconds, got {seconds!r}", field=name
                )
        self.prefix = prefix
        self._keys = f"{prefix}:{app}:"
        self._url = url
        self._load_timeout = float(load_timeout)
        self._retry_seconds = float(retry_seconds)
        self._clock: Clock = clock if clock is not None else RealClock()
        self._reader = self._client(float(socket_timeout), float(socket_connect_timeout))
        self._writer: redis.Redis[bytes] | None = None  # opened by the first load
        self._lock = threading.Lock()
        self._open_until: float | None = None  # None: the breaker is closed
        self._probing = False
        self.lookups = 0
        self.failures = 0
        self.short_circuits = 0
        self.corrupt = 0

    def _client(self, timeout: float, connect_timeout: float) -> redis.Redis[bytes]:
        try:
            client: redis.Redis[bytes] = redis.Redis.from_url(
                self._url,
                socket_timeout=timeout,
                socket_connect_timeout=connect_timeout,
                retry=Retry(NoBackoff(), 0),  # the breaker decides when to try again
            )
        except ValueError as error:
            raise ValidationError(f"bad Redis URL: {error}", field="features") from None
        return client

    def key(self, unit_id: str) -> str:
        """The Redis key of a unit's row."""
        return self._keys + unit_id

    @property
    def breaker_open(self) -> bool:
        return self._open_until is not None

    def _admit(self) -> bool:
        """Count the lookup; whether it may use the network (breaker closed, or the probe)."""
        with self._lock:
            self.lookups += 1
            if self._open_until is None:
                return True
            if self._probing or self._clock.now() < self._open_until:
                self.short_circuits += 1
                return False
            self._probing = True
            return True

    def _failed(self) -> None:
        with self._lock:
            self.failures += 1
            self._open_until = self._clock.now() + self._retry_seconds
            self._probing = False

    def _succeeded(self) -> None:
        if self._open_until is not None:
            with self._lock:
                self._open_until = None
                self._probing = False

    def lookup(self, unit_ids: Sequence[str]) -> Lookup:
        n = len(unit_ids)
        if n == 0:
            return Lookup(rows=[], available=True)
        keys = [self._keys + unit_id for unit_id in unit_ids]
        if not self._admit():
            return Lookup(rows=[None] * n, available=False)
        try:
            raw = self._reader.mget(keys)
        except Exception:  # any failure of the call, not only RedisError: never raise here
            self._failed()
            return Lookup(rows=[None] * n, available=False)
        self._succeeded()
        return Lookup(
            rows=[None if value is None else self._decode(value) for value in raw], available=True
        )

    def _decode(self, value: bytes) -> Row | None:
        try:
            row = orjson.loads(value)
        except orjson.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            return row
        with self._lock:
            self.corrupt += 1
        return None

    def load_batch(
        self, rows: Mapping[str, Mapping[str, FeatureValue]], *, ttl_seconds: float | None = None
    ) -> int:
        ttl = _check_ttl(ttl_seconds)
        checked = check_batch(rows)
        if not checked:
            return 0
        px = None if ttl is None else max(1, round(ttl * 1000.0))
        if self._writer is None:
            self._writer = self._client(self._load_timeout, self._load_timeout)
        try:
            with self._writer.pipeline(transaction=True) as pipe:
                for unit_id, row in checked.items():
                    pipe.set(self._keys + unit_id, orjson.dumps(row), px=px)
                pipe.execute()
        except (redis.RedisError, OSError) as error:
            raise StoreUnavailableError(
                f"could not load {len(checked)} feature rows into Redis "
                f"({self._where()}); nothing was written: {error}",
                field="features",
            ) from None
        return len(checked)

    def _where(self) -> str:
        """host:port/db without credentials, for error messages."""
        kwargs: dict[str, Any] = self._reader.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"

    def close(self) -> None:
        self._reader.close()
        if self._writer is not None:
            self._writer.close()


def open_feature_store(url: str, app: str, **options: Any) -> FeatureStore:
    """``memory`` (or ``memory://``): in-process; ``redis://host:port/db``: Redis.

    ``options`` go to the backend's constructor (``clock``; for Redis ``prefix``, timeouts,
    ``retry_seconds``).
    """
    if url in ("memory", "memory://"):
        return MemoryFeatureStore(app, **options)
    if url.startswith(("redis://", "rediss://")):
        return RedisFeatureStore(url, app, **options)
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise ValidationError(
        f"feature store must be 'memory' or 'redis://host:port/db', got {scheme!r}",
        field="features",
    )
