"""The command line over a real SQLite log."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rlops.cli import app
from rlops.store import open_log
from tests.factories import decision, outcome

runner = CliRunner()


def seeded_log(path: Path) -> str:
    url = f"sqlite:///{path}"
    with open_log(url) as log:
        log.append_decisions([decision(i) for i in range(6)])
        log.append_outcomes([outcome(i, i) for i in range(4)] + [outcome(9, 99)])
    return url


def test_join_then_stats_then_snapshot(tmp_path: Path) -> None:
    url = seeded_log(tmp_path / "log.db")
    result = runner.invoke(app, ["join", "--log", url, "--app", "pricing"])
    assert result.exit_code == 0, result.output
    assert "1 outcomes quarantined" in result.output
    stats = runner.invoke(app, ["log", "stats", "--log", url, "--json"])
    data = json.loads(stats.output)
    # the pricing window is 7 days of simulated time: nothing is due yet on the real clock
    assert data["decisions"] == 6 and data["outcomes"]["quarantined"] == 1
    table = runner.invoke(app, ["log", "stats", "--log", url])
    assert "quarantined" in table.output and table.exit_code == 0
    out = tmp_path / "d.jsonl"
    exported = runner.invoke(app, ["log", "export", "--log", url, "--out", str(out)])
    assert exported.exit_code == 0 and len(out.read_text().splitlines()) == 6


def test_snapshot_command_and_errors(tmp_path: Path) -> None:
    url = seeded_log(tmp_path / "log.db")
    with open_log(url) as log:
        from rlops.apps.defaults import pricing_join_config

        log.join_step(pricing_join_config(), now=1e12)
    result = runner.invoke(
        app, ["snapshot", "--log", url, "--app", "pricing", "--out", str(tmp_path / "snaps")]
    )
    assert result.exit_code == 0, result.output
    assert "6 examples" in result.output
    empty = runner.invoke(
        app, ["snapshot", "--log", url, "--app", "advisor", "--out", str(tmp_path / "snaps")]
    )
    assert empty.exit_code == 2 and "at least one example" in empty.output
    bad = runner.invoke(app, ["join", "--log", url, "--app", "chess"])
    assert bad.exit_code == 2 and "unknown app" in bad.output
    kind = runner.invoke(app, ["log", "export", "--log", url, "--out", "x", "--kind", "cats"])
    assert kind.exit_code == 2


def test_demo_refuses_an_unknown_application(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "chess", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown demo" in result.output
    assert not list(tmp_path.iterdir())
