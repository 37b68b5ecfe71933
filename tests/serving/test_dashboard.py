"""The built-in dashboard in headless Chromium: it loads without console errors and its
charts hold data (the screenshot is kept as a test artifact)."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving.helpers import register_mlp, server_config
from tests.serving.live import LiveServer
from tests.tools import require_binary

ARTIFACTS = Path(os.environ.get("RLOPS_TEST_ARTIFACTS", "test-artifacts"))


def chromium() -> str:
    return require_binary("chromium", "chromium-browser", package="chromium")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    config = server_config(tmp_path, exploration={"kind": "epsilon"})
    register_mlp(config.registry, promote_to="production")
    server = LiveServer(config, tmp_path).start()
    yield server
    server.stop()


def run_chromium(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium(),
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=6000",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def traffic(url: str, stop: threading.Event, failures: list[int]) -> None:
    with httpx.Client(base_url=url) as client:
        i = 0
        while not stop.is_set():
            segment = ("bargain", "regular", "premium")[i % 3]
            response = client.post(
                "/v1/decisions", json={"unit_id": f"u{i}", "context": {"segment": segment}}
            )
            if response.status_code != 200:
                failures.append(response.status_code)
            i += 1
            time.sleep(0.002)


@pytest.fixture
def busy(live: LiveServer) -> Iterator[LiveServer]:
    """Decisions flow before and while the page scrapes."""
    stop, failures = threading.Event(), list[int]()
    thread = threading.Thread(target=traffic, args=(live.url, stop, failures))
    thread.start()
    time.sleep(1.0)
    yield live
    stop.set()
    thread.join(10)
    assert not failures


def test_the_dashboard_renders_charts_with_data_and_no_console_errors(busy: LiveServer) -> None:
    url = f"{busy.url}/dashboard?every=500"
    page = run_chromium(url, "--dump-dom")
    assert page.returncode == 0, page.stderr[-2000:]
    console = [line for line in page.stderr.splitlines() if "CONSOLE" in line]
    errors = [line for line in console if re.search(r"error|uncaught", line, re.IGNORECASE)]
    assert not errors, errors
    dom = page.stdout
    scrapes = re.search(r'data-scrapes="(\d+)"', dom)
    assert scrapes and int(scrapes.group(1)) >= 2, "the page did not scrape /metrics twice"

    def points(panel: str) -> int:
        match = re.search(rf'id="panel-{panel}".*?data-points="(\d+)"', dom, re.DOTALL)
        return int(match.group(1)) if match else 0

    assert points("actions") == 3  # one bar per segment
    assert points("defaults") > 0
    assert points("policy") == 1
    assert points("decisions") > 0 and points("latency") > 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    picture = run_chromium(url, f"--screenshot={shot.resolve()}", "--window-size=1300,1100")
    assert picture.returncode == 0 and shot.stat().st_size > 10_000
