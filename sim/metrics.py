"""Streaming collectors: counters, growable arrays and log-scale histograms.

A large run delivers billions of messages, so per-message values go into
fixed-size histograms (with exact sums for means); only per-change values,
one number per status change, are kept whole.
"""

import array
import math

import numpy as np

from sim.jit import kernel_without_refcounts

# The bins of every histogram: 100 per decade over 16 decades from 0.1
# microseconds. Kernels compile them in (sim/jit.py keys its cache by this
# file for that reason).
LOW = 1e-7
DECADES = 16
PER_DECADE = 100
BINS = DECADES * PER_DECADE


@kernel_without_refcounts
def bin_of(value: float) -> int:
    """The histogram bin of a value; zeros and values below `LOW` go to the
    first bin."""
    if value <= LOW:
        return 0
    return min(int(math.log10(value / LOW) * PER_DECADE), BINS - 1)


@kernel_without_refcounts
def bin_into(counts: np.ndarray, values: np.ndarray, shift: float) -> float:
    """Count each of `values` + `shift` into its bin; returns their sum."""
    total = 0.0
    # A value equal to the one before it (as most deliveries of a push that
    # waited for no worker are) reuses its bin.
    last = math.nan
    current = 0
    for i in range(len(values)):
        value = values[i] + shift
        if value != last:
            current = bin_of(value)
            last = value
        counts[current] += 1
        total += value
    return total


class LogHistogram:
    """Counts of positive values in log-spaced bins, plus their exact sum.

    With 100 bins per decade a bin spans 2.3%, so a percentile read from it is
    within about 1.2% of the exact one. Zeros and values below `low` go to
    the first bin.
    """

    low = LOW
    per_decade = PER_DECADE
    bins = BINS

    def __init__(self) -> None:
        self.counts = np.zeros(BINS, dtype=np.int64)
        self.total = 0.0
        self.count = 0

    @classmethod
    def from_counts(
        cls, counts: np.ndarray, total: float, count: int
    ) -> "LogHistogram":
        """A histogram holding `counts`, whose values sum to `total`."""
        histogram = cls()
        histogram.counts = counts.astype(np.int64, copy=True)
        histogram.total = float(total)
        histogram.count = int(count)
        return histogram

    def add(self, values: np.ndarray, shift: float = 0.0) -> None:
        """Add each of `values` + `shift`."""
        if len(values):
            self.total += bin_into(self.counts, values, shift)
            self.count += len(values)

    def add_one(self, value: float) -> None:
        """Add a single value."""
        self.counts[bin_of(value)] += 1
        self.total += value
        self.count += 1

    def binned(self, count: int, total: float) -> None:
        """Account for `count` values summing to `total` that a kernel has
        already counted into `counts` (with `bin_of`)."""
        self.count += count
        self.total += total

    def add_counts(self, other: "LogHistogram") -> None:
        """Fold in another histogram."""
        self.counts += other.counts
        self.total += other.total
        self.count += other.count

    def edges(self) -> np.ndarray:
        return LOW * 10.0 ** (np.arange(BINS + 1) / PER_DECADE)

    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def quantile(self, q: float) -> float:
        """The q-quantile, read at the geometric middle of its bin."""
        if self.count == 0:
            return math.nan
        position = int(np.searchsorted(np.cumsum(self.counts), q * self.count))
        position = min(position, BINS - 1)
        edges = self.edges()
        return float(math.sqrt(edges[position] * edges[position + 1]))


class IntSeries:
    """An append-only sequence of 64-bit integers, read as a numpy array."""

    def __init__(self) -> None:
        self._data = array.array("q")

    def append(self, value: int) -> None:
        self._data.append(value)

    def values(self) -> np.ndarray:
        """The values so far, sharing no memory with later appends."""
        return np.array(self._data, dtype=np.int64)


class StrategyMetrics:
    """What one strategy did over a run, after the warm-up.

    `n` holds, per visible status change, the number of observers the change
    was carried to (its storm diffusion factor N); `messages` counts every
    presence message sent to clients because of the strategy (pushes, poll
    replies, pull replies); `latency` holds, per observer reached, the time
    from the change to the moment the observer's view shows it. `login` holds
    login latencies (time to a consistent view of the friend list).
    """

    def __init__(self) -> None:
        self.changes = 0
        self.messages = 0
        self.requests = 0
        self.bytes = 0
        self.empty_polls = 0
        self.ghost_pushes = 0
        self.invisible_recipients = 0
        self.n = IntSeries()
        self.latency = LogHistogram()
        self.login = LogHistogram()

    def record_change(self, informed: int | None) -> None:
        self.changes += 1
        if informed is not None:
            self.n.append(informed)
