"""The compiled passes and the forked run give what plain numpy and one
process give."""

import numpy as np
import pandas as pd
import pytest

from sim.experiment import Run
from sim.fanout import connected_members, connected_row, keys_per_shard, push
from sim.graph import Csr, synthetic_friends, synthetic_groups
from sim.jit import KERNEL_MODULES, cache_dir
from sim.metrics import LogHistogram
from sim.scenario import DegreeDistribution, LengthDistribution
from sim.tiers import Tier
from sim.workload import INVISIBLE
from tests.conftest import ROOT, every_strategy, small_scenario


def _random_csr(rows: int, columns: int, arcs: int, seed: int) -> Csr:
    rng = np.random.default_rng(seed)
    sources = np.sort(rng.integers(0, rows, arcs))
    indptr = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(sources, minlength=rows), out=indptr[1:])
    return Csr(indptr, rng.integers(0, columns, arcs).astype(np.int32))


def test_reverse_rows_list_the_sources_of_each_target_in_order():
    csr = _random_csr(300, 200, 5000, seed=1)
    sources = np.repeat(np.arange(csr.rows), csr.degrees())
    # The reverse relation by sorting (target, source) pairs.
    order = np.lexsort((sources, csr.indices))
    expected_sources = sources[order]
    expected_degrees = np.bincount(csr.indices, minlength=200)

    reverse = csr.transpose(200)

    np.testing.assert_array_equal(reverse.degrees(), expected_degrees)
    np.testing.assert_array_equal(reverse.indices, expected_sources)


def test_connected_reverse_friends_are_the_masked_row():
    csr = _random_csr(100, 100, 3000, seed=2)
    connected = np.random.default_rng(3).random(100) < 0.3
    for user in range(100):
        row = csr.row(user)
        np.testing.assert_array_equal(
            connected_row(csr.indptr, csr.indices, user, connected),
            row[connected[row]],
        )


def test_group_recipients_are_connected_members_group_by_group():
    members = synthetic_groups(400, 5, 40, np.random.default_rng(4))
    groups = members.transpose(400)
    connected = np.random.default_rng(5).random(400) < 0.2
    for user in range(0, 400, 7):
        gathered = members.gather(groups.row(user))
        expected = gathered[connected[gathered] & (gathered != user)]
        got = connected_members(
            groups.indptr,
            groups.indices,
            members.indptr,
            members.indices,
            user,
            connected,
        )
        np.testing.assert_array_equal(got, expected)
        # A user in 5 groups of 40 has at most 5 x 39 others to reach.
        assert len(got) <= 5 * 39


def test_keys_per_shard_count_each_users_keys_by_shard():
    friends = synthetic_friends(
        500, DegreeDistribution(mean=30), np.random.default_rng(6)
    )
    counts = keys_per_shard(
        friends.indptr,
        friends.indices,
        np.zeros(0, np.int64),
        np.zeros(0, np.int32),
        3,
    )
    for user in (0, 17, 499):
        expected = np.bincount(friends.row(user) % 3, minlength=3)
        np.testing.assert_array_equal(counts[user], expected)
    assert counts.sum() == 500 * 30


def test_keys_per_shard_of_groups_count_one_key_per_group_and_member():
    members = synthetic_groups(300, 4, 30, np.random.default_rng(7))
    groups = members.transpose(300)
    counts = keys_per_shard(
        groups.indptr, groups.indices, members.indptr, members.indices, 5
    )
    for user in (0, 150, 299):
        keys = members.gather(groups.row(user))
        np.testing.assert_array_equal(counts[user], np.bincount(keys % 5, minlength=5))
    # Every user's keys: 4 groups of 30 members, itself included.
    assert set(counts.sum(axis=1)) == {120}


def test_histogram_bins_are_the_log_formula():
    low = LogHistogram.low
    values = np.array([0.0, low / 2, low, 1e-3, 1e-3, 2e-3, 0.5, 1e12, 1e-3])
    histogram = LogHistogram()
    histogram.add(values[:6])
    histogram.add(np.array([0.25]), shift=0.25)  # values[6], 0.5
    histogram.add(values[7:])
    # floor(100 log10(v / 1e-7)), values up to 1e-7 in bin 0, the top bin last.
    bins = [0, 0, 0, 400, 400, 430, 669, 1599, 400]
    np.testing.assert_array_equal(np.flatnonzero(histogram.counts), sorted(set(bins)))
    assert histogram.counts[400] == 3
    assert histogram.count == len(values)
    assert histogram.total == pytest.approx(values.sum(), rel=1e-15)


def test_a_push_counts_its_latencies_as_the_histogram_does():
    fixed = LengthDistribution(distribution="fixed", mean=1e-5)
    tier = Tier(
        "gateway", 2, 2, {"deliver": fixed}, np.random.default_rng(0), 10.0, 1.0
    )
    recipients = np.array([3, 4, 5, 6, 7, 8, 9], dtype=np.int32)
    present = np.ones(10, dtype=bool)
    present[4] = False
    mode = np.zeros(10, dtype=np.int8)
    mode[[5, 6]] = INVISIBLE
    finish = np.empty(len(recipients))
    counts = np.zeros(LogHistogram.bins, dtype=np.int64)

    ghosts, hidden, total = push(
        tier.buffers,
        tier.op_index("deliver"),
        recipients,
        1.0,
        present,
        mode,
        INVISIBLE,
        finish,
        counts,
        0.001 - 0.5,
    )

    # Each server serves 3 or 4 jobs on 2 workers: finishes after 10 and 20 us.
    assert (ghosts, hidden) == (1, 2)
    assert sorted(finish.round(9)) == [1.00001] * 4 + [1.00002] * 3
    expected = LogHistogram()
    expected.add(finish, 0.001 - 0.5)
    np.testing.assert_array_equal(counts, expected.counts)
    assert total == expected.total


def test_a_run_shared_among_processes_gives_the_one_process_tables():
    scenario = every_strategy()
    alone = Run(scenario).simulate(processes=1).result().tables
    shared = Run(scenario).simulate(processes=2).result().tables
    assert alone.keys() == shared.keys()
    for name, table in alone.items():
        pd.testing.assert_frame_equal(shared[name], table, check_exact=True)
    assert len(alone["strategies"]) == 5


def test_empty_poll_share_matches_friends_not_changing_in_one_interval():
    # A friend online 20% of the time in 30-minute sessions (offline gaps of
    # 2 h) makes no change in a window w with chance q(w) = 0.2 exp(-w/30m) +
    # 0.8 exp(-w/2h); a poll T = 60 s after the last one is empty when none
    # of its 50 friends changed: q(T)^50. The first poll of a session (about
    # one in 30) covers a uniform part of T.
    def quiet(window: np.ndarray) -> np.ndarray:
        return (0.2 * np.exp(-window / 1800) + 0.8 * np.exp(-window / 7200)) ** 50

    first = 60 / 1800
    expected = (1 - first) * quiet(np.array(60.0)) + first * quiet(
        np.linspace(0, 60, 1001)
    ).mean()
    shares = []
    for seed in (11, 12, 13):
        scenario = small_scenario(
            seed=seed,
            duration="30m",
            strategies={"friends": ["poll"], "groups": [], "poll_interval": "60s"},
        )
        row = Run(scenario).simulate().result().tables["strategies"].iloc[0]
        shares.append(row["empty_polls"] / row["requests"])
    # Measured 0.538 against 0.522 (3% above, seeds 0.524 to 0.547); polls
    # of a 1 s load slot are answered at its start and miss changes later in
    # the slot, which explains about 0.6% of it.
    assert np.mean(shares) == pytest.approx(float(expected), rel=0.05)


def test_kernel_cache_is_keyed_by_every_module_that_defines_kernels():
    package = ROOT / "sim"
    defining = {
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if "@kernel" in path.read_text()
    }
    assert defining | {"jit.py"} == set(KERNEL_MODULES)
    assert cache_dir().name.startswith("kernels-")
