"""Follow-ups (the arrivals of pushes) run in time order: those due before
anything else can happen run right after the event that made them, the
others wait in SimPy's queue, and both give the same tables."""

import pandas as pd
import pytest

from sim.experiment import Run
from sim.model import Simulation
from tests.conftest import every_strategy, small_scenario


def test_follow_ups_due_before_the_next_event_and_any_simpy_event_run_now():
    world = Run(small_scenario()).world
    simulation = Simulation(world, [], None)
    ran: list[str] = []
    world.env.timeout(2.0)  # a SimPy event due at t = 2
    for time, label in [(3.0, "c"), (1.0, "a"), (2.0, "b"), (1.5, "a2")]:
        world.follow_up(time, ran.append, label)

    simulation._run_due(until=1.2)
    assert ran == ["a"]
    # The follow-up tied with the SimPy event waits for it, as does what
    # comes after.
    simulation._run_due(until=10.0)
    assert ran == ["a", "a2"]
    assert [args[0] for *_, args in sorted(world.follow_ups)] == ["b", "c"]


@pytest.mark.parametrize(
    "slot",
    [
        # Load slots of 1 s: their SimPy ticks come between change and arrival.
        1.0,
        # Slots of 2 min leave arrivals to come after later user events and
        # after one another.
        120.0,
    ],
)
def test_follow_ups_run_at_once_give_the_tables_of_follow_ups_that_wait(
    monkeypatch, slot
):
    # A 2 s network hop puts each arrival well after its change.
    base = every_strategy()
    scenario = base.model_copy(
        update={
            "network": base.network.model_copy(update={"hop_delay": 2.0}),
            "metrics": base.metrics.model_copy(update={"slot": slot}),
        }
    )
    at_once = Run(scenario).simulate(processes=1).result().tables

    monkeypatch.setattr(Simulation, "_run_due", lambda self, until: None)
    waiting = Run(scenario).simulate(processes=1).result().tables
    for name, table in at_once.items():
        pd.testing.assert_frame_equal(waiting[name], table, check_exact=True)
