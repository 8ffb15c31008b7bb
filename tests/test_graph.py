"""Graph generators and loaders."""

import gzip

import numpy as np
import pytest

from sim.errors import PresenceSimError
from sim.graph import (
    Csr,
    SocialGraph,
    build_graph,
    check_data_files,
    synthetic_friends,
    synthetic_groups,
)
from sim.scenario import DegreeDistribution, parse_scenario


def _load(tmp_path, text: str, **graph: object):
    path = tmp_path / "edges.txt"
    path.write_text(text)
    scenario = parse_scenario(
        {
            "name": "t",
            "graph": {"kind": "edge_list", "path": str(path), **graph},
            "groups": {"kind": "none"},
        }
    )
    rng = np.random.default_rng(0)
    return build_graph(scenario, rng, rng)


def test_fixed_out_degree_gives_distinct_friends_and_no_self():
    rng = np.random.default_rng(1)
    friends = synthetic_friends(500, DegreeDistribution(mean=40), rng)
    for user in range(500):
        row = friends.row(user)
        assert len(row) == 40
        assert len(np.unique(row)) == 40
        assert user not in row


def test_dense_rows_still_give_distinct_friends():
    friends = synthetic_friends(
        10, DegreeDistribution(mean=9), np.random.default_rng(2)
    )
    for user in range(10):
        assert sorted(friends.row(user)) == [v for v in range(10) if v != user]


def test_synthetic_groups_put_each_user_in_each_round_once():
    members = synthetic_groups(1000, 20, 200, np.random.default_rng(3))
    assert members.rows == 20 * 1000 // 200
    assert set(members.degrees()) == {200}
    groups = members.transpose(1000)
    assert set(groups.degrees()) == {20}
    for group in range(members.rows):
        assert len(np.unique(members.row(group))) == 200


def test_reverse_is_the_transpose_of_friends():
    friends = Csr(np.array([0, 2, 3, 3]), np.array([1, 2, 0], np.int32))
    reverse = friends.transpose(3)
    assert [list(reverse.row(u)) for u in range(3)] == [[1], [0], [0]]


def test_gather_concatenates_rows_in_order():
    csr = Csr(np.array([0, 2, 2, 5]), np.array([7, 8, 1, 2, 3], np.int32))
    assert list(csr.gather(np.array([2, 0, 1]))) == [1, 2, 3, 7, 8]


def test_edge_list_drops_self_loops_and_repeats_and_reads_comments(tmp_path):
    graph = _load(tmp_path, "# comment\n% other\n1 2\n2 1\n1 2\n3 3\n3 1\n")
    # ids in order of appearance: 1, 2, 3 -> users 0, 1, 2
    assert list(graph.ids) == ["1", "2", "3"]
    assert graph.arcs == 3
    assert list(graph.reverse.row(0)) == [1, 2]
    assert graph.reciprocity() == pytest.approx(2 / 3)


def test_undirected_edge_becomes_two_arcs(tmp_path):
    graph = _load(tmp_path, "a,b\nb,c\n", directed=False, delimiter="comma")
    assert graph.arcs == 4
    assert graph.reciprocity() == 1.0


def test_header_line_is_skipped_and_gzip_is_read(tmp_path):
    path = tmp_path / "edges.txt.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("source target weight\n10 20 1\n20 30 0.5\n")
    scenario = parse_scenario(
        {
            "name": "t",
            "graph": {"kind": "edge_list", "path": str(path)},
            "groups": {"kind": "none"},
        }
    )
    graph = build_graph(scenario, np.random.default_rng(0), np.random.default_rng(0))
    assert graph.users == 3 and graph.arcs == 2


def test_karate_club_with_its_factions(datasets):
    scenario = parse_scenario(
        {
            "name": "karate",
            "graph": {
                "kind": "edge_list",
                "path": str(datasets / "karate_club.edges.txt"),
                "directed": False,
            },
            "groups": {
                "kind": "file",
                "path": str(datasets / "karate_club.groups.txt"),
            },
        }
    )
    graph = build_graph(scenario, np.random.default_rng(0), np.random.default_rng(0))
    assert graph.users == 34
    assert graph.arcs == 2 * 78
    assert graph.members.rows == 2
    assert graph.members.degrees().sum() == 34


def test_facebook_circles_one_group_per_line(datasets):
    scenario = parse_scenario(
        {
            "name": "fb",
            "graph": {
                "kind": "edge_list",
                "path": str(datasets / "facebook_combined.txt.gz"),
                "directed": False,
            },
            "groups": {
                "kind": "file",
                "path": str(datasets / "facebook_circles.txt"),
                "format": "lines",
                "delimiter": "tab",
                "skip_fields": 2,
            },
        }
    )
    graph = build_graph(scenario, np.random.default_rng(0), np.random.default_rng(0))
    assert graph.users == 4039
    assert graph.arcs == 2 * 88_234
    assert graph.members.rows == 193
    assert graph.members.degrees().max() == 308
    assert graph.groups.degrees().max() == 14


def test_population_users_with_a_graph_file_is_refused(tmp_path):
    path = tmp_path / "e.txt"
    path.write_text("1 2\n")
    scenario = parse_scenario(
        {
            "name": "t",
            "population": {"users": 10},
            "graph": {"kind": "edge_list", "path": str(path)},
            "groups": {"kind": "none"},
        }
    )
    with pytest.raises(PresenceSimError, match="population.users"):
        build_graph(scenario, np.random.default_rng(0), np.random.default_rng(0))
    # `presence-sim validate` reads the data files and says the same.
    with pytest.raises(PresenceSimError, match="population.users"):
        check_data_files(scenario)


def test_reciprocity_counts_return_arcs_and_estimates_from_spaced_arcs():
    # A ring i -> i+1 of 1,000 users, with the return arc i+1 -> i for even i:
    # 1,500 arcs, of which the 500 pairs (1,000 arcs) are reciprocated.
    users = 1000
    src = np.concatenate([np.arange(users), np.arange(0, users, 2) + 1])
    dst = np.concatenate([(np.arange(users) + 1) % users, np.arange(0, users, 2)])
    order = np.lexsort((dst, src))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=users))])
    friends = Csr(indptr.astype(np.int64), dst[order].astype(np.int32))
    graph = SocialGraph(users, friends, friends.transpose(users), friends, friends, "")
    assert graph.arcs == 1500
    assert graph.reciprocity() == pytest.approx(2 / 3)
    assert graph.reciprocity(most=300) == pytest.approx(2 / 3, abs=0.05)
