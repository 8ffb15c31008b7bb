"""An M/M/c tier: Erlang C against our Tier, and our Tier against Ciw.

One server with c = 4 workers, exponential service of mean 1 s, Poisson
arrivals at 4 rho a second. The mean wait in queue is
Wq = C(4, 4 rho) / (4 - 4 rho) seconds (Erlang C).
"""

import math

import pytest

from sim.analytic import mmc_wait
from sim.stats import t_interval
from tests.validation.queue_replications import MMcQueue, ciw_mean_wait, tier_mean_wait

WORKERS = 4
SEED = 20261203
REPLICATIONS = 20
# Jobs per replication: closer to saturation the queue forgets its empty
# start more slowly and its mean converges more slowly.
JOBS = {0.5: 10_000, 0.8: 20_000, 0.95: 80_000}
# Ciw is the slower of the two: it runs fewer, shorter replications.
CIW_REPLICATIONS = 10
CIW_JOBS = {0.5: 5_000, 0.8: 10_000, 0.95: 20_000}


def _replicate(simulate, utilisation: float, jobs: int, replications: int):
    rate = utilisation * WORKERS
    queue = MMcQueue(rate, 1.0, WORKERS, jobs / rate)
    return t_interval(
        [simulate(queue, SEED, replication) for replication in range(replications)]
    )


@pytest.mark.parametrize("utilisation", sorted(JOBS))
def test_erlang_c_wait_is_inside_the_tier_replications_interval(utilisation):
    simulated = _replicate(tier_mean_wait, utilisation, JOBS[utilisation], REPLICATIONS)
    predicted = mmc_wait(utilisation * WORKERS, 1.0, WORKERS)
    assert predicted in simulated, (predicted, simulated)


@pytest.mark.parametrize("utilisation", sorted(CIW_JOBS))
def test_tier_agrees_with_ciw_on_the_same_queue(utilisation):
    # Same queue, same horizon and warm-up: the two means may differ only by
    # chance, so their difference lies in its own 95% interval.
    jobs = CIW_JOBS[utilisation]
    ours = _replicate(tier_mean_wait, utilisation, jobs, CIW_REPLICATIONS)
    theirs = _replicate(ciw_mean_wait, utilisation, jobs, CIW_REPLICATIONS)
    spread = math.hypot(ours.standard_error(), theirs.standard_error())
    # Student's t at 95% for 18 degrees of freedom, the most that Welch's
    # test allows two samples of 10 (so the strictest bound).
    assert abs(ours.mean - theirs.mean) <= 2.101 * spread, (ours, theirs)
