"""Open-loop HTTP/1.1 load at a constant rate; latency counts from each intended send time.

wrk is closed-loop: each connection sends its next request only after the last answer,
so when the server stalls the load stops too and the stall is recorded once, not once
per request that should have been sent meanwhile (coordinated omission). Here request
``i`` is due at ``start + i / rate`` whatever happened before; it goes out on an idle
keep-alive connection or waits for one, and its latency runs from the due time to the
end of its response. A server that falls behind is thus charged for the whole queue.

The generator is Python, so it can fall behind too: ``lag`` is how late it noticed each
due time (its own CPU and timer resolution, not the server's), and ``achieved_rate``
is what it completed. Both are in the report so a run that did not hold its rate says so.
Due times come from a periodic Linux timerfd watched by the event loop: libuv's own
timers tick in whole milliseconds, which would add up to a millisecond to every latency,
and spinning instead would take a core from the server on a two-core machine.

Run as its own process so its CPU is not the caller's::

    python -m benchmarks.loadgen --url http://127.0.0.1:8000/v1/decisions --rate 2000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import os
import subprocess
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
UNITS = 10_000
CONTEXT = '{"price_ratio":1.0}'


def request_body(unit: int, context: str = CONTEXT) -> bytes:
    """The decision request every bench server gets (wrk's script builds the same text)."""
    return f'{{"unit_id":"u{unit}","context":{context}}}'.encode()


@dataclass(frozen=True, slots=True)
class LoadReport:
    """One open-loop run over its measured window (warm-up excluded). Latencies in us.

    ``all_sent`` and ``all_2xx`` count the warm-up too: what a server's log should hold.
    """

    requested_rate: float
    achieved_rate: float
    duration_s: float
    scheduled: int
    ok: int
    non_2xx: int
    errors: int
    unfinished: int
    p50_us: float
    p99_us: float
    max_us: float
    lag_p99_us: float
    cpu_share: float
    all_sent: int
    all_2xx: int

    @property
    def clean(self) -> bool:
        """Every scheduled request came back 2xx."""
        return self.non_2xx == 0 and self.errors == 0 and self.unfinished == 0 and self.ok > 0

    @property
    def held_rate(self) -> bool:
        """Completed within 3% of the requested rate (the server or the generator fell behind
        otherwise, and the latencies then include the queue that built up)."""
        return self.achieved_rate >= 0.97 * self.requested_rate

    @property
    def on_time(self) -> bool:
        """The generator itself noticed due times within 1 ms at p99: its own lateness, which
        the latencies include, stayed small."""
        return self.lag_p99_us < 1_000.0


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not ordered:
        return 0.0
    rank = max(1, min(len(ordered), math.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]


class _TimeSpec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _ITimerSpec(ctypes.Structure):
    _fields_ = (("it_interval", _TimeSpec), ("it_value", _TimeSpec))


def _timespec(seconds: float) -> _TimeSpec:
    whole = int(seconds)
    return _TimeSpec(whole, int((seconds - whole) * 1e9))


class _PeriodicTimer:
    """A timerfd (``timerfd_create(2)``; Python gains it only in 3.13) that becomes readable
    every ``interval`` seconds from ``start``, both on ``time.monotonic``'s clock."""

    _CLOCK_MONOTONIC = 1
    _TFD_NONBLOCK_CLOEXEC = os.O_NONBLOCK | os.O_CLOEXEC
    _TFD_TIMER_ABSTIME = 1

    def __init__(self, start: float, interval: float) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = int(libc.timerfd_create(self._CLOCK_MONOTONIC, self._TFD_NONBLOCK_CLOEXEC))
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")
        spec = _ITimerSpec(_timespec(interval), _timespec(start))
        if libc.timerfd_settime(self.fd, self._TFD_TIMER_ABSTIME, ctypes.byref(spec), None):
            os.close(self.fd)
            raise OSError(ctypes.get_errno(), "timerfd_settime")

    def clear(self) -> None:
        """Consume the expiry count (the schedule, not the count, says what is due)."""
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)

    def close(self) -> None:
        os.close(self.fd)


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request in flight; responses need a Content-Length."""

    def __init__(self, generator: _Generator) -> None:
        self.generator = generator
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.intended = 0.0
        self.measured = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport writes like asyncio.Transport but does not subclass it.
        self.transport = cast("asyncio.Transport", transport)

    def send(self, payload: bytes, intended: float, measured: bool) -> None:
        assert self.transport is not None
        self.intended = intended
        self.measured = measured
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self.buffer[:head_end]).lower()
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                raise RuntimeError("loadgen reads Content-Length responses only (chunked seen?)")
            end = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : end if end >= 0 else len(head)])
            total = head_end + 4 + length
            if len(self.buffer) < total:
                return
            status = int(self.buffer[9:12])
            del self.buffer[:total]
            self.generator.on_response(self, status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.generator.on_lost(self)


class _Generator:
    """The schedule and the connection pool; every callback runs on the event loop thread, so
    the bookkeeping needs no locks."""

    def __init__(self, payloads: list[bytes], rate: float, duration: float, warmup: float) -> None:
        self.payloads = payloads
        self.idle: deque[_Connection] = deque()
        self.busy: set[_Connection] = set()
        self.backlog: deque[tuple[float, bool]] = deque()  # (intended time, measured)
        self.measure_from = 0.0
        self.last_done = 0.0
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.non_2xx = 0
        self.errors = 0
        self.sent = 0
        self.all_2xx = 0
        self.start = 0.0
        self.interval = 1.0 / rate
        self.total = round((warmup + duration) * rate)
        self.warm = round(warmup * rate)  # requests before this index are not measured
        self.next = 0
        self.drained = asyncio.Event()

    def _send(self, connection: _Connection, intended: float, measured: bool) -> None:
        self.busy.add(connection)
        connection.send(self.payloads[self.sent % len(self.payloads)], intended, measured)
        self.sent += 1

    def _due(self, index: int, now: float) -> None:
        intended = self.start + index * self.interval
        measured = index >= self.warm
        if measured:
            self.lags.append(now - intended)
        if self.idle:
            self._send(self.idle.popleft(), intended, measured)
        else:
            self.backlog.append((intended, measured))

    def on_response(self, connection: _Connection, status: int) -> None:
        now = time.monotonic()
        self.busy.discard(connection)
        self.all_2xx += 200 <= status < 300
        if connection.measured:
            self.last_done = now
            if 200 <= status < 300:
                self.latencies.append(now - connection.intended)
            else:
                self.non_2xx += 1
        if self.backlog:
            self._send(connection, *self.backlog.popleft())
        else:
            self.idle.append(connection)
            if not self.busy:
                self.drained.set()

    def on_lost(self, connection: _Connection) -> None:
        if connection in self.busy:
            self.busy.discard(connection)
            if connection.measured:
                self.errors += 1
            if not self.busy:
                self.drained.set()
        if connection in self.idle:
            self.idle.remove(connection)

    def _tick(self, timer: _PeriodicTimer, finished: asyncio.Future[None]) -> None:
        timer.clear()
        now = time.monotonic()
        while self.next < self.total and self.start + self.next * self.interval <= now:
            self._due(self.next, now)
            self.next += 1
        if self.next >= self.total and not finished.done():
            finished.set_result(None)

    async def schedule(self) -> int:
        """Fire every due time; returns how many fell in the measured window."""
        loop = asyncio.get_running_loop()
        # time.monotonic is CLOCK_MONOTONIC on Linux, the timerfd's clock.
        self.start = time.monotonic() + 0.01
        self.measure_from = self.start + self.warm * self.interval
        finished: asyncio.Future[None] = loop.create_future()
        timer = _PeriodicTimer(self.start, self.interval)
        loop.add_reader(timer.fd, self._tick, timer, finished)
        try:
            await finished
        finally:
            loop.remove_reader(timer.fd)
            timer.close()
        return self.total - self.warm


async def generate(
    url: str,
    *,
    rate: float,
    duration: float,
    warmup: float,
    connections: int,
    drain_timeout: float = 5.0,
) -> LoadReport:
    """Open ``connections`` keep-alive connections to ``url`` and run the schedule on them."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    payloads = [
        b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s"
        % (parts.path.encode(), host.encode(), port, len(body), body)
        for body in map(request_body, range(UNITS))
    ]
    generator = _Generator(payloads, rate, duration, warmup)
    loop = asyncio.get_running_loop()
    for _ in range(connections):
        _, protocol = await loop.create_connection(lambda: _Connection(generator), host, port)
        generator.idle.append(protocol)
    cpu_start = time.process_time()
    scheduled = await generator.schedule()
    if generator.busy or generator.backlog:
        generator.drained.clear()
        with contextlib.suppress(TimeoutError):  # what is left counts as unfinished
            await asyncio.wait_for(generator.drained.wait(), drain_timeout)
    cpu = time.process_time() - cpu_start
    unfinished = sum(measured for _, measured in generator.backlog) + sum(
        c.measured for c in generator.busy
    )
    for connection in [*generator.idle, *generator.busy]:
        if connection.transport is not None:
            connection.transport.close()
    ordered = sorted(generator.latencies)
    lags = sorted(generator.lags)
    window = max(generator.last_done - generator.measure_from, duration)
    return LoadReport(
        requested_rate=rate,
        achieved_rate=len(ordered) / window,
        duration_s=window,
        scheduled=scheduled,
        ok=len(ordered),
        non_2xx=generator.non_2xx,
        errors=generator.errors,
        unfinished=unfinished,
        p50_us=percentile(ordered, 50) * 1e6,
        p99_us=percentile(ordered, 99) * 1e6,
        max_us=(ordered[-1] if ordered else 0.0) * 1e6,
        lag_p99_us=percentile(lags, 99) * 1e6,
        cpu_share=cpu / (warmup + window),
        all_sent=generator.sent,
        all_2xx=generator.all_2xx,
    )


def run_loadgen(
    url: str, *, rate: float, duration: float, warmup: float = 1.0, connections: int = 32
) -> LoadReport:
    """Run the generator in a separate process (its CPU is not ours) and read its report."""
    command = [sys.executable, "-m", "benchmarks.loadgen", "--url", url, "--rate", f"{rate:.3f}"]
    command += ["--duration", str(duration), "--warmup", str(warmup)]
    command += ["--connections", str(connections)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    timeout = warmup + duration + 30.0
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed ({done.returncode}):\n{done.stderr[-2000:]}")
    fields: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return LoadReport(**fields)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    import uvloop

    report = uvloop.run(
        generate(
            args.url,
            rate=args.rate,
            duration=args.duration,
            warmup=args.warmup,
            connections=args.connections,
        )
    )
    print(json.dumps(asdict(report)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
