"""Sessions start in steady state and keep the configured online fraction."""

import numpy as np
import pytest

from sim.scenario import LengthDistribution
from sim.workload import gap_distribution, generate_sessions


@pytest.mark.parametrize("distribution", ["exponential", "lognormal", "fixed"])
def test_online_fraction_holds_from_time_zero(distribution):
    session = LengthDistribution(distribution=distribution, mean=1800.0, cv=1.5)
    online, _, times, users, status, _ = generate_sessions(
        50_000, 0.2, session, 7200.0, np.random.default_rng(9)
    )
    assert online.mean() == pytest.approx(0.2, abs=0.006)
    # Replay to a few instants: the share online stays at 0.2.
    for instant in (600.0, 3600.0, 7000.0):
        state = online.copy()
        last = np.searchsorted(times, instant)
        state[users[:last]] = status[:last]
        assert state.mean() == pytest.approx(0.2, abs=0.006)


def test_gap_mean_gives_the_online_fraction():
    gap = gap_distribution(LengthDistribution(mean=1800.0), 0.2)
    # p = session / (session + gap) -> gap = 1800 * 0.8 / 0.2 = 7200 s.
    assert gap.mean == pytest.approx(7200.0)


def test_changes_alternate_per_user():
    _, _, times, users, status, _ = generate_sessions(
        200, 0.5, LengthDistribution(mean=60.0), 3600.0, np.random.default_rng(1)
    )
    assert np.all(np.diff(times) >= 0)
    for user in range(200):
        mine = status[users == user]
        assert np.all(mine[1:] != mine[:-1])
