"""The reference article's table, by formula and by simulation.

200 reverse friends, 20% online: N = 40. 20 groups of 200 members, 20%
online, counted per group: N = 20 x 199 x 0.2 = 796 (the article rounds it
to 800).
"""

import math

import pytest

from sim.analytic import estimate_scenario
from sim.experiment import run_scenario
from sim.scenario import load_scenario
from tests.conftest import ROOT

PUSH_ONLY = ["strategies.friends=[push]", "strategies.groups=[push]"]


def _seed(*overrides: str):
    return load_scenario(ROOT / "scenarios" / "seed.yaml", [*PUSH_ONLY, *overrides])


@pytest.fixture(scope="module")
def simulated():
    """The seed scenario for five simulated minutes."""
    result = run_scenario(_seed("duration=5m"))
    table = result.tables["strategies"].set_index(["audience", "strategy"])
    return table, result.summary["workload"]["mean_online_fraction"]


def test_formula_gives_the_article_storm_factors():
    predicted = {s.audience: s.n.mean() for s in estimate_scenario(_seed()).strategies}
    assert predicted["friends"] == pytest.approx(40, rel=1e-12)
    assert predicted["groups"] == pytest.approx(20 * 199 * 0.2, rel=1e-12)


@pytest.mark.parametrize(
    ("audience", "expected", "observers"),
    [("friends", 40.0, 200), ("groups", 796.0, 20 * 199)],
)
def test_simulated_storm_factor_matches_the_article(
    simulated, audience, expected, observers
):
    table, online = simulated
    row = table.loc[(audience, "push")]
    assert row["n_mean_predicted"] == pytest.approx(expected)

    # Given the share online this run drew, N is that share of the observers.
    assert row["n_mean"] == pytest.approx(online * observers, rel=0.01)

    # Unconditionally, within three standard errors: N per change, and the
    # share online, which every change of the run shares.
    p, users = 0.2, 20_000
    per_change = math.sqrt(p * (1 - p) * observers / row["changes"])
    shared = expected * math.sqrt((1 - p) / (p * users))
    assert abs(row["n_mean"] - expected) <= 3 * math.hypot(per_change, shared)
