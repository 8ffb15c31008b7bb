"""Friend polling: request rates (the detection delay is validated in
tests/validation/test_poll_delay.py)."""

import pytest

from sim.experiment import run_scenario
from tests.conftest import small_scenario


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
