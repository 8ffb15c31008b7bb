"""Confidence intervals across replications, for single values and whole tables.

Replications are independent runs, so the mean of a metric over K of them has
a Student t distribution with K - 1 degrees of freedom around the true mean
(approximately, when each run's value is close to normal). A table of K
replications becomes one table of means, each metric `m` followed by
`m_ci_low` and `m_ci_high`, the ends of its 95% interval (the names the report
reads).

Limitation: the interval of a percentile or maximum column (`n_p99`,
`latency_p99_s`) is that of the mean of per-replication percentiles, not of a
percentile of the pooled observations; latency percentiles are read from
histogram bins, so replications that agree to within a bin show a zero-width
interval.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.types import is_numeric_dtype
from scipy.special import stdtrit

CONFIDENCE = 0.95
LOW, HIGH = "_ci_low", "_ci_high"


@dataclass(frozen=True)
class Interval:
    """A mean and its two-sided Student t confidence interval."""

    mean: float
    half_width: float
    count: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def standard_error(self) -> float:
        """The estimated standard deviation of the mean: s / sqrt(count)."""
        return self.half_width / float(t_quantile(self.count))


def t_quantile(count: np.ndarray | int, confidence: float = CONFIDENCE) -> np.ndarray:
    """The two-sided t quantile for `count` values; NaN below two values."""
    degrees = np.asarray(count, dtype=float) - 1
    safe = np.where(degrees >= 1, degrees, 1)
    return np.where(degrees >= 1, stdtrit(safe, 0.5 + confidence / 2), math.nan)


def t_interval(
    values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE
) -> Interval:
    """The mean of `values` and the t interval around it, ignoring NaNs.

    With fewer than two values the half-width is NaN: one run says nothing
    about its own spread.
    """
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    if len(data) == 0:
        return Interval(math.nan, math.nan, 0)
    spread = float(data.std(ddof=1)) if len(data) > 1 else math.nan
    half = float(t_quantile(len(data), confidence)) * spread / math.sqrt(len(data))
    return Interval(float(data.mean()), half, len(data))


def summarise_replications(
    frame: pd.DataFrame,
    keys: Sequence[str],
    replication: str = "replication",
    absent_is_zero: bool = False,
) -> pd.DataFrame:
    """Means and 95% intervals of every metric, one row per key.

    `frame` holds one row per (key, replication); every numeric column that is
    neither a key nor the replication is a metric. NaN values are left out of
    a metric's mean and interval. The result keeps the order in which keys
    first appear and adds `replications`, the number of replications per key.
    `absent_is_zero` is for counts (histograms): a key missing from a
    replication counted nothing there rather than not being measured, and
    numeric keys (bins) come out sorted.
    """
    keys = list(keys)
    metrics = [
        column
        for column in frame.columns
        if column not in keys
        and column != replication
        and is_numeric_dtype(frame[column])
    ]
    if absent_is_zero:
        frame = _complete(frame, keys, replication, metrics)
    grouped = frame.groupby(keys, sort=False, dropna=False)
    means = grouped[metrics].mean()
    counts = grouped[metrics].count()
    spreads = grouped[metrics].std(ddof=1)
    halves = spreads * t_quantile(counts.to_numpy()) / np.sqrt(counts)

    columns: dict[str, pd.Series] = {
        "replications": grouped[replication].nunique(),
    }
    for metric in metrics:
        columns[metric] = means[metric]
        columns[metric + LOW] = means[metric] - halves[metric]
        columns[metric + HIGH] = means[metric] + halves[metric]
    return pd.DataFrame(columns).reset_index()


def _complete(
    frame: pd.DataFrame, keys: list[str], replication: str, metrics: list[str]
) -> pd.DataFrame:
    """Every key in every replication, with zero counts where it was absent."""
    present = frame[keys].drop_duplicates()
    runs = frame[[replication]].drop_duplicates()
    full = present.merge(runs, how="cross")
    merged = full.merge(frame, on=[*keys, replication], how="left")
    merged[metrics] = merged[metrics].fillna(0)
    # A bin first seen in a later replication goes back among its neighbours.
    return merged.sort_values(keys, key=_first_seen_order, kind="stable")


def _first_seen_order(column: pd.Series) -> pd.Series:
    """Numbers sort as numbers; names keep the order they first appear in."""
    if is_numeric_dtype(column):
        return column
    rank = {value: index for index, value in enumerate(column.unique())}
    return column.map(rank)
