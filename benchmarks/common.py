"""Shared shape of a benchmark result: a figure beside its baseline from the same run.

These machines are noisy, so every benchmark measures its baseline in the same process
and reports the ratio; a target is stated on the ratio (or on the absolute value where
the issue names one) and ``passed`` says whether this run met it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class BenchResult:
    """One row of ``benchmarks/results.json``.

    ``ratio`` is value / baseline_value, oriented so that higher is better for
    throughputs (for latencies, report baseline / value, and say so in ``unit``).
    """

    name: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    ratio: float
    target: str
    passed: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def best_rate(work: Callable[[], int], *, repeats: int = 3) -> float:
    """Items per second of the fastest of ``repeats`` runs of ``work`` (returns its count)."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        count = work()
        elapsed = time.perf_counter() - start
        best = max(best, count / elapsed)
    return best
