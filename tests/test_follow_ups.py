"""A push's arrival at the gateways runs at once when nothing can come
before it, and the tables are those of arrivals all run in time order."""

import heapq

import pandas as pd
import pytest

from sim.experiment import Run
from sim.model import World
from tests.conftest import every_strategy, small_scenario


def test_a_follow_up_runs_at_once_only_when_nothing_is_due_before_it():
    world = Run(small_scenario()).world
    ran: list[str] = []
    world.next_event_time = 10.0
    world.env.timeout(2.0)  # a SimPy event due at t = 2

    world.follow_up(1.0, ran.append, "before the SimPy event")
    world.follow_up(2.0, ran.append, "tied with the SimPy event")
    world.follow_up(3.0, ran.append, "after the SimPy event")
    world.follow_up(1.5, ran.append, "after a waiting follow-up")
    world.follow_up(2.0, ran.append, "tied with a waiting follow-up")

    assert ran == ["before the SimPy event", "after a waiting follow-up"]
    waiting = sorted(world.follow_ups)
    assert [(time, args[0]) for time, _, _, args in waiting] == [
        (2.0, "tied with the SimPy event"),
        (2.0, "tied with a waiting follow-up"),
        (3.0, "after the SimPy event"),
    ]


def test_a_follow_up_after_the_next_user_event_waits():
    world = Run(small_scenario()).world
    ran: list[str] = []
    world.next_event_time = 4.0
    world.follow_up(4.0, ran.append, "with the next event")
    world.follow_up(4.5, ran.append, "after the next event")
    # Follow-ups run before a user event of the same time.
    assert ran == ["with the next event"]
    assert [args[0] for *_, args in world.follow_ups] == ["after the next event"]


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
def test_arrivals_run_at_once_give_the_tables_of_arrivals_in_time_order(
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

    def always_in_order(self, time, action, *args):  # type: ignore[no-untyped-def]
        entry = (time, next(self._follow_up_order), action, args)
        heapq.heappush(self.follow_ups, entry)

    monkeypatch.setattr(World, "follow_up", always_in_order)
    in_order = Run(scenario).simulate(processes=1).result().tables
    for name, table in at_once.items():
        pd.testing.assert_frame_equal(in_order[name], table, check_exact=True)
