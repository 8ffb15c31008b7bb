"""Replications: independent streams, Student t intervals, a checkable queue."""

import math

import numpy as np
import pandas as pd
import pytest

from sim.experiment import Run, run_scenario
from sim.queueing import replicate_queue, simulate_queue
from sim.randomness import stream
from sim.stats import summarise_replications, t_interval
from sim.workload import mean_online_fraction
from tests.conftest import small_scenario


def test_replication_zero_is_the_single_run_and_others_differ():
    single = stream(7, "sessions").random(3)
    assert np.array_equal(stream(7, "sessions", replication=0).random(3), single)
    first = stream(7, "sessions", replication=1).random(3)
    second = stream(7, "sessions", replication=2).random(3)
    assert not np.array_equal(first, single)
    assert not np.array_equal(first, second)


def test_replications_draw_their_own_workload():
    scenario = small_scenario(duration="3m", population={"users": 1000})
    zero = run_scenario(scenario).summary["workload"]
    again = run_scenario(scenario, replication=0).summary["workload"]
    other = run_scenario(scenario, replication=1).summary["workload"]
    assert zero == again
    assert zero["events"] != other["events"]


def test_t_interval_of_one_two_three():
    # Mean 2, sample standard deviation 1, t(0.975, 2 dof) = 4.3027.
    interval = t_interval([1.0, 2.0, 3.0])
    assert interval.mean == 2.0
    assert interval.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert 4.48 in interval and 4.49 not in interval  # 2 + 2.484


def test_one_replication_has_no_interval():
    assert math.isnan(t_interval([5.0]).half_width)


def test_table_means_and_half_widths_per_key():
    frame = pd.DataFrame(
        {
            "strategy": ["push"] * 3 + ["poll"] * 3,
            "replication": [0, 1, 2] * 2,
            "n_mean": [39.0, 40.0, 41.0, 10.0, 10.0, 10.0],
        }
    )
    table = summarise_replications(frame, ["strategy"])
    assert list(table["strategy"]) == ["push", "poll"]
    assert list(table["n_mean"]) == [40.0, 10.0]
    half = 4.302653 / math.sqrt(3)
    assert table["n_mean_ci_low"][0] == pytest.approx(40.0 - half)
    assert table["n_mean_ci_high"][0] == pytest.approx(40.0 + half)
    assert table["n_mean_ci_low"][1] == table["n_mean_ci_high"][1] == 10.0
    assert list(table["replications"]) == [3, 3]


def test_histogram_bin_missing_from_a_replication_counts_zero():
    # Bin 2 has 6 changes in replication 0 and none in replication 1: mean 3.
    frame = pd.DataFrame(
        {"n": [1, 2, 1, 3], "replication": [0, 0, 1, 1], "changes": [4, 6, 2, 8]}
    )
    table = summarise_replications(frame, ["n"], absent_is_zero=True)
    assert list(table["n"]) == [1, 2, 3]
    assert list(table["changes"]) == [3.0, 3.0, 4.0]


def test_standalone_queue_utilisation_is_arrival_rate_times_service_mean():
    # rho = lambda / mu = 0.5 / 1.0 over 20,000 jobs.
    run = simulate_queue(0.5, 1.0, jobs=20_000, seed=3)
    assert run.utilisation == pytest.approx(0.5, rel=0.03)


def test_fixed_service_at_low_load_rarely_waits():
    # D service of 1 ms, one arrival per second: waits are rare and short.
    run = simulate_queue(1.0, 0.001, jobs=2_000, seed=3, service="fixed")
    assert run.mean_wait < 1e-5


@pytest.fixture(scope="module")
def mm1():
    """30 replications of M/M/1 with lambda = 0.8, mu = 1: utilisation 0.8."""
    return replicate_queue(
        0.8, 1.0, replications=30, jobs=10_000, warmup_jobs=1_000, seed=1
    )


def test_mm1_interval_of_mean_wait_contains_exact_value(mm1):
    # Wq = rho / (mu - lambda) = 0.8 / (1 - 0.8) = 4 seconds.
    exact = 0.8 / (1.0 - 0.8)
    interval = mm1.wait_interval()
    assert interval.count == 30
    assert exact in interval
    assert interval.half_width < 0.1 * exact


def test_mm1_interval_narrows_as_one_over_root_k(mm1):
    # Half-width = t(K-1) * s / sqrt(K): with t taken out, what is left (the
    # standard error) should halve from K = 5 to K = 20. K = 5 is averaged
    # over the six disjoint blocks of five replications to tame its noise.
    waits = mm1.waits
    blocks = [t_interval(waits[i : i + 5]) for i in range(0, 30, 5)]
    five = np.mean([block.standard_error() for block in blocks])
    twenty = mm1.wait_interval(20).standard_error()
    assert five / twenty == pytest.approx(2.0, rel=0.3)


def test_warmup_removes_the_transient_of_an_empty_start():
    # Sessions of 2 min and gaps of 8 min hold 20% online in steady state;
    # from an empty start the online share relaxes as 0.2 (1 - exp(-t / tau))
    # with tau = 1 / (1/2 + 1/8) min = 1.6 min. A 10 min warm-up is 6 tau.
    scenario = small_scenario(
        duration="26m",
        warmup="10m",
        population={
            "users": 2000,
            "online_fraction": 0.2,
            "start": "empty",
            "session": {"distribution": "exponential", "mean": "2m"},
        },
        graph={"kind": "synthetic", "out_degree": {"mean": 5}},
        groups={"kind": "none"},
        strategies={"friends": ["push"], "groups": []},
        metrics={"slot": "10s"},
    )
    runs = [Run(scenario, replication).simulate() for replication in range(4)]
    summaries = [run.result().summary["workload"] for run in runs]
    assert all(summary["initial_online_fraction"] == 0.0 for summary in summaries)

    after = t_interval([summary["mean_online_fraction"] for summary in summaries])
    assert after.mean == pytest.approx(0.2, rel=0.02)

    # Counted from time 0, the same runs show the transient:
    # 0.2 (1 - (tau / T)(1 - exp(-T / tau))) = 0.1877 over T = 26 min.
    tau, whole = 1.6, 26.0
    expected = 0.2 * (1 - tau / whole * (1 - math.exp(-whole / tau)))
    from_zero = t_interval([mean_online_fraction(run.workload) for run in runs])
    assert from_zero.mean == pytest.approx(expected, rel=0.02)
    assert from_zero.mean < 0.2 * 0.96
