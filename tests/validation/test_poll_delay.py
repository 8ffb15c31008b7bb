"""Polling every T with uniform phases: detection waits T/2 on average.

Observers who log out before their next poll never see the change, which
trims the long waits: the prediction corrects T/2 for that, by
m - T e^(-T/m) / (1 - e^(-T/m)) for exponential sessions of mean m.
"""

import pytest

from sim.analytic import poll_detection
from sim.experiment import run_scenario
from tests.conftest import small_scenario


@pytest.mark.parametrize("interval", [10.0, 60.0, 300.0])
def test_poll_detection_delay_is_half_the_interval(interval):
    scenario = small_scenario(
        duration="20m",
        population={"users": 5000},
        strategies={"friends": ["poll"], "groups": [], "poll_interval": interval},
    )
    row = run_scenario(scenario).tables["strategies"].iloc[0]
    assert row["latency_mean_s"] == pytest.approx(interval / 2, rel=0.05)

    # The corrected prediction is closer still (about 12,000 detections).
    corrected = poll_detection(interval, scenario.population.session).mean
    assert row["latency_mean_s_predicted"] == pytest.approx(corrected)
    assert row["latency_mean_s"] == pytest.approx(corrected, rel=0.02)
