"""Delivering alert transitions over HTTP without ever blocking the code that raised them.

:meth:`AlertDelivery.notify` renders the alerts into messages and puts them on a bounded
queue; a background thread POSTs them. When the queue is full a message is dropped and
counted: an evaluator must never stall behind a dead receiver. A message is retried with
exponential backoff (no jitter: there is one sender per process) on a transport error, a
5xx or a 429, up to ``max_attempts``; any other 4xx is the sender's fault and retrying
would not help, so it fails at once.

Two renderings ship: the Alertmanager webhook payload (``version: "4"``), which generic
receivers accept, and PagerDuty's Events API v2, whose ``dedup_key`` is the alert's
fingerprint so a ``resolve`` closes the incident its ``trigger`` opened.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from rlops.core.errors import ValidationError
from rlops.monitoring.alerts import Alert

log = logging.getLogger(__name__)

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
#: Go's zero time, which Alertmanager sends as ``endsAt`` of an alert still firing.
ZERO_TIME = "0001-01-01T00:00:00Z"
PAGERDUTY_SUMMARY_LIMIT = 1024

Message = dict[str, Any]
Render = Callable[[Sequence[Alert]], list[Message]]


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_number(value: float) -> float | str:
    """JSON has no NaN or infinity; spell them as Prometheus does."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def _common(mappings: Sequence[dict[str, str]]) -> dict[str, str]:
    first = mappings[0] if mappings else {}
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in mappings[1:])}


def webhook_messages(
    alerts: Sequence[Alert], *, receiver: str = "rlops", external_url: str = ""
) -> list[Message]:
    """Alertmanager's webhook payload, one message per alert name (Alertmanager groups by
    ``alertname`` by default), in the order the names first appear."""
    groups: dict[str, list[Alert]] = {}
    for alert in alerts:
        groups.setdefault(alert.name, []).append(alert)
    messages = []
    for name, group in groups.items():
        labels = [dict(alert.labels) for alert in group]
        annotations = [dict(alert.annotations) for alert in group]
        messages.append(
            {
                "version": "4",
                "groupKey": f'{{}}:{{alertname="{name}"}}',
                "truncatedAlerts": 0,
                "status": "firing" if any(a.state == "firing" for a in group) else "resolved",
                "receiver": receiver,
                "groupLabels": {"alertname": name},
                "commonLabels": _common(labels),
                "commonAnnotations": _common(annotations),
                "externalURL": external_url,
                "alerts": [
                    {
                        "status": alert.state,
                        "labels": alert_labels,
                        "annotations": alert_annotations,
                        "startsAt": rfc3339(alert.starts_at),
                        "endsAt": ZERO_TIME if alert.ends_at is None else rfc3339(alert.ends_at),
                        "generatorURL": external_url,
                        "fingerprint": alert.fingerprint,
                    }
                    for alert, alert_labels, alert_annotations in zip(
                        group, labels, annotations, strict=True
                    )
                ],
            }
        )
    return messages


def pagerduty_events(
    alerts: Sequence[Alert], *, routing_key: str, source: str = "rlops"
) -> list[Message]:
    """One PagerDuty Events API v2 event per alert: ``trigger`` when it fires, ``resolve``
    (which needs nothing but the key) when it ends."""
    events: list[Message] = []
    for alert in alerts:
        event: Message = {
            "routing_key": routing_key,
            "event_action": "trigger" if alert.state == "firing" else "resolve",
            "dedup_key": alert.fingerprint,
        }
        if alert.state == "firing":
            summary = alert.annotation("summary") or alert.name
            event["payload"] = {
                "summary": summary[:PAGERDUTY_SUMMARY_LIMIT],
                "source": source,
                "severity": alert.label("severity") or "critical",
                "timestamp": rfc3339(alert.starts_at),
                "class": alert.name,
                "custom_details": {
                    "labels": dict(alert.labels),
                    "description": alert.annotation("description"),
                    "value": _json_number(alert.value),
                },
            }
        events.append(event)
    return events


@dataclass(frozen=True)
class DeliveryConfig:
    """Where and how persistently to POST. Times in seconds; ``headers`` such as an
    ``Authorization`` for a webhook receiver."""

    url: str
    timeout_seconds: float = 5.0
    max_attempts: int = 4
    backoff_seconds: float = 0.5
    backoff_max_seconds: float = 8.0
    queue_size: int = 1000
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValidationError(f"not an http(s) URL: {self.url!r}", field="url")
        for name in ("timeout_seconds", "backoff_seconds", "backoff_max_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValidationError(f"{name} must be a finite number >= 0", field=name)
        if self.timeout_seconds <= 0:
            raise ValidationError("timeout_seconds must be > 0", field="timeout_seconds")
        for name in ("max_attempts", "queue_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValidationError(f"{name} must be an integer >= 1", field=name)

    def backoff(self, attempt: int) -> float:
        """The pause after failed attempt ``attempt`` (1-based): doubling, capped."""
        return float(min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class DeliveryStats:
    """Counts of messages: ``queued`` accepted by ``notify``; each of them ends up
    ``delivered`` or ``failed``; ``dropped`` never got on the queue (it was full) or
    was abandoned at close; ``retries`` counts attempts after the first."""

    queued: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    retries: int = 0


class AlertDelivery:
    """One HTTP receiver, fed from a bounded queue by a background thread."""

    def __init__(
        self, config: DeliveryConfig, render: Render, *, client: httpx.Client | None = None
    ) -> None:
        self.config = config
        self.render = render
        self._own_client = client is None
        self._client = client if client is not None else httpx.Client()
        self._queue: queue.Queue[Message] = queue.Queue(maxsize=config.queue_size)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._stats = DeliveryStats()
        self._outstanding = 0  # queued and not yet delivered, failed or abandoned
        self._closing = threading.Event()
        self._abort = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rlops-alert-delivery", daemon=True)
        self._thread.start()

    @classmethod
    def webhook(
        cls, config: DeliveryConfig, *, receiver: str = "rlops", external_url: str = ""
    ) -> AlertDelivery:
        def render(alerts: Sequence[Alert]) -> list[Message]:
            return webhook_messages(alerts, receiver=receiver, external_url=external_url)

        return cls(config, render)

    @classmethod
    def pagerduty(
        cls, config: DeliveryConfig, *, routing_key: str, source: str = "rlops"
    ) -> AlertDelivery:
        if not routing_key.strip():
            raise ValidationError("PagerDuty needs a routing key", field="routing_key")

        def render(alerts: Sequence[Alert]) -> list[Message]:
            return pagerduty_events(alerts, routing_key=routing_key, source=source)

        return cls(config, render)

    def notify(self, alerts: Sequence[Alert]) -> int:
        """Queue ``alerts`` for delivery and return at once; the number of messages queued
        (the rest were dropped, and counted, because the queue was full or closed)."""
        if not alerts:
            return 0
        messages = self.render(alerts)
        accepted = 0
        for message in messages:
            if self._closing.is_set():
                self._count(dropped=1)
                continue
            with self._lock:
                self._outstanding += 1
            try:
                self._queue.put_nowait(message)
            except queue.Full:
                with self._lock:
                    self._outstanding -= 1
                self._count(dropped=1)
                log.warning("alert delivery to %s: queue full, message dropped", self.config.url)
                continue
            self._count(queued=1)
            accepted += 1
        return accepted

    def stats(self) -> DeliveryStats:
        with self._lock:
            return self._stats

    def flush(self, timeout: float) -> bool:
        """Wait until every queued message is delivered or failed; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout=timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued within ``timeout`` seconds, then abandon the rest."""
        self._closing.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()
            self._thread.join(self.config.timeout_seconds + 1.0)
        if self._own_client:
            self._client.close()

    def __enter__(self) -> AlertDelivery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self, **changes: int) -> None:
        with self._lock:
            current = self._stats
            self._stats = replace(
                current, **{k: getattr(current, k) + n for k, n in changes.items()}
            )

    def _run(self) -> None:
        while True:
            try:
                message = self._queue.get(timeout=0.05)
            except queue.Empty:
                if self._closing.is_set():
                    return
                continue
            try:
                if self._abort.is_set():
                    self._count(dropped=1)
                elif self._deliver(message):
                    self._count(delivered=1)
                else:
                    self._count(failed=1)
            except Exception:  # the thread must outlive any one message
                log.exception("alert delivery to %s failed", self.config.url)
                self._count(failed=1)
            finally:
                with self._idle:
                    self._outstanding -= 1
                    self._idle.notify_all()

    def _deliver(self, message: Message) -> bool:
        """POST one message; whether the receiver accepted it, retries included."""
        body = orjson.dumps(message)
        headers = {"Content-Type": "application/json", **dict(self.config.headers)}
        for attempt in range(1, self.config.max_attempts + 1):
            if attempt > 1:
                self._count(retries=1)
            try:
                response = self._client.post(
                    self.config.url,
                    content=body,
                    headers=headers,
                    timeout=self.config.timeout_seconds,
                )
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if response.is_success:
                    return True
                problem = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    log.error("alert delivery to %s refused: %s", self.config.url, problem)
                    return False
            if attempt < self.config.max_attempts:
                log.warning(
                    "alert delivery to %s, attempt %d: %s", self.config.url, attempt, problem
                )
                if self._abort.wait(self.config.backoff(attempt)):
                    break
        log.error("alert delivery to %s gave up: %s", self.config.url, problem)
        return False
