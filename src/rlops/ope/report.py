"""Evaluation reports: a table of every estimator with its interval, and a plot.

The plot shows, per policy, each estimator's point estimate with its interval as an
error bar; it is drawn with matplotlib's Agg backend so it works on a headless server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from rlops.ope.diagnostics import Diagnostics
from rlops.ope.estimate import Estimate


@dataclass(frozen=True, slots=True)
class PolicyReport:
    """Every estimate of one target policy on one log, with its diagnostics."""

    policy: str
    estimates: tuple[Estimate, ...]
    diagnostics: Diagnostics

    def to_json(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "estimates": [e.to_json() for e in self.estimates],
            "diagnostics": self.diagnostics.to_json(),
        }


def table(reports: Sequence[PolicyReport]) -> Table:
    """A rich table: one row per (policy, estimator)."""
    level = reports[0].estimates[0].level if reports and reports[0].estimates else 0.95
    out = Table(title="Off-policy estimates")
    for column in ("policy", "estimator", "value", f"{level:.0%} interval", "ESS", "clipped"):
        out.add_column(column, justify="left" if column in ("policy", "estimator") else "right")
    out.add_column("verdict")
    for report in reports:
        for e in report.estimates:
            out.add_row(
                report.policy,
                e.estimator,
                f"{e.value:.4f}",
                f"[{e.low:.4f}, {e.high:.4f}]",
                f"{e.ess:.0f}",
                f"{e.clipped_mass:.1%}",
                report.diagnostics.verdict,
            )
    return out


def plot(reports: Sequence[PolicyReport], path: Path) -> Path:
    """Point estimates with interval bars, grouped by policy, written to ``path`` (PNG/SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({e.estimator for r in reports for e in r.estimates})
    width = 0.8 / max(len(reports), 1)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.1 * len(names)), 4.0))
    for j, report in enumerate(reports):
        by_name = {e.estimator: e for e in report.estimates}
        xs, ys, lows, highs = [], [], [], []
        for i, name in enumerate(names):
            if name in by_name:
                e = by_name[name]
                xs.append(i + (j - (len(reports) - 1) / 2) * width)
                ys.append(e.value)
                lows.append(max(e.value - e.low, 0.0))
                highs.append(max(e.high - e.value, 0.0))
        axes.errorbar(
            xs,
            ys,
            yerr=[lows, highs],
            fmt="o",
            capsize=3,
            label=f"{report.policy} ({report.diagnostics.verdict})",
        )
    axes.set_xticks(range(len(names)), names, rotation=30, ha="right")
    axes.set_ylabel("estimated policy value")
    axes.legend(fontsize="small")
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
