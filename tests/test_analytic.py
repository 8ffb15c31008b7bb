"""Closed forms checked against hand values and against the pieces they model."""

import math

import numpy as np
import pytest

from sim.analytic import (
    Pmf,
    Stream,
    batch_wait,
    erlang_c,
    estimate,
    mmc_wait,
    poll_detection,
    scenario_profile,
    synthetic_group_profile,
    tier_estimate,
)
from sim.graph import synthetic_groups
from sim.scenario import LengthDistribution, SyntheticGroups
from sim.tiers import Tier
from tests.conftest import small_scenario


def test_erlang_c_with_one_worker_is_the_utilisation():
    # M/M/1: P(wait) = rho and Wq = rho / (mu - lambda).
    assert erlang_c(1, 0.7) == pytest.approx(0.7)
    assert mmc_wait(0.7, 1.0, 1) == pytest.approx(0.7 / 0.3)


def test_erlang_c_for_two_workers_matches_its_closed_form():
    # For M/M/2 the chance of waiting is 2 rho^2 / (1 + rho).
    rho = 0.6
    assert erlang_c(2, 2 * rho) == pytest.approx(2 * rho**2 / (1 + rho))


def test_mmc_wait_is_infinite_at_saturation():
    assert mmc_wait(4.0, 1.0, 4) == math.inf


def test_binomial_pmf_has_binomial_moments_even_for_huge_trials():
    pmf = Pmf.binomial(100_000_000 - 1, 200 / (100_000_000 - 1))
    assert pmf.probs.sum() == pytest.approx(1.0)
    assert pmf.mean() == pytest.approx(200, rel=1e-9)
    variance = pmf.second_moment() - pmf.mean() ** 2
    assert variance == pytest.approx(200 * (1 - 2e-6), rel=1e-6)


def test_thinning_a_fixed_count_gives_the_binomial():
    thinned = Pmf.point(200).thinned(0.2)
    direct = Pmf.binomial(200, 0.2)
    common = np.intersect1d(thinned.values, direct.values)
    np.testing.assert_allclose(
        thinned.probs[np.isin(thinned.values, common)],
        direct.probs[np.isin(direct.values, common)],
        rtol=1e-9,
    )
    assert thinned.mean() == pytest.approx(40)


def test_poll_detection_without_logouts_waits_half_the_interval():
    # Sessions far longer than T: every observer sees the change, wait T/2.
    detection = poll_detection(60.0, LengthDistribution(mean=1e9))
    assert detection.seen == pytest.approx(1.0)
    assert detection.mean == pytest.approx(30.0, rel=1e-6)
    assert detection.p99 == pytest.approx(59.4, rel=1e-4)


def test_poll_detection_for_exponential_sessions_matches_its_closed_form():
    # E[W | seen] = m - T e^(-T/m) / (1 - e^(-T/m)); P(seen) = m/T (1 - e^(-T/m)).
    m, t = 1800.0, 300.0
    detection = poll_detection(t, LengthDistribution(mean=m))
    decay = math.exp(-t / m)
    assert detection.mean == pytest.approx(m - t * decay / (1 - decay), rel=1e-6)
    assert detection.seen == pytest.approx(m / t * (1 - decay), rel=1e-6)


@pytest.mark.parametrize("distribution", ["fixed", "lognormal"])
def test_poll_detection_matches_a_direct_draw(distribution):
    # Draw stationary residual sessions and uniform waits; compare.
    session = LengthDistribution(distribution=distribution, mean=120.0, cv=1.5)
    rng = np.random.default_rng(3)
    if distribution == "fixed":
        residual = rng.random(400_000) * 120.0
    else:
        sigma2 = math.log1p(1.5**2)
        mu = math.log(120.0) - sigma2 / 2
        biased = rng.lognormal(mu + sigma2, math.sqrt(sigma2), 400_000)
        residual = rng.random(400_000) * biased
    wait = rng.random(400_000) * 60.0
    seen = wait <= residual
    detection = poll_detection(60.0, session)
    assert detection.seen == pytest.approx(seen.mean(), abs=0.003)
    assert detection.mean == pytest.approx(wait[seen].mean(), rel=0.01)


def test_synthetic_group_formula_matches_the_built_groups():
    # 1,030 users in groups of 200: each round has 5 full groups and one of 30.
    spec = SyntheticGroups(groups_per_user=7, group_size=200)
    slots, distinct = synthetic_group_profile(spec, 1030)
    members = synthetic_groups(1030, 7, 200, np.random.default_rng(8))
    sizes = members.degrees()
    built = np.bincount(
        members.indices, weights=np.repeat(sizes - 1, sizes), minlength=1030
    )
    assert slots.mean() == pytest.approx(built.mean(), rel=1e-9)
    assert distinct == pytest.approx(estimate_distinct(members, 1030), rel=0.02)


def estimate_distinct(members, users: int) -> float:
    """Distinct co-members per user, counted directly."""
    groups = members.transpose(users)
    total = 0
    for user in range(users):
        rows = groups.row(user)
        others = np.unique(members.gather(rows))
        total += len(others) - 1
    return total / users


def test_batch_wait_matches_an_idle_tier_serving_the_batch():
    # Fixed 1 ms service, 4 workers, batches of 0..30 jobs.
    service = LengthDistribution(distribution="fixed", mean=0.001)
    batch = Pmf(np.arange(31), np.full(31, 1 / 31))
    waits = []
    for size in range(31):
        tier = Tier("t", 1, 4, {"op": service}, np.random.default_rng(0), 10.0, 1.0)
        tier.serve(1.0, np.zeros(size, np.int64), "op")
        waits.append(tier.wait)
    expected = np.mean(waits) / batch.mean()
    assert batch_wait(batch, 4, service) == pytest.approx(expected, rel=1e-9)


def test_tier_estimate_of_single_exponential_jobs_is_erlang_c():
    service = LengthDistribution(distribution="exponential", mean=0.002)
    stream = Stream("op", 1500.0, Pmf.point(1), service)
    tier = tier_estimate("t", 3, 4, [stream])
    assert tier.utilisation == pytest.approx(1500 * 0.002 / 4)
    assert tier.wait_mean == pytest.approx(mmc_wait(1500.0, 0.002, 4))
    assert tier.jobs_per_second == pytest.approx(4500.0)


def test_estimate_reproduces_the_article_storm_factors():
    scenario = small_scenario(
        population={"users": 20_000},
        graph={"kind": "synthetic", "out_degree": {"mean": 200}},
        groups={"kind": "synthetic", "groups_per_user": 20, "group_size": 200},
    )
    predicted = {
        (s.audience, s.strategy): s
        for s in estimate(scenario, scenario_profile(scenario)).strategies
    }
    assert predicted[("friends", "push")].n.mean() == pytest.approx(40)
    assert predicted[("groups", "push")].n.mean() == pytest.approx(796)
    # Poll amplification: (p n / T) / (2 p n / session) = session / (2 T).
    assert predicted[("friends", "poll")].amplification == pytest.approx(1800 / 120)
