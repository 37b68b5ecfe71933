"""The shortened demo, end to end, as CI runs it: every step of the story, and a report
that a real browser opens with every picture loaded.

The full demo's figures (uplift, off-policy against the truth) are measured by
``make demo`` and stated in the README; here the shortened run must still tell the whole
story: rules served and joined, two candidates trained and evaluated, the better one
canaried and promoted, a broken canary rolled back.
"""

from __future__ import annotations

import functools
import http.server
import json
import math
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlops.cli import app
from tests.tools import require_binary

runner = CliRunner()

# Opens the report in a same-origin frame and writes whether every image decoded.
CHECK = """<!doctype html><html><body><iframe id="r" src="index.html"></iframe><script>
document.getElementById("r").onload = () => {
  const imgs = [...document.getElementById("r").contentDocument.images];
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
  document.body.setAttribute("data-result", JSON.stringify({n: imgs.length, bad: bad}));
};
</script></body></html>"""


@pytest.fixture(scope="module")
def pricing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    result = runner.invoke(app, ["demo", "pricing", "--out", str(out), "--short"])
    assert result.exit_code == 0, result.output
    assert "rlops demo: pricing" in result.output  # the summary table
    return out


def test_the_short_demo_tells_the_whole_story(pricing: Path) -> None:
    figures = json.loads((pricing / "report" / "figures.json").read_text())
    kinds = [(e["kind"], e["policy"]) for e in figures["events"]]
    chosen = figures["chosen"]
    assert kinds == [
        ("canary_started", chosen),
        ("promoted", chosen),
        ("canary_started", "broken"),
        ("rolled_back", "broken"),
    ]
    assert figures["promoted"] and figures["broken_rolled_back"]
    # Every decision served was logged, and the log joined (rules days minus the window).
    assert figures["examples"] > 0.3 * figures["decisions"] > 0
    # Both learners were evaluated off-policy, with intervals around their values.
    assert set(figures["off_policy"]) == {"rules", "bandit", "cql"}
    for estimates in figures["off_policy"].values():
        assert [e["estimator"] for e in estimates] == ["ips", "snips", "dr"]
        for e in estimates:
            assert e["low"] <= e["value"] <= e["high"] and math.isfinite(e["value"])
    # The chosen policy earns more than the rules in the simulator, paired over seeds.
    reward = next(u for u in figures["uplift"][chosen] if u["metric"] == "reward")
    assert reward["difference"]["mean"] > 0
    # The broken canary earned far less than production while it served.
    broken = [v for k, v in figures["timeline"].items() if k.endswith("broken")]
    assert broken and max(x for x in broken[0]["reward"] if x is not None) < 0
    for name in ("index.html", "timeline.png", "uplift.png", "off_policy.png", "segments.png"):
        assert (pricing / "report" / name).stat().st_size > 1000


@pytest.fixture
def served_report(pricing: Path, tmp_path: Path) -> Iterator[str]:
    site = tmp_path / "site"
    shutil.copytree(pricing / "report", site)
    (site / "check.html").write_text(CHECK)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/check.html"
    finally:
        server.shutdown()
        server.server_close()


def test_the_report_opens_in_chromium_with_every_image_loaded(served_report: str) -> None:
    browser = require_binary("chromium", "chromium-browser", package="chromium")
    page = subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu",
         "--disable-dev-shm-usage", "--virtual-time-budget=6000", "--dump-dom", served_report],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert page.returncode == 0, page.stderr[-2000:]
    marker = 'data-result="'
    assert marker in page.stdout, page.stdout[-2000:]
    raw = page.stdout.split(marker, 1)[1].split('"', 1)[0].replace("&quot;", '"')
    result = json.loads(raw)
    assert result == {"n": 4, "bad": []}
