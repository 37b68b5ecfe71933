"""``rlops demo``: the whole production loop on the embedded defaults, and what RL bought.

:func:`run_demo` runs one application (see :mod:`rlops.demo.run` for the steps) and
writes its report; :func:`run_demos` runs several, each into its own folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from rlops.demo.config import APPS, default_config, quick
from rlops.demo.report import summary_rows, write_report
from rlops.demo.run import run_app


def run_demo(
    app: str, *, out: Path, short: bool = False, seed: int | None = None
) -> dict[str, Any]:
    """Run ``app``'s demo with its report in ``out``; the figures (also in figures.json)."""
    console = Console()
    config = default_config(app)
    if short:
        config = quick(config)
    if seed is not None:
        config = replace(config, seed=seed)
    result = run_app(config, Path(out), say=console.print)
    page = write_report(result, Path(out) / "report")
    table = Table(title=f"rlops demo: {app}")
    table.add_column("what")
    table.add_column("result", justify="right")
    for what, value in summary_rows(result):
        table.add_row(what, value)
    console.print(table)
    console.print(f"report: {page}")
    return result


def run_demos(
    apps: Sequence[str] = APPS, *, out: Path, short: bool = False, seed: int | None = None
) -> dict[str, dict[str, Any]]:
    """Each app's demo in ``out / app``."""
    return {app: run_demo(app, out=Path(out) / app, short=short, seed=seed) for app in apps}


__all__ = ["run_demo", "run_demos"]
