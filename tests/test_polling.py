"""Friend polling: with uniform phases the wait until detection averages T/2."""

import pytest

from sim.experiment import run_scenario
from tests.conftest import small_scenario


@pytest.mark.parametrize("interval", [60.0])
def test_poll_detection_wait_averages_half_the_interval(interval):
    scenario = small_scenario(
        duration="30m",
        population={"users": 5000},
        strategies={"friends": ["poll"], "groups": [], "poll_interval": interval},
    )
    row = run_scenario(scenario).tables["strategies"].iloc[0]
    assert row["latency_mean_s"] == pytest.approx(interval / 2, rel=0.05)


def test_poll_requests_match_online_users_times_rate():
    # Each online user polls once per T: requests ~ online users * duration / T.
    scenario = small_scenario(
        strategies={"friends": ["poll"], "groups": [], "poll_interval": "30s"},
    )
    result = run_scenario(scenario)
    row = result.tables["strategies"].iloc[0]
    online = result.summary["workload"]["mean_online_fraction"] * 2000
    expected = online * scenario.duration / 30.0
    assert row["requests"] == pytest.approx(expected, rel=0.02)
