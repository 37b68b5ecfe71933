"""Where records travel between the servers and the join workers, chosen by one URL.

``log`` (or any log URL) is the embedded default: publishing is appending to the decision
log and consuming is the log's own join, so nothing else runs. A ``redis://`` URL selects
Redis Streams, the production transport::

    redis://127.0.0.1:6379/0?stream=rlops&partitions=8&group=rlops-join&claim_idle=30

``partitions`` streams ``{stream}:{p}`` share the load; ``{stream}:dead`` holds messages
that did not decode. ``claim_idle`` is how long (seconds) an entry may sit unacknowledged
with one consumer before another takes it over (a worker killed mid-batch). Redis must
keep the stream on disk (``appendonly yes``) unless ``allow_volatile=1`` says that losing
it on a restart is acceptable.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from rlops.core.errors import ValidationError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """A Redis Streams transport: the server, the key prefix, the partitions, the group."""

    redis_url: str
    stream: str = "rlops"
    partitions: int = 8
    group: str = "rlops-join"
    #: Seconds an entry may stay pending with one consumer before another claims it.
    claim_idle: float = 30.0
    #: Accept a Redis that keeps nothing on disk (``appendonly no``): a restart loses
    #: whatever no worker has committed to the log yet.
    allow_volatile: bool = False
    #: Seconds a publisher keeps retrying a batch while Redis is away before failing it.
    retry_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.partitions <= 1024:
            raise ValidationError("partitions must be in 1..1024", field="partitions")
        if not self.stream or any(c.isspace() for c in self.stream):
            raise ValidationError("stream must be a non-empty key prefix", field="stream")
        if not self.group:
            raise ValidationError("group must be non-empty", field="group")
        if not self.claim_idle > 0:
            raise ValidationError("claim_idle must be > 0 seconds", field="claim_idle")
        if not self.retry_seconds >= 0:
            raise ValidationError("retry_seconds must be >= 0", field="retry_seconds")

    def key(self, partition: int) -> str:
        return f"{self.stream}:{partition}"

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.key(p) for p in range(self.partitions))

    @property
    def dead_key(self) -> str:
        return f"{self.stream}:dead"


def is_stream_url(url: str | None) -> bool:
    """Whether ``url`` names a stream transport rather than the log (the default)."""
    return url is not None and url.startswith(("redis://", "rediss://", "unix://"))


def _number(query: dict[str, str], name: str, kind: type[int] | type[float]) -> int | float | None:
    if name not in query:
        return None
    try:
        return kind(query.pop(name))
    except ValueError:
        raise ValidationError(f"{name} must be a {kind.__name__}", field=name) from None


def _flag(query: dict[str, str], name: str) -> bool:
    value = query.pop(name, "0").lower()
    if value not in _TRUE | _FALSE:
        raise ValidationError(f"{name} must be 1 or 0, got {value!r}", field=name)
    return value in _TRUE


def parse_stream_url(url: str) -> StreamConfig:
    """A :class:`StreamConfig` from ``redis://host:port/db?stream=...&partitions=...``."""
    if not is_stream_url(url):
        raise ValidationError(f"not a stream transport url: {url!r}", field="transport")
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    settings: dict[str, object] = {}
    for name, kind in (("partitions", int), ("claim_idle", float), ("retry_seconds", float)):
        value = _number(query, name, kind)
        if value is not None:
            settings[name] = value
    for name in ("stream", "group"):
        if name in query:
            settings[name] = query.pop(name)
    settings["allow_volatile"] = _flag(query, "allow_volatile")
    if query:
        unknown = sorted(query)
        raise ValidationError(f"unknown transport settings {unknown}", field=unknown[0])
    redis_url = urlunsplit(parts._replace(query=""))
    return StreamConfig(redis_url=redis_url, **settings)  # type: ignore[arg-type]  # checked above
