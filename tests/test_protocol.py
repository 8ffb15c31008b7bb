"""The whole presence protocol: invisibility, heartbeats, faults, broadcasts,
group strategies."""

import numpy as np
import pandas as pd
import pytest

from sim.experiment import Run
from sim.scenario import load_scenario
from sim.workload import (
    DISCONNECT,
    INVISIBLE,
    LOGIN,
    LOGOUT,
    OFFLINE,
    SWITCH,
    TIMEOUT,
)
from tests.conftest import ROOT, small_scenario


def _server_modes(run: Run) -> pd.DataFrame:
    """Replay the trace as the server sees it: each user's mode after each
    event, independently of the model's own bookkeeping."""
    workload = run.workload
    frame = pd.DataFrame(
        {
            "time": workload.event_time,
            "kind": workload.event_kind,
            "user": workload.event_user,
            "mode": workload.event_mode,
            "session": workload.event_session,
        }
    )
    rows = []
    current: dict[int, int] = {}
    connected: dict[int, bool] = {}
    sessions = workload.sessions
    for index in np.flatnonzero(sessions.start < 0):
        user = int(sessions.user[index])
        current[user], connected[user] = int(index), True
    mode = {int(sessions.user[i]): int(sessions.mode[i]) for i in current.values()}
    for row in frame.itertuples(index=False):
        user = row.user
        if row.kind == LOGIN:
            current[user], connected[user], mode[user] = row.session, True, row.mode
        elif current.get(user) != row.session or row.kind == DISCONNECT:
            continue
        elif not connected.get(user):
            continue
        elif row.kind == SWITCH:
            mode[user] = row.mode
        elif row.kind in (LOGOUT, TIMEOUT):
            connected[user], mode[user] = False, OFFLINE
        rows.append((row.time, user, mode[user]))
    return pd.DataFrame(rows, columns=["time", "user", "mode"])


def _mode_at(modes: pd.DataFrame, user: int, time: float, initial: int) -> int:
    mine = modes[(modes["user"] == user) & (modes["time"] <= time)]
    return int(mine["mode"].iloc[-1]) if len(mine) else initial


def test_invisible_users_never_appear_online_yet_receive_pushes():
    scenario = small_scenario(
        duration="20m",
        population={"users": 1500},
        behaviour={
            "status_switches_per_hour": 6,
            "switch_to": {"online": 1, "away": 1, "busy": 1, "invisible": 3},
            "invisible_login_share": 0.3,
            "group_visits_per_hour": 0,
        },
        strategies={"friends": ["push", "poll"], "groups": []},
        metrics={"staleness_pairs": 4000},
    )
    run = Run(scenario).simulate()
    modes = _server_modes(run)
    initial = {
        int(u): int(m)
        for u, m in zip(
            run.workload.sessions.user, run.workload.sessions.mode, strict=True
        )
    }

    # Every status an observer was shown (pushed, or read by a snapshot or
    # poll from the status log) was visible at the moment it was taken.
    push = run.strategy("friends", "push")
    shown = [
        (seen, subject, status, changed)
        for _, subject, seen, status, changed in push.views
    ]
    shown += [(t, u, s, t) for t, u, s in run.world.changes]
    assert len(shown) > 500
    visible_shows = 0
    for _, subject, status, changed in shown:
        if status == OFFLINE:
            continue
        visible_shows += 1
        start_mode = initial.get(subject, OFFLINE)
        assert _mode_at(modes, subject, changed, start_mode) != INVISIBLE
    assert visible_shows > 100

    # Invisible users are connected, so pushes reach them.
    assert push.metrics.invisible_recipients > 0
    went_invisible = (modes["mode"] == INVISIBLE).sum()
    assert went_invisible > 50


def test_ghost_online_time_matches_heartbeat_settings():
    # Only abrupt ends. The client sent its last heartbeat a uniform share of
    # an interval before vanishing (sessions >> h), and the server waits T
    # after it: mean ghost time = T - h/2 = 90 - 30/2 = 75 s.
    scenario = small_scenario(
        duration="1h",
        population={"users": 5000},
        behaviour={"abrupt_disconnect_share": 1.0, "group_visits_per_hour": 0},
        heartbeat={"interval": "30s", "timeout": "90s"},
        strategies={"friends": ["push"], "groups": []},
        metrics={"staleness_pairs": 0},
    )
    result = Run(scenario).simulate().result()
    ghost = result.summary["ghost_online"]
    assert ghost["detected"] > 1500
    assert ghost["mean_s"] == pytest.approx(90 - 30 / 2, rel=0.05)


def _crash_scenario(jitter: str, **extra):
    extra.setdefault("behaviour", {"group_visits_per_hour": 0})
    return small_scenario(
        duration="20m",
        population={"users": 4000},
        tiers={"gateway": {"servers": 4}},
        strategies={"friends": ["push"], "groups": []},
        metrics={"staleness_pairs": 0},
        **extra,
        faults=[
            {
                "kind": "gateway_crash",
                "at": "10m",
                "server": 2,
                "reconnect_jitter": jitter,
            }
        ],
    )


def _held_at(run: Run, at: float, server: int) -> int:
    """Sessions whose client was on the gateway at `at`, from the trace
    drawn without the crash."""
    baseline = Run(run.scenario.model_copy(update={"faults": []}))
    sessions = baseline.workload.sessions
    held = (sessions.user % 4 == server) & (sessions.start <= at) & (sessions.end > at)
    return int(held.sum())


def test_gateway_crash_reconnects_every_session_it_held():
    run = Run(_crash_scenario("0s")).simulate()
    held = _held_at(run, 600.0, 2)
    # About a quarter of the ~800 online users sat on gateway 2.
    assert 120 < held < 300
    sessions = run.workload.sessions
    reconnect_logins = int(
        (
            (run.workload.event_kind == LOGIN)
            & sessions.reconnect[run.workload.event_session]
        ).sum()
    )
    assert reconnect_logins == held
    assert int(sessions.crashed.sum()) == held

    # The presence tier takes a logout and a login per held session in the
    # crash slot, on top of its usual load.
    presence = run.strategy("friends", "push").tiers["presence"]
    usual = np.median(presence.arrivals)
    assert presence.arrivals[600] >= 2 * held
    assert presence.arrivals[600] <= 2 * held + 10 * max(usual, 1)
    assert presence.arrivals.max() == presence.arrivals[600]


def test_crash_with_jitter_spreads_the_reconnects():
    run = Run(_crash_scenario("30s")).simulate()
    held = _held_at(run, 600.0, 2)
    sessions = run.workload.sessions
    back = sessions.start[sessions.reconnect]
    assert np.all((back >= 600.0) & (back <= 630.0))
    # Users who would have left within the jitter window do not come back.
    assert held - 5 <= len(back) <= held


def test_push_broadcast_junk_is_offline_users_not_back_before_expiry():
    scenario = small_scenario(
        duration="30m",
        population={"users": 3000},
        behaviour={"abrupt_disconnect_share": 0.2, "group_visits_per_hour": 0},
        strategies={"friends": [], "groups": []},
        system_messages=[{"at": "5m", "expires": "10m"}],
        metrics={"staleness_pairs": 0},
    )
    run = Run(scenario).simulate()
    table = run.result().tables["system_messages"].set_index("mode")

    # Independent count from the sessions: not connected (as the server
    # sees it) at 5 m, and no login in (5 m, 15 m).
    sessions = run.workload.sessions
    at, until = 300.0, 900.0
    connected = set(
        sessions.user[(sessions.start <= at) & (sessions.detect > at)].tolist()
    )
    back = set(sessions.user[(sessions.start > at) & (sessions.start < until)].tolist())
    offline = set(range(3000)) - connected
    expected_junk = len(offline - back)
    assert expected_junk > 1000
    assert table.loc["push", "junk"] == expected_junk
    assert table.loc["pull", "junk"] == 0
    assert table.loc["push", "delivered_at_send"] == len(connected)
    # Pull spreads the load: its gateway peak stays far below the push burst.
    assert (
        table.loc["pull", "peak_gateway_rps"]
        < table.loc["push", "peak_gateway_rps"] / 5
    )


@pytest.fixture(scope="module")
def seed_groups():
    scenario = load_scenario(
        ROOT / "scenarios" / "seed.yaml",
        [
            "population.users=5000",
            "duration=15m",
            "strategies.friends=[]",
            "strategies.groups=[push, push_dedup, lazy_pull]",
            "metrics.staleness_pairs=0",
        ],
    )
    return Run(scenario).simulate()


def test_lazy_pull_moves_fewer_messages_than_group_push(seed_groups):
    push = seed_groups.strategy("groups", "push").metrics
    lazy = seed_groups.strategy("groups", "lazy_pull").metrics
    assert lazy.messages > 0
    assert lazy.messages * 100 < push.messages


def test_dedup_never_sends_more_than_per_group_push(seed_groups):
    per_group = seed_groups.strategy("groups", "push").metrics.n.values()
    dedup = seed_groups.strategy("groups", "push_dedup").metrics.n.values()
    assert len(per_group) == len(dedup) > 1000
    assert np.all(dedup <= per_group)
    # With 20 random groups of 200 among 5,000 users, co-members overlap.
    assert dedup.sum() < per_group.sum()


def test_reconnect_after_a_crash_keeps_the_chosen_status():
    # Everyone logs in invisible: after the crash, reconnecting clients must
    # stay invisible, so nobody is ever shown online.
    run = Run(
        _crash_scenario(
            "20s", behaviour={"invisible_login_share": 1.0, "group_visits_per_hour": 0}
        )
    ).simulate()
    assert int(run.workload.sessions.reconnect.sum()) > 100
    shown = [status for _, _, status in run.world.changes]
    assert all(status == OFFLINE for status in shown)
    assert run.strategy("friends", "push").metrics.changes == 0


def test_lazy_pull_refreshes_stop_at_the_end_of_the_run():
    scenario = small_scenario(
        duration="10m",
        behaviour={
            "group_visits_per_hour": 6,
            "group_visit_duration": {"distribution": "fixed", "mean": "1h"},
        },
        strategies={
            "friends": [],
            "groups": ["lazy_pull"],
            "group_refresh_interval": "30s",
        },
        metrics={"staleness_pairs": 0},
    )
    run = Run(scenario).simulate()
    lazy = run.strategy("groups", "lazy_pull")
    # Each visit pulls at its opening and every 30 s after, while the group
    # is open and the run lasts: ceil((end - open) / 30) pulls.
    opens = run.workload.visit_time
    ends = np.minimum(run.workload.visit_close, 600.0)
    expected = int(np.ceil((ends - opens) / 30.0).sum())
    assert lazy.metrics.requests == expected
    assert run.world.env.now <= 600.0 + 1.0
