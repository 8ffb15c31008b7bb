"""Friend push on real graphs: simulated N against the graph's own degrees.

The user behind a change is uniform over users and each reverse friend is
online with probability p independently, so E[N] = p x mean in-degree. A
skewed degree sequence makes N vary a lot from change to change; the
tolerance is three standard errors from that spread and from the share of
users online, which all changes of a run share. Given the users who did
change, E[N] = p x their mean in-degree, which leaves only the second.
"""

import math

import pytest

from sim.analytic import estimate, scenario_profile
from sim.experiment import run_scenario
from sim.graph import build_graph
from sim.randomness import stream
from sim.scenario import parse_scenario
from tests.conftest import datasets_or_skip

P = 0.2
# File, and simulated time for 10,000 to 20,000 changes with 5-minute sessions.
GRAPHS = {
    "email-Eu-core": ("email-Eu-core.txt.gz", "2h"),
    "advogato": ("out.advogato", "30m"),
    "slashdot": ("soc-Slashdot0902.txt.gz", "3m"),
}


def _scenario(name: str):
    path, duration = GRAPHS[name]
    return parse_scenario(
        {
            "name": name,
            "seed": 5,
            "duration": duration,
            "population": {"online_fraction": P, "session": {"mean": "5m"}},
            "graph": {"kind": "edge_list", "path": str(datasets_or_skip() / path)},
            "groups": {"kind": "none"},
            "strategies": {"friends": ["push"], "groups": []},
        }
    )


@pytest.mark.parametrize("name", list(GRAPHS))
def test_push_n_matches_the_graph_degree_sequence(name):
    scenario = _scenario(name)
    result = run_scenario(scenario)
    row = result.tables["strategies"].iloc[0]

    # The prediction from the whole degree sequence, as `estimate` gives it.
    graph = build_graph(
        scenario, stream(scenario.seed, "graph"), stream(scenario.seed, "groups")
    )
    in_degree = graph.reverse.degrees()
    profile = scenario_profile(scenario, graph)
    predicted = estimate(scenario, profile).strategies[0].n.mean()
    assert predicted == pytest.approx(P * in_degree.mean(), rel=1e-9)
    assert row["n_mean_predicted"] == pytest.approx(predicted)

    changes = row["changes"]
    shared = math.sqrt((1 - P) / (P * graph.users))
    spread = math.sqrt(P * (1 - P) * in_degree.mean() + P**2 * in_degree.var())
    error = math.hypot(spread / math.sqrt(changes), predicted * shared)
    assert abs(row["n_mean"] - predicted) <= 3 * error

    # Given who changed (after the warm-up), only the online draws remain.
    changers = result.summary["predictions"]["changers_mean_in_degree"]
    conditional = P * changers
    online_only = math.sqrt(P * (1 - P) * changers / changes)
    error = math.hypot(online_only, conditional * shared)
    assert abs(row["n_mean"] - conditional) <= 3 * error
