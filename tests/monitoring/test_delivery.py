"""Alert delivery against a real HTTP receiver on a loopback port."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rlops.core.errors import ValidationError
from rlops.monitoring.alert_conditions import labels_of
from rlops.monitoring.alerts import Alert
from rlops.monitoring.delivery import (
    AlertDelivery,
    DeliveryConfig,
    DeliveryStats,
    pagerduty_events,
    webhook_messages,
)

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
DESCRIPTION = "one action took over"


def alert(arm: str, state: str = "firing", *, value: float = 0.9) -> Alert:
    return Alert(
        name="RlopsModeCollapse",
        labels=labels_of(
            {"alertname": "RlopsModeCollapse", "app": "pricing", "arm": arm, "severity": "critical"}
        ),
        state="firing" if state == "firing" else "resolved",
        starts_at=T0,
        ends_at=None if state == "firing" else T0 + 600,
        value=value,
        annotations=(("description", DESCRIPTION), ("summary", f"{arm} collapsed")),
    )


class Receiver:
    """A real HTTP server that records each POST and answers with scripted statuses
    (202 once the script runs out)."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.arrivals: list[float] = []
        self.content_types: list[str] = []
        self.statuses: deque[int] = deque()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrivals.append(time.monotonic())
                receiver.content_types.append(self.headers["Content-Type"])
                receiver.bodies.append(json.loads(body))
                status = receiver.statuses.popleft() if receiver.statuses else 202
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def config(url: str, **changes: Any) -> DeliveryConfig:
    fields = {"timeout_seconds": 2.0, "backoff_seconds": 0.05, "max_attempts": 4, **changes}
    return DeliveryConfig(url=url, **fields)


def test_webhook_sends_alertmanagers_payload(receiver: Receiver) -> None:
    with AlertDelivery.webhook(config(receiver.url), receiver="ops") as delivery:
        assert delivery.notify([alert("main"), alert("canary", "resolved")]) == 1
        assert delivery.flush(timeout=10)
    assert receiver.content_types == ["application/json"]
    assert receiver.bodies == [
        {
            "version": "4",
            "groupKey": '{}:{alertname="RlopsModeCollapse"}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "ops",
            "groupLabels": {"alertname": "RlopsModeCollapse"},
            "commonLabels": {
                "alertname": "RlopsModeCollapse",
                "app": "pricing",
                "severity": "critical",
            },
            "commonAnnotations": {"description": DESCRIPTION},
            "externalURL": "",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {
                        "alertname": "RlopsModeCollapse",
                        "app": "pricing",
                        "arm": "main",
                        "severity": "critical",
                    },
                    "annotations": {"description": DESCRIPTION, "summary": "main collapsed"},
                    "startsAt": "2023-11-14T22:13:20.000Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "",
                    "fingerprint": alert("main").fingerprint,
                },
                {
                    "status": "resolved",
                    "labels": {
                        "alertname": "RlopsModeCollapse",
                        "app": "pricing",
                        "arm": "canary",
                        "severity": "critical",
                    },
                    "annotations": {"description": DESCRIPTION, "summary": "canary collapsed"},
                    "startsAt": "2023-11-14T22:13:20.000Z",
                    "endsAt": "2023-11-14T22:23:20.000Z",
                    "generatorURL": "",
                    "fingerprint": alert("canary").fingerprint,
                },
            ],
        }
    ]
    assert delivery.stats() == DeliveryStats(queued=1, delivered=1)


def test_webhook_groups_by_alert_name_and_reports_resolution() -> None:
    other = Alert(
        name="RlopsJoinLag",
        labels=labels_of({"alertname": "RlopsJoinLag", "app": "pricing"}),
        state="resolved",
        starts_at=T0,
        ends_at=T0 + 60,
        value=1000.0,
        annotations=(),
    )
    messages = webhook_messages([alert("main", "resolved"), other, alert("canary", "resolved")])
    assert [(m["groupLabels"]["alertname"], m["status"], len(m["alerts"])) for m in messages] == [
        ("RlopsModeCollapse", "resolved", 2),
        ("RlopsJoinLag", "resolved", 1),
    ]


def test_pagerduty_trigger_then_resolve_share_the_dedup_key(receiver: Receiver) -> None:
    delivery = AlertDelivery.pagerduty(
        config(receiver.url), routing_key="R0UT1NGKEY", source="rlops-pricing"
    )
    with delivery:
        delivery.notify([alert("main", value=float("inf"))])
        delivery.notify([alert("main", "resolved")])
        assert delivery.flush(timeout=10)
    key = alert("main").fingerprint
    assert receiver.bodies == [
        {
            "routing_key": "R0UT1NGKEY",
            "event_action": "trigger",
            "dedup_key": key,
            "payload": {
                "summary": "main collapsed",
                "source": "rlops-pricing",
                "severity": "critical",
                "timestamp": "2023-11-14T22:13:20.000Z",
                "class": "RlopsModeCollapse",
                "custom_details": {
                    "labels": {
                        "alertname": "RlopsModeCollapse",
                        "app": "pricing",
                        "arm": "main",
                        "severity": "critical",
                    },
                    "description": DESCRIPTION,
                    "value": "+Inf",
                },
            },
        },
        {"routing_key": "R0UT1NGKEY", "event_action": "resolve", "dedup_key": key},
    ]


def test_pagerduty_summary_is_cut_to_its_limit() -> None:
    long = replace(alert("main"), annotations=(("summary", "x" * 5000),))
    (event,) = pagerduty_events([long], routing_key="k")
    assert len(event["payload"]["summary"]) == 1024
    with pytest.raises(ValidationError):
        AlertDelivery.pagerduty(config("http://127.0.0.1:9/"), routing_key=" ")


def test_5xx_is_retried_with_backoff_until_accepted(receiver: Receiver) -> None:
    receiver.statuses.extend([500, 500, 202])
    with AlertDelivery.webhook(config(receiver.url)) as delivery:
        delivery.notify([alert("main")])
        assert delivery.flush(timeout=10)
    assert len(receiver.bodies) == 3
    assert receiver.bodies[0] == receiver.bodies[1] == receiver.bodies[2]
    first, second = (b - a for a, b in zip(receiver.arrivals, receiver.arrivals[1:], strict=False))
    assert first >= 0.045 and second >= 0.09  # backoff 0.05 s, then doubled
    assert delivery.stats() == DeliveryStats(queued=1, delivered=1, retries=2)


def test_a_4xx_is_not_retried(receiver: Receiver) -> None:
    receiver.statuses.extend([400, 202])
    with AlertDelivery.webhook(config(receiver.url)) as delivery:
        delivery.notify([alert("main")])
        assert delivery.flush(timeout=10)
    assert len(receiver.bodies) == 1
    assert delivery.stats() == DeliveryStats(queued=1, failed=1)


def test_429_is_retried_as_the_receiver_asks(receiver: Receiver) -> None:
    receiver.statuses.extend([429, 202])
    with AlertDelivery.webhook(config(receiver.url)) as delivery:
        delivery.notify([alert("main")])
        assert delivery.flush(timeout=10)
    assert delivery.stats() == DeliveryStats(queued=1, delivered=1, retries=1)


def test_retries_are_bounded(receiver: Receiver) -> None:
    receiver.statuses.extend([503] * 10)
    with AlertDelivery.webhook(config(receiver.url, max_attempts=3)) as delivery:
        delivery.notify([alert("main")])
        assert delivery.flush(timeout=10)
    assert len(receiver.bodies) == 3
    assert delivery.stats() == DeliveryStats(queued=1, failed=1, retries=2)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_transport_errors_are_retried_then_counted_as_failures() -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    with AlertDelivery.webhook(config(url, max_attempts=2, backoff_seconds=0.01)) as delivery:
        delivery.notify([alert("main")])
        assert delivery.flush(timeout=10)
        delivery.notify([alert("canary")])
        assert delivery.flush(timeout=10)
    assert delivery.stats() == DeliveryStats(queued=2, failed=2, retries=2)


def test_a_dead_receiver_never_blocks_notify() -> None:
    """A receiver that accepts connections and never answers: every POST hangs until its
    timeout, the queue fills, and notify still returns at once, dropping and counting."""
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        dead.listen(64)
        url = f"http://127.0.0.1:{dead.getsockname()[1]}/hook"
        settings = config(url, timeout_seconds=0.5, queue_size=3, backoff_seconds=0.01)
        delivery = AlertDelivery.webhook(settings)
        started = time.monotonic()
        accepted = sum(delivery.notify([alert(f"arm{i}")]) for i in range(50))
        assert time.monotonic() - started < 0.5
        assert 3 <= accepted <= 4  # the queue, and perhaps one already taken off it
        assert delivery.flush(timeout=0.05) is False
        started = time.monotonic()
        delivery.close(timeout=0.1)
        assert time.monotonic() - started < 0.1 + 0.5 + 1.0
    stats = delivery.stats()
    assert stats.dropped >= 50 - accepted
    assert stats.delivered == 0
    assert stats.queued == accepted
    assert stats.failed + stats.dropped == 50
    assert delivery.notify([alert("late")]) == 0  # closed: dropped, counted
    assert delivery.stats().dropped == stats.dropped + 1


@pytest.mark.parametrize(
    "change",
    [
        {"url": "ftp://example.invalid/"},
        {"timeout_seconds": 0.0},
        {"backoff_seconds": -1.0},
        {"backoff_max_seconds": float("nan")},
        {"max_attempts": 0},
        {"queue_size": 0},
    ],
)
def test_invalid_config_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DeliveryConfig(**{"url": "http://127.0.0.1:9/", **change})


def test_backoff_doubles_up_to_its_cap() -> None:
    settings = DeliveryConfig("http://127.0.0.1:9/", backoff_seconds=0.5, backoff_max_seconds=3.0)
    assert [settings.backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
