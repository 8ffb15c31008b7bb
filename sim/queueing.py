"""One server tier on its own, fed by Poisson arrivals: a checkable queue.

The presence model drives tiers with bursts of fan-out; this module drives the
same `Tier` with independent arrivals, so that its waits can be held against
queueing formulas (M/M/1, Erlang C for M/M/c). Every call is one replication
with its own random streams, derived from the seed like the model's.
"""

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim.errors import PresenceSimError
from sim.randomness import stream
from sim.scenario import LengthDistribution
from sim.stats import Interval, t_interval
from sim.tiers import Tier

# Sub-keys of the "queue" random stream.
ARRIVALS, SERVICE = 0, 1


@dataclass(frozen=True)
class QueueRun:
    """What one replication of a standalone queue measured.

    `mean_wait` is the mean time a job spent queued before service, over the
    jobs after the warm-up; `utilisation` is the busy share of all workers
    over the same stretch.
    """

    replication: int
    jobs: int
    mean_wait: float
    utilisation: float


def simulate_queue(
    arrival_rate: float,
    service_mean: float,
    servers: int = 1,
    workers: int = 1,
    jobs: int = 10_000,
    seed: int = 1,
    replication: int = 0,
    warmup_jobs: int = 0,
    service: Literal["exponential", "fixed", "lognormal"] = "exponential",
    service_cv: float = 1.0,
) -> QueueRun:
    """Run one tier under Poisson arrivals and measure the queueing wait.

    `arrival_rate` jobs per second arrive at a tier of `servers` servers with
    `workers` workers each; every job goes to a server chosen uniformly at
    random, and waits in that server's FIFO queue for its first free worker.
    Service times follow `service` with mean `service_mean` seconds (and
    coefficient of variation `service_cv` when lognormal). The tier starts
    empty; the first `warmup_jobs` jobs are served but not measured, and
    `jobs` more are measured.

    One server with c workers is an M/M/c queue; s servers with c workers
    each are s independent M/M/c queues at rate `arrival_rate / s`.
    """
    for name, value, least in (
        ("arrival_rate", arrival_rate, 0.0),
        ("service_mean", service_mean, 0.0),
        ("servers", servers, 0),
        ("workers", workers, 0),
        ("jobs", jobs, 0),
    ):
        if not value > least:
            raise PresenceSimError(f"{name}: must be greater than {least}, not {value}")
    if warmup_jobs < 0:
        raise PresenceSimError(f"warmup_jobs: must be 0 or more, not {warmup_jobs}")

    total = warmup_jobs + jobs
    arrivals = stream(seed, "queue", ARRIVALS, replication=replication)
    times = np.cumsum(arrivals.exponential(1 / arrival_rate, total))
    targets = arrivals.integers(0, servers, total)
    spec = LengthDistribution(distribution=service, mean=service_mean, cv=service_cv)
    measured_from = float(times[warmup_jobs])
    tier = Tier(
        "queue",
        servers,
        workers,
        {"job": spec},
        stream(seed, "queue", SERVICE, replication=replication),
        duration=float(times[-1]),
        slot=float(times[-1]),
        counted_from=measured_from,
    )
    for time, server in zip(times.tolist(), targets.tolist(), strict=True):
        tier.serve_one(time, server, "job")

    span = float(times[-1]) - measured_from
    capacity = servers * workers * span
    return QueueRun(
        replication=replication,
        jobs=tier.jobs,
        mean_wait=tier.wait / tier.jobs,
        utilisation=tier.busy / capacity if span > 0 else math.nan,
    )


@dataclass(frozen=True)
class QueueEstimate:
    """Replications of a standalone queue and the interval of their mean wait."""

    runs: list[QueueRun]

    @property
    def waits(self) -> np.ndarray:
        return np.array([run.mean_wait for run in self.runs])

    def wait_interval(self, replications: int | None = None) -> Interval:
        """The 95% t interval of the mean wait over the first `replications`."""
        return t_interval(self.waits[:replications])


def replicate_queue(
    arrival_rate: float,
    service_mean: float,
    replications: int,
    **options: object,
) -> QueueEstimate:
    """`replications` independent runs of `simulate_queue` (replications 0..K-1).

    `options` are passed on to `simulate_queue` (servers, workers, jobs, seed,
    warmup_jobs, service, service_cv).
    """
    runs = [
        simulate_queue(arrival_rate, service_mean, replication=index, **options)
        for index in range(replications)
    ]
    return QueueEstimate(runs)
