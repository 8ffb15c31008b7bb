"""Batch delivery through a tier equals per-message FIFO service."""

import numpy as np
import pytest

from sim.fifo import FREE
from sim.scenario import LengthDistribution
from sim.tiers import Tier


def _per_message_fifo(batches, servers: int, workers: int, service: float):
    """One job at a time: each takes the earliest free worker of its server."""
    timed = [(time, targets, service) for time, targets in batches]
    return _per_message_mixed(timed, servers, workers)


def _tier(servers: int, workers: int, service: LengthDistribution, seed: int = 0):
    return Tier(
        "t", servers, workers, {"op": service}, np.random.default_rng(seed), 100.0, 1.0
    )


def test_batch_delivery_equals_per_message_fifo_for_fixed_service():
    rng = np.random.default_rng(4)
    times = np.cumsum(rng.exponential(0.002, 300))
    batches = [(float(t), rng.integers(0, 3, rng.integers(1, 80))) for t in times]
    tier = _tier(3, 4, LengthDistribution(distribution="fixed", mean=0.0007))

    batched = [tier.serve(t, targets, "op") for t, targets in batches]
    reference = _per_message_fifo(batches, 3, 4, 0.0007)

    for got, expected in zip(batched, reference, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_idle_tier_serves_a_batch_in_rounds_of_its_workers():
    # 10 jobs, 4 workers, 1 ms each, all idle: rounds finish at 1, 2, 3 ms.
    tier = _tier(1, 4, LengthDistribution(distribution="fixed", mean=0.001))
    finish = tier.serve(5.0, np.zeros(10, np.int64), "op")
    assert list(np.round((finish - 5.0) * 1000, 9)) == [1] * 4 + [2] * 4 + [3] * 2
    assert tier.wait == pytest.approx(4 * 0.001 + 2 * 0.002)


def test_overloaded_tier_queues_grow_instead_of_capping():
    # Offered load 2x capacity: the last job of each batch waits longer.
    tier = _tier(1, 1, LengthDistribution(distribution="fixed", mean=0.002))
    waits = []
    for k in range(50):
        finish = tier.serve(k * 0.001, np.zeros(1, np.int64), "op")
        waits.append(finish[0] - k * 0.001 - 0.002)
    assert waits[-1] == pytest.approx(49 * 0.001)
    assert all(b > a for a, b in zip(waits[1:], waits[2:], strict=False))


def test_random_service_keeps_each_worker_busy_back_to_back():
    tier = _tier(1, 2, LengthDistribution(distribution="exponential", mean=0.001))
    finish = tier.serve(0.0, np.zeros(200, np.int64), "op")
    # Two workers kept busy from time 0: the last finish is about 100 services.
    assert finish.max() == pytest.approx(0.1, rel=0.3)
    assert tier.busy == pytest.approx(tier.state[FREE].sum(), rel=1e-9)


def _per_message_mixed(batches, servers: int, workers: int):
    """As above, with a service time per batch."""
    free = [[0.0] * workers for _ in range(servers)]
    finishes = []
    for time, targets, service in batches:
        out = []
        for server in targets:
            row = free[server]
            worker = min(range(workers), key=row.__getitem__)
            start = max(time, row[worker])
            row[worker] = start + service
            out.append(row[worker])
        finishes.append(np.array(out))
    return finishes


def test_batches_of_operations_with_different_fixed_times_equal_fifo():
    # Two operations (1 ms and 0.2 ms) leave workers falling free more than
    # one service apart; the batch path must still match job-by-job FIFO, to
    # the bit.
    rng = np.random.default_rng(8)
    services = {"slow": 0.001, "fast": 0.0002}
    tier = Tier(
        "t",
        3,
        4,
        {
            op: LengthDistribution(distribution="fixed", mean=v)
            for op, v in services.items()
        },
        np.random.default_rng(0),
        100.0,
        1.0,
    )
    batches, got = [], []
    for t in np.cumsum(rng.exponential(0.0015, 400)):
        op = "slow" if rng.random() < 0.5 else "fast"
        targets = rng.integers(0, 3, rng.integers(1, 40))
        batches.append((float(t), targets, services[op]))
        got.append(tier.serve(float(t), targets, op))
    for mine, expected in zip(got, _per_message_mixed(batches, 3, 4), strict=True):
        np.testing.assert_array_equal(mine, expected)


def test_a_job_placed_ahead_leaves_its_idle_time_to_jobs_arriving_sooner():
    # One worker, 1 ms jobs. A job placed for 10 ms leaves the worker idle
    # until then; a job placed next that arrives at 2 ms runs at once in that
    # gap, and one arriving at 9.5 ms does not fit before 10 ms and queues
    # behind the first, to start at 11 ms.
    tier = _tier(1, 1, LengthDistribution(distribution="fixed", mean=0.001))
    assert tier.serve_one(0.010, 0, "op") == pytest.approx(0.011)
    assert tier.serve_one(0.002, 0, "op") == pytest.approx(0.003)
    assert tier.serve_one(0.0095, 0, "op") == pytest.approx(0.012)
    assert tier.wait == pytest.approx(0.0015)


def test_a_job_placed_ahead_takes_the_worker_freed_last():
    # Two workers, free at 1 ms and 5 ms. A job arriving at 8 ms takes the
    # one freed at 5 ms, so the other stays free for a job arriving at 2 ms.
    tier = _tier(1, 2, LengthDistribution(distribution="fixed", mean=0.001))
    tier.serve_one(0.0, 0, "op")
    tier.serve_one(0.004, 0, "op")
    tier.serve_one(0.008, 0, "op")
    assert tier.serve_one(0.002, 0, "op") == pytest.approx(0.003)
