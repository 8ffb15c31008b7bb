"""The seed scenario reproduces the reference article's storm factors."""

import pytest

from sim.experiment import run_scenario
from sim.scenario import load_scenario
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def seed_push_run():
    scenario = load_scenario(
        ROOT / "scenarios" / "seed.yaml",
        [
            "population.users=20000",
            "strategies.friends=[push]",
            "strategies.groups=[push]",
        ],
    )
    table = run_scenario(scenario).tables["strategies"]
    return table.set_index(["audience", "strategy"])


def test_friend_push_n_is_online_share_of_200_reverse_friends(seed_push_run):
    # 200 reverse friends on average, 20% online: N = 0.2 * 200 = 40.
    n_mean = seed_push_run.loc[("friends", "push"), "n_mean"]
    assert n_mean == pytest.approx(40, rel=0.03)


def test_group_push_n_is_20_groups_of_199_others_at_20_percent(seed_push_run):
    # Per group: 20 groups x 199 other members x 0.2 online = 796.
    n_mean = seed_push_run.loc[("groups", "push"), "n_mean"]
    assert n_mean == pytest.approx(20 * 199 * 0.2, rel=0.03)


def test_push_amplification_equals_n(seed_push_run):
    # Push sends exactly one message per observer reached.
    for key in [("friends", "push"), ("groups", "push")]:
        row = seed_push_run.loc[key]
        assert row["messages"] == pytest.approx(row["n_mean"] * row["changes"])
