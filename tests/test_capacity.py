"""The capacity planner: formula start, scale model, search and scale-up."""

import json
import math
import subprocess
import sys

import pandas as pd
import pytest

from sim.analytic import erlang_c
from sim.capacity import (
    Bracket,
    PlanSettings,
    Search,
    StrategyReading,
    TierReading,
    Verdict,
    make_plan,
    plan_settings,
    scale_model,
    utilisation_need,
)
from sim.capacity_report import advise, plan_table, scaling_notes
from sim.errors import PresenceSimError
from sim.scenario import load_scenario, parse_scenario
from tests.conftest import ROOT, small_scenario

# Users and sessions of the M/M/c scenario: 3,000 simulated users online 20%
# of the time in sessions of one minute change status 2 x 0.2 / 60 s = 1/150
# times a second each: 20 changes a second. Planned for 3,000,000 users, k =
# 1,000: 20,000 changes a second, each a job of the presence tier (a login or
# a logout), and 10,000 logins, each a friend-list load of the db tier.
TARGET = 3_000_000
PRESENCE_RATE = 20_000.0
DB_RATE = 10_000.0
SERVICE = 1e-3
WORKERS = 4
WAIT_P99 = 4.5e-3


def mmc_scenario(**sections: object):
    """Presence and db tiers of M/M/4 queues, one per server: Poisson jobs
    (logins and logouts; friend-list loads at login) with exponential service
    of 1 ms. The gateway and cache do microseconds of work."""
    exponential = {"distribution": "exponential", "mean": "1ms"}
    raw = {
        "name": "mmc",
        "seed": 5,
        "duration": "20m",
        "population": {
            "users": 3000,
            "session": {"distribution": "exponential", "mean": "1m"},
        },
        "graph": {"out_degree": {"distribution": "fixed", "mean": 5}},
        "groups": {"kind": "none"},
        "strategies": {"friends": ["push"], "groups": []},
        "heartbeat": {"interval": "1h", "timeout": "1h"},
        "tiers": {
            "gateway": {"deliver": "1us", "request": "1us", "heartbeat": "1us"},
            "presence": {
                "workers": WORKERS,
                "login": exponential,
                "change": exponential,
            },
            "cache": {"set": "1us", "get": "1us"},
            "db": {"workers": WORKERS, "friends": exponential},
        },
        "slo": {
            "utilisation": 0.9,
            "wait_p99": "4.5ms",
            "propagation_p99": None,
            "login_p99": None,
        },
        "capacity": {"target_users": TARGET, "runs": 3},
    }
    raw.update(sections)
    return parse_scenario(raw)


def erlang_c_wait_p99(rate: float, servers: int) -> float:
    """p99 wait at one of `servers` M/M/4 servers sharing `rate` jobs a
    second: P(W > t) = C(c, a) exp(-(c/S - lambda) t), so t99 = ln(C / 0.01)
    / (c/S - lambda) when more than 1% of jobs wait."""
    per_server = rate / servers
    offered = per_server * SERVICE
    if offered >= WORKERS:
        return math.inf
    waiting = erlang_c(WORKERS, offered)
    if waiting <= 0.01:
        return 0.0
    return math.log(waiting / 0.01) / (WORKERS / SERVICE - per_server)


def fewest_servers(rate: float) -> int:
    """The smallest count with utilisation at most 0.9 and p99 wait at most
    4.5 ms, by Erlang C."""
    servers = 1
    while (
        rate * SERVICE / (servers * WORKERS) > 0.9
        or erlang_c_wait_p99(rate, servers) > WAIT_P99
    ):
        servers += 1
    return servers


@pytest.fixture(scope="module")
def mmc_plan():
    scenario = mmc_scenario()
    return make_plan(scenario, plan_settings(scenario))


def test_erlang_c_answer_of_the_mmc_scenario():
    # 20,000 jobs/s of 1 ms on 4-worker servers. Five servers are saturated;
    # six are 83% busy but wait 6.3 ms at p99; seven are 71% busy and wait
    # 3.3 ms.
    assert PRESENCE_RATE * SERVICE / (5 * WORKERS) == 1.0
    assert erlang_c_wait_p99(PRESENCE_RATE, 6) == pytest.approx(6.28e-3, rel=0.01)
    assert erlang_c_wait_p99(PRESENCE_RATE, 7) == pytest.approx(3.33e-3, rel=0.01)
    assert fewest_servers(PRESENCE_RATE) == 7
    # 10,000 friend-list loads: three servers wait 6.3 ms, four 2.3 ms.
    assert erlang_c_wait_p99(DB_RATE, 3) == pytest.approx(6.28e-3, rel=0.01)
    assert erlang_c_wait_p99(DB_RATE, 4) == pytest.approx(2.31e-3, rel=0.01)
    assert fewest_servers(DB_RATE) == 4


def test_planned_servers_are_the_fewest_meeting_the_slo_by_erlang_c(mmc_plan):
    servers = mmc_plan.servers[("friends", "push")]
    assert servers == {"gateway": 1, "presence": 7, "cache": 1, "db": 4}
    assert servers["presence"] == fewest_servers(PRESENCE_RATE)
    assert servers["db"] == fewest_servers(DB_RATE)
    assert mmc_plan.confirmed[("friends", "push")]


def test_formula_guess_is_the_erlang_c_answer(mmc_plan):
    assert mmc_plan.predicted[("friends", "push")] == {
        "gateway": 1,
        "presence": 7,
        "cache": 1,
        "db": 4,
    }


def test_one_fewer_server_was_simulated_and_missed_the_wait(mmc_plan):
    for tier, fewest in (("presence", 7), ("db", 4)):
        tried = {
            trial.servers[tier]: trial.reading.tiers[tier]
            for _, trial in mmc_plan.trials
        }
        assert tried[fewest - 1].wait_p99 > WAIT_P99
        assert tried[fewest].wait_p99 <= WAIT_P99


def test_scale_model_waits_match_erlang_c_at_the_target(mmc_plan):
    # The simulated p99 waits, divided by k = 1,000, are the target's. A p99
    # from one 20-minute run moves with the seed: over seeds 5 to 8 the
    # presence tier read 0.94 to 1.21 times Erlang C's 3.33 ms. Friend-list
    # loads are placed when the login starts, ahead of their arrival (the
    # Limitation in sim.tiers), which lengthens their waits: over the same
    # seeds the db tier read 1.10 to 1.32 times Erlang C's 2.31 ms.
    reading = mmc_plan.chosen[("friends", "push")].reading
    assert reading.tiers["presence"].wait_p99 == pytest.approx(
        erlang_c_wait_p99(PRESENCE_RATE, 7), rel=0.25
    )
    db_ratio = reading.tiers["db"].wait_p99 / erlang_c_wait_p99(DB_RATE, 4)
    assert 1.0 <= db_ratio <= 1.4
    # 20,000 jobs of 1 ms on 7 x 4 workers.
    assert reading.tiers["presence"].utilisation_mean == pytest.approx(
        PRESENCE_RATE * SERVICE / 28, rel=0.05
    )


def test_plan_table_has_a_row_per_tier_and_the_scale_factor(mmc_plan):
    table = plan_table(mmc_plan)
    assert list(table["tier"]) == ["gateway", "presence", "cache", "db"]
    assert set(table["total_servers"]) == {1 + 7 + 1 + 4}
    assert set(table["scale_factor"]) == {1000.0}
    assert set(table["simulated_users"]) == {3000}


def test_notes_say_how_the_plan_was_scaled(mmc_plan):
    notes = scaling_notes(mmc_plan)
    assert notes[0].startswith(
        "Scaled from 3,000 simulated users to 3,000,000 (scale factor k = 1000)"
    )
    assert "per-user load is held constant and servers scale with it" in notes[0]
    assert any(note.startswith("N does not grow with users") for note in notes)
    assert any("Service times are held constant" in note for note in notes)


def test_system_messages_are_pulled_when_not_simulated(mmc_plan):
    advice = {item.audience: item for item in advise(mmc_plan)}
    assert advice["friends"].choice == "push"
    assert advice["system"].choice == "pull"
    # 20% of 3,000,000 users online get a broadcast at once.
    assert "600,000 messages at once" in advice["system"].text


def test_scale_model_slows_service_and_hops_by_k():
    scenario = small_scenario()
    model = scale_model(scenario, PlanSettings(2_000_000, 2000, 3))
    assert model.population.users == 2000
    assert model.tiers.presence.change.mean == pytest.approx(200e-6 * 1000)
    assert model.tiers.db.friends.mean == pytest.approx(1.0)
    assert model.network.hop_delay == pytest.approx(1.0)
    assert model.tiers.gateway.servers == scenario.tiers.gateway.servers


def test_utilisation_need_goes_as_one_over_servers():
    # 0.85 busy on 10 servers is 8.5 servers' work: 13 keep it under 0.7.
    assert utilisation_need(0.85, 10, 0.7) == 13
    assert utilisation_need(0.7, 10, 0.7) == 10
    assert utilisation_need(0.001, 3, 0.7) == 1


def test_bracket_settles_at_the_utilisation_bound_when_that_passes():
    bracket = Bracket(now=9)
    bracket.update(failed=False, passed=True, bound=7)
    assert (bracket.low, bracket.high, bracket.now) == (7, 9, 8)
    bracket.update(failed=True, passed=False, bound=7)
    assert (bracket.low, bracket.high, bracket.now) == (9, 9, 9)
    assert bracket.settled


def test_bracket_grows_a_tier_by_the_factor_it_missed_by():
    bracket = Bracket(now=4)
    bracket.update(failed=True, passed=False, bound=2, growth=1.6)
    assert bracket.now == 7
    assert bracket.high is None


def test_plan_needs_a_target_naming_the_field():
    with pytest.raises(PresenceSimError, match="capacity.target_users"):
        plan_settings(small_scenario())


def test_plan_simulates_at_most_a_hundred_thousand_users_by_default():
    settings = plan_settings(
        small_scenario(population={"users": 5_000_000}), target_users=10**8
    )
    assert settings.simulated_users == 100_000
    assert settings.scale == 1000


@pytest.mark.parametrize(
    ("slo", "field"),
    [
        ({"utilisation": 1.5}, "slo.utilisation"),
        ({"propagation_p99": "soon"}, "slo.propagation_p99"),
        ({"wait_p99": 0}, "slo.wait_p99"),
        ({"peak_window": "100ms"}, "slo.peak_window"),
        ({"p99": "1s"}, "slo.p99"),
    ],
)
def test_bad_slo_names_the_field(slo, field):
    with pytest.raises(PresenceSimError, match=field.replace(".", r"\.")):
        small_scenario(slo=slo)


def _plan_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "plan", *args],
        capture_output=True,
        text=True,
    )


def test_seed_plan_for_a_hundred_million_users_comes_from_twenty_thousand(tmp_path):
    # Two simulated minutes and one run keep the test short; the scale-up is
    # the same as the full plan's: 100,000,000 / 20,000 = 5,000.
    out = tmp_path / "plan"
    result = _plan_cli(
        str(ROOT / "scenarios" / "seed.yaml"),
        "--target-users",
        "100000000",
        "--set",
        "duration=2m",
        "--set",
        "capacity.runs=1",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "Servers for 100,000,000 users (simulated 20,000, scale factor 5000)" in (
        result.stdout
    )
    table = pd.read_csv(out / "tables" / "plan.csv")
    assert set(table["simulated_users"]) == {20_000}
    assert set(table["target_users"]) == {100_000_000}
    assert set(table["scale_factor"]) == {5000.0}
    assert len(table) == 4 * 4
    # Group push: 22,222 changes/s x N = 796 pushes of 20 us on 8-worker
    # gateways at 0.7 at most is some 64 gateways; friend push needs a dozen
    # times fewer.
    servers = table.set_index(["audience", "strategy", "tier"])["servers"]
    assert 60 <= servers[("groups", "push", "gateway")] <= 68
    assert servers[("friends", "push", "gateway")] <= 8
    report = (out / "report.md").read_text()
    assert (
        "Scaled from 20,000 simulated users to 100,000,000 (scale factor k = 5000)"
        in (report)
    )
    assert "- **Groups**: Lazy pull" in report
    assert "- **Friends**: Push" in report
    assert "- **System**: Pull" in report
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scale_factor"] == 5000
    assert summary["simulated_users"] <= 100_000


def test_plan_without_a_target_exits_2_naming_the_field(tmp_path):
    result = _plan_cli(str(ROOT / "scenarios" / "seed.yaml"), "--out", str(tmp_path))
    assert result.returncode == 2
    assert "capacity.target_users" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_seed_plan_at_a_hundred_million_users_in_full():
    # The whole seed plan: an hour simulated per run. Golden values from
    # seed 20261203: the formula's guesses hold except where the simulated
    # peak or N moved a tier by one server.
    scenario = load_scenario(ROOT / "scenarios" / "seed.yaml")
    plan = make_plan(scenario, plan_settings(scenario, target_users=100_000_000))
    assert plan.runs == 2
    assert plan.servers[("friends", "push")] == {
        "gateway": 5,
        "presence": 1,
        "cache": 2,
        "db": 2,
    }
    assert plan.servers[("friends", "poll")] == {
        "gateway": 6,
        "presence": 19,
        "cache": 49,
        "db": 2,
    }
    assert plan.servers[("groups", "push")]["gateway"] == 64
    assert sum(plan.servers[("groups", "lazy_pull")].values()) == 12
    assert all(plan.confirmed.values())


def test_blame_for_a_missed_latency_moves_to_the_tier_being_lowered():
    # The gateway passed at 5 and is tried at 5 again; the presence tier,
    # which passed at 4, is tried at 3. A missed login objective blamed on the
    # gateway's longer waits goes to the presence tier instead.
    brackets = {
        "gateway": Bracket(now=5, low=5, high=5),
        "presence": Bracket(now=3, low=2, high=4),
    }
    verdict = Verdict(blamed="gateway", misses=["login"], excess={"gateway": 1.5})
    reading = StrategyReading(
        {
            "gateway": TierReading(5, 8, 0.5, 0.5, 0.004, 1.0),
            "presence": TierReading(3, 8, 0.6, 0.6, 0.002, 1.0),
        },
        math.nan,
        True,
        3.0,
        math.nan,
        0.0,
        0.0,
        0.0,
    )
    Search._shift_blame(verdict, reading, brackets)
    assert verdict.blamed == "presence"
    assert verdict.excess == {"presence": 1.5}
