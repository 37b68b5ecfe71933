"""The ``rlops`` command line.

Each area registers its commands here with one line, importing lazily inside the
command so ``rlops --help`` stays fast and serving never imports training code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="rlops",
    help="Run reinforcement-learning decision agents in production.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def simulate(
    app_name: Annotated[str, typer.Option("--app", help="pricing or advisor")],
    policy: Annotated[str, typer.Option(help="baseline, bad or random")] = "baseline",
    seeds: Annotated[int, typer.Option(help="seeds per scenario")] = 3,
    json_out: Annotated[Path | None, typer.Option("--json", help="write results here")] = None,
) -> None:
    """Run a policy on the scenario battery and print each metric with its interval."""
    from rlops.sim.cli import simulate_command

    simulate_command(app_name, policy, seeds, json_out)


@app.command()
def gate(
    app_name: Annotated[str, typer.Option("--app", help="pricing or advisor")],
    thresholds: Annotated[Path | None, typer.Option(help="JSON or TOML thresholds")] = None,
    policy: Annotated[str, typer.Option(help="baseline, bad or random")] = "baseline",
    seeds: Annotated[int, typer.Option(help="seeds per scenario")] = 3,
) -> None:
    """Exit non-zero, naming each failing threshold, unless the policy passes the battery."""
    from rlops.sim.cli import gate_command

    raise typer.Exit(gate_command(app_name, policy, seeds, thresholds))


def main() -> None:
    app()
