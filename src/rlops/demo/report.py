"""The demo's report: an HTML page with PNG plots, and every figure as JSON beside it.

Self-contained on purpose: the page references only its own PNG files (no scripts, no
fonts, no network), so it opens from a directory on any machine, and the JSON holds the
same numbers for anyone who would rather compute than look.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

EVENT_COLOURS = {"canary_started": "tab:blue", "promoted": "tab:green", "rolled_back": "tab:red"}


def write_report(result: dict[str, Any], out: Path) -> Path:
    """Write ``figures.json``, the plots and ``index.html`` into ``out``; the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures.json").write_text(json.dumps(result, indent=1, default=str))
    images = {
        "timeline.png": _timeline(result),
        "uplift.png": _uplift(result),
        "off_policy.png": _off_policy(result),
        "segments.png": _segments(result),
    }
    for name, figure in images.items():
        figure.savefig(out / name, dpi=90, bbox_inches="tight")
        plt.close(figure)
    page = out / "index.html"
    page.write_text(_html(result))
    return page


def _event_lines(ax: Any, result: dict[str, Any]) -> None:
    for event in result["events"]:
        colour = EVENT_COLOURS.get(event["kind"])
        if colour is not None:
            ax.axvline(event["day"], color=colour, linestyle="--", linewidth=1)


def _timeline(result: dict[str, Any]) -> Any:
    labels = result["timeline_labels"]
    fig, axes = plt.subplots(len(labels), 1, figsize=(9, 2.4 * len(labels)), sharex=True)
    for ax, (name, label) in zip(axes, labels.items(), strict=True):
        for arm, series in result["timeline"].items():
            points = [
                (d, v) for d, v in zip(series["day"], series[name], strict=True) if v is not None
            ]
            if points:
                ax.plot(*zip(*points, strict=True), marker=".", label=arm)
        _event_lines(ax, result)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, ncol=2)
    axes[0].set_title(
        "per arm and day (dashed: blue canary started, green promoted, red rolled back)"
    )
    axes[-1].set_xlabel("simulated day")
    return fig


def _uplift(result: dict[str, Any]) -> Any:
    labels = {m: label for m, label in result["uplift_labels"].items() if m != "reward"}
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.9 * len(labels)))
    learners = list(result["uplift"])
    height = 0.8 / max(len(learners), 1)
    for i, learner in enumerate(learners):
        rows = [r for r in result["uplift"][learner] if r["metric"] in labels]
        y = [j + i * height for j in range(len(rows))]
        means = [100 * r["relative"]["mean"] for r in rows]
        errors = [
            [100 * (r["relative"]["mean"] - r["relative"]["low"]) for r in rows],
            [100 * (r["relative"]["high"] - r["relative"]["mean"]) for r in rows],
        ]
        ax.barh(y, means, height=height, xerr=errors, capsize=3, label=learner)
    ax.set_yticks([j + 0.4 - height / 2 for j in range(len(labels))], list(labels.values()))
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("% change over the rules (95% interval, paired over battery seeds)")
    ax.legend()
    ax.grid(alpha=0.3, axis="x")
    return fig


def _off_policy(result: dict[str, Any]) -> Any:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for i, (policy, estimates) in enumerate(result["off_policy"].items()):
        for j, e in enumerate(estimates):
            x = i + (j - 1) * 0.2
            ax.errorbar(
                x,
                e["value"],
                yerr=[[e["value"] - e["low"]], [e["high"] - e["value"]]],
                fmt="o",
                capsize=3,
                color=f"C{j}",
                label=e["estimator"] if i == 0 else None,
            )
        truth = result["truth"][policy]
        ax.plot([i - 0.35, i + 0.35], [truth["mean"]] * 2, color="black", linewidth=2,
                label="simulator's true value" if i == 0 else None)  # fmt: skip
    ax.set_xticks(range(len(result["off_policy"])), list(result["off_policy"]))
    ax.set_ylabel("value per decision")
    ax.set_title("off-policy estimates (95% bootstrap) beside the simulator's truth")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _segments(result: dict[str, Any]) -> Any:
    seg = result["segments"]
    actions = seg["actions"]
    policies = [p for p in seg if p not in ("actions", "segment_name")]
    fig, axes = plt.subplots(1, len(policies), figsize=(4.5 * len(policies), 3.2), sharey=True)
    axes = axes if len(policies) > 1 else [axes]
    for ax, policy in zip(axes, policies, strict=True):
        segments = list(seg[policy])
        bottom = [0.0] * len(segments)
        for k, action in enumerate(actions):
            share = [seg[policy][s][k] for s in segments]
            ax.bar(segments, share, bottom=bottom, label=action, color=f"C{k}")
            bottom = [b + v for b, v in zip(bottom, share, strict=True)]
        ax.set_title(f"{policy} (as served)")
        ax.set_xlabel(seg["segment_name"])
        ax.tick_params(axis="x", labelsize=7, rotation=20)
    axes[0].set_ylabel("share of decisions")
    axes[-1].legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    return fig


def _fmt(summary: dict[str, Any], scale: float = 1.0, digits: int = 4) -> str:
    return (
        f"{summary['mean'] * scale:.{digits}f} "
        f"[{summary['low'] * scale:.{digits}f}, {summary['high'] * scale:.{digits}f}]"
    )


def summary_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The results table: what was served, learned, estimated and decided."""
    chosen = result["chosen"]
    rows = [
        ("decisions served", f"{result['decisions']:,}"),
        ("examples joined", f"{result['examples']:,}"),
        ("candidate chosen (best off-policy estimate)", chosen),
        (
            "gate passed by",
            ", ".join(n for n, g in result.get("gate", {}).items() if g["passed"])
            or "none: the rules stay",
        ),
        ("promoted after the canary", "yes" if result["promoted"] else "no"),
        ("broken canary rolled back", "yes" if result["broken_rolled_back"] else "no"),
    ]
    for u in result["uplift"].get(chosen, []):
        label = result["uplift_labels"][u["metric"]]
        change = (  # reward sits near 0 for the rules: a ratio to it says nothing
            f"{_fmt(u['difference'])} abs"
            if u["metric"] == "reward"
            else f"{_fmt(u['relative'], 100, 1)} %"
        )
        rows.append(
            (f"{label}: {chosen} vs rules", f"{u['policy']:.4f} vs {u['rules']:.4f}; {change}")
        )
    truth = result["truth"][chosen]
    for e in result["off_policy"][chosen]:
        rows.append(
            (
                f"off-policy {e['estimator']} of {chosen} (true {truth['mean']:.4f})",
                f"{e['value']:.4f} [{e['low']:.4f}, {e['high']:.4f}] "
                + ("holds the truth" if e["covers_truth"] else "misses the truth"),
            )
        )
    rows.append(("demo wall time", f"{result['seconds']:.0f} s"))
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _battery_table(result: dict[str, Any]) -> str:
    battery = result["battery"]
    policies = list(battery)
    headline = result["headline"]
    scenarios = list(battery[policies[0]]["scenarios"])
    rows = []
    for scenario in scenarios:
        for metric in ("reward", headline):
            rows.append(
                [scenario, metric]
                + [_fmt(battery[p]["scenarios"][scenario][metric]) for p in policies]
            )
    return _table(["scenario", "metric", *policies], rows)


def _html(result: dict[str, Any]) -> str:
    app = result["app"]
    summary = _table(["", ""], [list(r) for r in summary_rows(result)])
    events = _table(
        ["day", "event", "policy", "why"],
        [[f"{e['day']:.1f}", e["kind"], str(e["policy"]), e["reason"]] for e in result["events"]],
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>rlops demo: {app}</title>
<style>
body {{ font-family: sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>rlops demo: {app}</h1>
<p>The rule engine served simulated traffic through the real service and log; outcomes
arrived with their delays on a simulated clock and were joined; a bandit and a CQL
policy were trained on the log, evaluated off-policy and on the scenario battery, and
the better one was gated, served as a canary inside the trust region and promoted. A
deliberately broken policy was then pushed as a canary and rolled back.</p>
<h2>Results</h2>{summary}
<h2>Reward and business metrics over time, per arm</h2>
<img src="timeline.png" alt="timeline">
<h2>Timeline of the loop</h2>{events}
<h2>Uplift over the rule engine</h2>
<img src="uplift.png" alt="uplift">
<h2>Off-policy estimates and the simulator's truth</h2>
<img src="off_policy.png" alt="off-policy estimates">
<h2>Scenario battery (mean [95% interval] over seeds)</h2>{_battery_table(result)}
<h2>Action distribution per {html.escape(result["segments"]["segment_name"])}</h2>
<img src="segments.png" alt="actions per segment">
<p>Figures: <a href="figures.json">figures.json</a></p>
</body></html>
"""
