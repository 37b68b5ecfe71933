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

# Off-policy evaluation (issue 5): commands import their heavy modules lazily.
from rlops.ope import commands as _ope  # noqa: E402

app.command("evaluate")(_ope.evaluate)
app.add_typer(_ope.import_app, name="import")


def main() -> None:
    app()
