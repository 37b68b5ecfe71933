"""The server bench's load tools against the no-op app in a real uvicorn process.

A broken parser or schedule would otherwise surface only as odd figures in ``make bench``;
here a short run must count exactly what it scheduled and parse ordered percentiles.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from benchmarks.loadgen import percentile, run_loadgen
from benchmarks.server_proc import free_port, serving, uvicorn_command
from benchmarks.wrk_load import run_wrk, wrk_available


@pytest.fixture(scope="module")
def noop_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    command = uvicorn_command("benchmarks.server_apps:noop_app", port, workers=1)
    output = tmp_path_factory.mktemp("noop") / "noop.out"
    with serving("noop", command, port, output) as server:
        yield server.base_url + "/noop"


def test_percentile_is_nearest_rank() -> None:
    ordered = [float(i) for i in range(1, 101)]
    assert percentile(ordered, 50) == 50.0
    assert percentile(ordered, 99) == 99.0
    assert percentile(ordered, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0


def test_loadgen_holds_a_rate_and_reports_percentiles(noop_url: str) -> None:
    report = run_loadgen(noop_url, rate=200.0, duration=1.0, warmup=0.2, connections=4)
    assert report.clean, report
    assert report.scheduled == report.ok == 200
    assert report.all_sent == report.all_2xx == 240
    assert report.achieved_rate > 0.0
    assert 0.0 < report.p50_us <= report.p99_us <= report.max_us


def test_wrk_reports_rate_and_percentiles(noop_url: str) -> None:
    if wrk_available() is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set, so the wrk smoke test must not skip: wrk is not installed")
        pytest.skip("wrk is not installed (Debian: apt-get install wrk)")
    report = run_wrk(noop_url, duration_s=1, connections=4)
    assert report.clean, report
    assert report.rate > 0.0
    assert report.ok <= report.sent
    assert 0.0 < report.p50_us <= report.p99_us
