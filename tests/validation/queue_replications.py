"""Replications of a single M/M/c server, by our Tier and by Ciw.

Each replication draws its arrivals and service times from its own child of
one `numpy.random.SeedSequence`, so replications are independent and a seed
gives the same numbers every time; `sim.stats.t_interval` gives the interval
over replications. `sim.queueing.simulate_queue` runs the same kind of queue
for a number of jobs; here a replication runs to a time horizon, as Ciw's
does.
"""

from dataclasses import dataclass

import ciw
import numpy as np

from sim.scenario import LengthDistribution
from sim.tiers import Tier

# Jobs that arrive in the first tenth of a replication are not counted: the
# queue starts empty and needs that long to forget it.
WARM_UP = 0.1


def replication_streams(seed: int, replication: int) -> list[np.random.Generator]:
    """Independent arrival and service generators of one replication."""
    children = np.random.SeedSequence(seed, spawn_key=(replication,)).spawn(2)
    return [np.random.default_rng(child) for child in children]


@dataclass(frozen=True)
class MMcQueue:
    """One server with `workers` workers, Poisson arrivals over [0, horizon)
    and exponential service times."""

    arrival_rate: float
    service_mean: float
    workers: int
    horizon: float

    @property
    def warm_up(self) -> float:
        return WARM_UP * self.horizon


def tier_mean_wait(queue: MMcQueue, seed: int, replication: int) -> float:
    """Mean wait in queue of one replication, served by `sim.tiers.Tier`.

    Each job is handed to `Tier.serve_one` as it arrives. Jobs arriving in
    the warm-up are served but not counted.
    """
    arrivals, services = replication_streams(seed, replication)
    # Enough gaps to pass the horizon: 20% over the mean count is ~20 sd.
    expected = int(queue.arrival_rate * queue.horizon * 1.2) + 100
    times = np.cumsum(arrivals.exponential(1.0 / queue.arrival_rate, expected))
    assert times[-1] >= queue.horizon
    times = times[times < queue.horizon]
    service = LengthDistribution(distribution="exponential", mean=queue.service_mean)
    tier = Tier("mmc", 1, queue.workers, {"job": service}, services, queue.horizon, 1.0)
    counted = 0
    waited = 0.0
    for time in times.tolist():
        before = tier.wait
        tier.serve_one(time, 0, "job")
        if time >= queue.warm_up:
            waited += tier.wait - before
            counted += 1
    return waited / counted


def ciw_mean_wait(queue: MMcQueue, seed: int, replication: int) -> float:
    """The same replication's statistic, simulated by Ciw (its own streams).

    Ciw draws from Python's `random`, seeded per replication from the same
    seed sequence; it is run past the horizon so that every job arriving
    before it has finished.
    """
    state = np.random.SeedSequence(seed, spawn_key=(replication, 1)).generate_state(1)
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(queue.arrival_rate)],
        service_distributions=[ciw.dists.Exponential(1.0 / queue.service_mean)],
        number_of_servers=[queue.workers],
    )
    ciw.seed(int(state[0]))
    simulation = ciw.Simulation(network)
    simulation.simulate_until_max_time(queue.horizon * 1.2)
    waits = [
        record.waiting_time
        for record in simulation.get_all_records()
        if queue.warm_up <= record.arrival_date < queue.horizon
    ]
    return float(np.mean(waits))
