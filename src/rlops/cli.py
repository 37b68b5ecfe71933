"""The ``rlops`` command line.

Each area registers its commands here with one line, importing lazily inside the
command so ``rlops --help`` stays fast and serving never imports training code.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="rlops",
    help="Run reinforcement-learning decision agents in production.",
    no_args_is_help=True,
    add_completion=False,
)


def main() -> None:
    app()
