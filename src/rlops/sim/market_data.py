"""Daily market history from the data that ships inside ``arch``, and synthetic markets.

History (trading days 1999-01-04 to 2018-12-31, 5,031 rows), as daily simple returns of
four assets, in the order of :data:`ASSETS`:

- ``equity``: S&P 500 adjusted close (``arch.data.sp500``);
- ``tech``: NASDAQ Composite adjusted close (``arch.data.nasdaq``);
- ``cash``: the Fama-French one-month T-bill rate ``RF`` (``arch.data.frenchdata``,
  monthly percent, 1926-07 to 2018-11), spread evenly over the month's trading days;
  December 2018 repeats November's rate;
- ``bond``: ``arch`` ships no bond series, so bonds are a stated, deterministic proxy:
  cash plus a term premium of 2% a year, minus 0.1 times the day's equity return (the
  flight-to-quality hedge). It is not data; scenarios that hinge on bonds say so.

Synthetic markets extend history: a block bootstrap of whole days (keeps cross-asset
correlation and short-range dependence), or filtered historical simulation under a
GARCH(1,1) fitted with ``arch.arch_model`` to equity returns: the fitted variance
recursion drives new volatility paths and each day's four returns are a bootstrapped
historical day standardized by its fitted equity volatility (so correlation survives).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

from rlops.core.errors import ValidationError

FloatArray = npt.NDArray[np.float64]
ASSETS: tuple[str, ...] = ("equity", "tech", "bond", "cash")
TRADING_DAYS_PER_YEAR = 252
BOND_TERM_PREMIUM = 0.02
BOND_EQUITY_BETA = -0.1


@dataclass(frozen=True, slots=True, eq=False)
class Market:
    """Daily simple returns ``(n_days, 4)`` in :data:`ASSETS` order, with their dates."""

    dates: npt.NDArray[np.datetime64]
    returns: FloatArray

    def __post_init__(self) -> None:
        if self.returns.ndim != 2 or self.returns.shape != (len(self.dates), len(ASSETS)):
            raise ValidationError(
                "market returns must be (n_days, 4) aligned with dates", field="returns"
            )

    def __len__(self) -> int:
        return len(self.dates)

    def window(self, start: str, end: str) -> Market:
        """The trading days from ``start`` to ``end`` inclusive (ISO dates)."""
        lo = np.searchsorted(self.dates, np.datetime64(start, "D"), side="left")
        hi = np.searchsorted(self.dates, np.datetime64(end, "D"), side="right")
        if hi - lo < 1:
            raise ValidationError(f"no trading days between {start} and {end}", field="start")
        return Market(self.dates[lo:hi], self.returns[lo:hi])

    def index_of(self, date: str) -> int:
        """Position of the first trading day on or after ``date``."""
        return int(np.searchsorted(self.dates, np.datetime64(date, "D"), side="left"))


@lru_cache(maxsize=1)
def history() -> Market:
    """The shipped daily history, 1999-01-04 to 2018-12-31 (cached per process)."""
    from arch.data import frenchdata, nasdaq, sp500

    spx = sp500.load()["Adj Close"]
    ndx = nasdaq.load()["Adj Close"]
    if not spx.index.equals(ndx.index):
        raise ValidationError("S&P 500 and NASDAQ dates differ in arch.data", field="dates")
    dates = spx.index.values.astype("datetime64[D]")
    equity = np.concatenate([[0.0], np.diff(spx.to_numpy()) / spx.to_numpy()[:-1]])
    tech = np.concatenate([[0.0], np.diff(ndx.to_numpy()) / ndx.to_numpy()[:-1]])
    factors = frenchdata.load()
    # The frame's index holds yyyymm integers stored as nanoseconds.
    months = np.asarray(factors.index.asi8)  # type: ignore[attr-defined]  # a DatetimeIndex
    rf_monthly = dict(
        zip(months.tolist(), (factors["RF"].to_numpy() / 100.0).tolist(), strict=True)
    )
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    month_of_year = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    yyyymm = years * 100 + month_of_year
    last = max(rf_monthly)
    rate = np.asarray([rf_monthly.get(int(m), rf_monthly[last]) for m in yyyymm])
    _, inverse, counts = np.unique(yyyymm, return_inverse=True, return_counts=True)
    cash = (1.0 + rate) ** (1.0 / counts[inverse]) - 1.0
    bond = cash + BOND_TERM_PREMIUM / TRADING_DAYS_PER_YEAR + BOND_EQUITY_BETA * equity
    returns = np.column_stack([equity, tech, bond, cash])
    returns[0] = 0.0  # no return before the first close
    return Market(dates, returns)


def block_bootstrap(
    market: Market, n_days: int, rng: np.random.Generator, *, block_days: int = 20
) -> FloatArray:
    """``(n_days, 4)`` returns built from whole-day blocks of ``market`` drawn at random."""
    if len(market) <= block_days:
        raise ValidationError("market is shorter than one block", field="block_days")
    n_blocks = -(-n_days // block_days)
    starts = rng.integers(0, len(market) - block_days, size=n_blocks)
    rows = (starts[:, None] + np.arange(block_days)[None, :]).reshape(-1)[:n_days]
    out: FloatArray = market.returns[rows]
    return out


@dataclass(frozen=True, slots=True)
class Garch:
    """GARCH(1,1) on daily equity returns in percent: ``s2' = omega + alpha e^2 + beta s2``."""

    mu: float
    omega: float
    alpha: float
    beta: float
    sigma: FloatArray  # fitted conditional volatility per historical day, percent


@lru_cache(maxsize=1)
def fitted_garch() -> Garch:
    """GARCH(1,1) with a constant mean, fitted by ``arch`` to shipped equity returns.

    Fitted on one BLAS thread: the optimiser's sums over 5,000 days round differently
    with the thread count, and the fit must not depend on the machine or on the process
    running it (a Ray worker runs with one thread), or a battery's metrics would.
    """
    from arch import arch_model
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no stubs

    equity = 100.0 * history().returns[1:, 0]
    with threadpool_limits(limits=1):
        result = arch_model(equity, mean="Constant", vol="GARCH", p=1, q=1).fit(disp="off")
    params = result.params
    return Garch(
        mu=float(params["mu"]),
        omega=float(params["omega"]),
        alpha=float(params["alpha[1]"]),
        beta=float(params["beta[1]"]),
        sigma=np.asarray(result.conditional_volatility, dtype=np.float64),
    )


def garch_paths(n_days: int, rng: np.random.Generator, *, vol_scale: float = 1.0) -> FloatArray:
    """``(n_days, 4)`` returns by filtered historical simulation under the fitted GARCH.

    ``vol_scale`` multiplies the long-run volatility (``omega`` by its square) and the
    starting volatility: 2.0 gives a market about twice as volatile as 1999-2018.
    """
    garch = fitted_garch()
    hist = history().returns[1:]
    means = hist.mean(axis=0)
    standardized = (hist - means) / (garch.sigma[:, None] / 100.0)
    days = rng.integers(0, len(hist), size=n_days)
    omega = garch.omega * vol_scale**2
    long_run = omega / max(1e-12, 1.0 - garch.alpha - garch.beta)
    variance = long_run
    out = np.empty((n_days, len(ASSETS)))
    for t, day in enumerate(days):
        sigma = np.sqrt(variance) / 100.0
        out[t] = means + sigma * standardized[day]
        shock = 100.0 * sigma * standardized[day, 0]
        variance = omega + garch.alpha * shock**2 + garch.beta * variance
    out[:, 3] = hist[days, 3]  # cash keeps its historical rate: it has no volatility to scale
    return np.asarray(out)


MarketMode = Literal["replay", "bootstrap", "garch"]


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """Where an advisor run's market comes from.

    ``replay`` walks ``start``..``end`` of history (decisions on those days, reward
    windows may run past ``end``); ``bootstrap`` and ``garch`` draw ``n_days`` synthetic
    days (plus room for the last window) from the seed.
    """

    mode: MarketMode = "replay"
    start: str = "2003-03-03"
    end: str = "2007-10-31"
    n_days: int = 250
    block_days: int = 20
    vol_scale: float = 1.0


def build_market(
    spec: MarketSpec, rng: np.random.Generator, *, lookback: int, window: int
) -> tuple[Market, int, int]:
    """The market for a run and the ``[first, last)`` decision-day indices into it.

    Keeps ``lookback`` days before the first decision (for trailing features) and
    ``window`` after the last (for its reward window).
    """
    if spec.mode == "replay":
        full = history()
        first = max(full.index_of(spec.start), lookback)
        after_end = int(np.searchsorted(full.dates, np.datetime64(spec.end, "D"), side="right"))
        last = min(after_end, len(full) - window)
        if last <= first:
            raise ValidationError(
                f"replay window {spec.start}..{spec.end} leaves no decision days", field="start"
            )
        return full, first, last
    total = lookback + spec.n_days + window
    if spec.mode == "bootstrap":
        returns = block_bootstrap(history(), total, rng, block_days=spec.block_days)
    elif spec.mode == "garch":
        returns = garch_paths(total, rng, vol_scale=spec.vol_scale)
    else:
        raise ValidationError(f"unknown market mode {spec.mode!r}", field="mode")
    dates = np.busday_offset(np.datetime64("2019-01-02", "D"), np.arange(total), roll="forward")
    return Market(dates, returns), lookback, lookback + spec.n_days
