"""Run estimators over checked inputs and attach intervals: the one entry point callers use.

``estimate_all`` resamples every estimator's terms with the same bootstrap indices in one
pass, so comparing estimators costs one bootstrap, not one each.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlops.ope.estimate import BanditInputs, Estimate, Estimator, IntervalMethod, Terms
from rlops.ope.intervals import (
    Bernstein,
    Bootstrap,
    Interval,
    Normal,
    bootstrap_means,
    interval,
    percentile_interval,
    resampled_values,
    term_columns,
)


def _method(config: Interval) -> IntervalMethod:
    if isinstance(config, Bootstrap):
        return "bootstrap"
    if isinstance(config, Normal):
        return "normal"
    return "bernstein"


def _record(name: str, terms: Terms, config: Interval, low: float, high: float) -> Estimate:
    return Estimate(
        estimator=name,
        value=terms.value(),
        low=low,
        high=high,
        level=config.level,
        method=_method(config),
        ess=terms.ess(),
        clipped_mass=terms.clipped_mass,
        n=terms.n,
    )


def estimate(
    estimator: Estimator, data: BanditInputs, *, interval_config: Interval | None = None
) -> Estimate:
    """``estimator``'s value on ``data`` with an interval (default: 95% bootstrap, seed 0)."""
    config = interval_config if interval_config is not None else Bootstrap()
    terms = estimator.terms(data)
    low, high = interval(terms, config)
    return _record(estimator.name, terms, config, low, high)


def estimate_all(
    estimators: Sequence[Estimator],
    data: BanditInputs,
    *,
    interval_config: Interval | None = None,
) -> list[Estimate]:
    """Every estimator on ``data``; with a bootstrap, all share one set of resamples."""
    config = interval_config if interval_config is not None else Bootstrap()
    all_terms = [e.terms(data) for e in estimators]
    if not isinstance(config, Bootstrap):
        out = []
        for e, terms in zip(estimators, all_terms, strict=True):
            low, high = interval(terms, config)
            out.append(_record(e.name, terms, config, low, high))
        return out
    blocks = [term_columns(t) for t in all_terms]
    means = bootstrap_means(
        np.hstack(blocks),
        n_resamples=config.n_resamples,
        seed=config.seed,
        workers=config.workers,
    )
    results, column = [], 0
    for e, terms, block in zip(estimators, all_terms, blocks, strict=True):
        width = block.shape[1]
        values = resampled_values(terms, means[:, column : column + width])
        column += width
        low, high = percentile_interval(values, config.level)
        results.append(_record(e.name, terms, config, low, high))
    return results


__all__ = ["Bernstein", "Bootstrap", "Normal", "estimate", "estimate_all"]
