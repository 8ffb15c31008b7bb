"""On a real edge list, push N equals the online in-degree counted directly."""

import numpy as np
import pandas as pd

from sim.experiment import build_tiers
from sim.graph import build_graph
from sim.model import Event, World
from sim.protocol.push import FriendPush
from sim.scenario import parse_scenario
from sim.workload import LOGIN, OFFLINE, ONLINE, Sessions, Workload


def _frozen_world(scenario, graph, online: np.ndarray) -> World:
    """A world whose online set stays as given: sessions spanning the run and
    no events."""
    users = np.flatnonzero(online).astype(np.int32)
    count = len(users)
    sessions = Sessions(
        user=users,
        start=np.full(count, -1.0),
        end=np.full(count, np.inf),
        detect=np.full(count, np.inf),
        abrupt=np.zeros(count, bool),
        mode=np.full(count, ONLINE, np.int8),
        crashed=np.zeros(count, bool),
        reconnect=np.zeros(count, bool),
    )
    empty = np.zeros(0)
    workload = Workload(
        duration=scenario.duration,
        users=graph.users,
        sessions=sessions,
        event_time=empty,
        event_kind=np.zeros(0, np.int8),
        event_user=np.zeros(0, np.int32),
        event_mode=np.zeros(0, np.int8),
        event_session=np.zeros(0, np.int32),
        visit_time=empty,
        visit_user=np.zeros(0, np.int32),
        visit_group=np.zeros(0, np.int32),
        visit_close=empty,
    )
    return World(scenario, graph, workload)


def test_push_fanout_matches_online_reverse_friends_from_edge_list(datasets):
    path = datasets / "email-Eu-core.txt.gz"
    scenario = parse_scenario(
        {
            "name": "email",
            "graph": {"kind": "edge_list", "path": str(path)},
            "groups": {"kind": "none"},
        }
    )
    rng = np.random.default_rng(5)
    graph = build_graph(scenario, rng, rng)
    online = rng.random(graph.users) < 0.2
    world = _frozen_world(scenario, graph, online)
    push = FriendPush(world, build_tiers(scenario))

    # Every user changes status once against the same online set.
    for user in range(graph.users):
        push.on_change(Event(0.0, LOGIN, user, OFFLINE, ONLINE, world), 0.0)
    simulated = push.metrics.n.values()

    # Independent count: distinct online sources pointing at each user.
    edges = pd.read_csv(
        path, sep=r"\s+", comment="#", header=None, names=["src", "dst"]
    )
    edges = edges[edges["src"] != edges["dst"]].drop_duplicates()
    label_of_user = graph.ids.astype(np.int64)
    online_labels = set(label_of_user[online])
    online_edges = edges[edges["src"].isin(online_labels)]
    counted = online_edges.groupby("dst").size()
    expected = counted.reindex(label_of_user, fill_value=0).to_numpy()

    assert len(edges) == 24_929  # distinct arcs, as the dataset README states
    assert simulated.sum() > 0
    np.testing.assert_array_equal(simulated, expected)
