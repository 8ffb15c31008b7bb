"""`presence-sim baseline` and `check`: the CI regression gate."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import yaml

from sim.baseline import Tolerance, parse_tolerance
from sim.errors import PresenceSimError
from tests.conftest import ROOT

# 1,500 users online 20% of the time in sessions of 2 minutes, with 30
# friends each polled every 30 s, for 5 simulated minutes; planned for
# 1,500,000 users in at most two runs.
SCENARIO = {
    "name": "gate",
    "seed": 3,
    "duration": "5m",
    "population": {"users": 1500, "session": {"mean": "2m"}},
    "graph": {"out_degree": {"mean": 30}},
    "groups": {"kind": "none"},
    "strategies": {"friends": ["push", "poll"], "groups": [], "poll_interval": "30s"},
    "capacity": {"target_users": 1_500_000, "runs": 2},
}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args],
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    """A scenario file and its fresh baseline."""
    folder = tmp_path_factory.mktemp("gate")
    scenario = folder / "gate.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    baseline = folder / "baselines" / "gate.json"
    made = cli("baseline", str(scenario), "--out", str(baseline))
    assert made.returncode == 0, made.stderr
    return scenario, baseline


def test_baseline_records_seed_versions_and_the_watched_figures(gate):
    _, baseline = gate
    data = json.loads(baseline.read_text())
    assert data["seed"] == 3
    assert set(data["versions"]) == {"presence-sim", "python", "numpy", "simpy"}
    assert data["plan"] == {"target_users": 1_500_000, "simulated_users": 1500}
    metrics = data["metrics"]
    for name in (
        "friends.push.n_mean",
        "friends.push.latency_p99_s",
        "friends.poll.peak_rps.presence",
        "friends.poll.requests_per_s",
        "friends.poll.servers.cache",
        "friends.push.total_servers",
    ):
        assert name in metrics
    # Push: N = 0.2 online x 30 reverse friends on average.
    assert metrics["friends.push.n_mean"]["value"] == pytest.approx(6, rel=0.15)
    assert metrics["friends.push.n_mean"]["tolerance"] == {"relative": 0.05}


def test_check_passes_against_its_own_fresh_baseline(gate):
    scenario, baseline = gate
    result = cli("check", str(scenario), "--baseline", str(baseline))
    assert result.returncode == 0, result.stdout + result.stderr
    count = len(json.loads(baseline.read_text())["metrics"])
    assert f"all {count} metrics hold" in result.stdout


def check_with_poll_interval_halved(gate, *options: str):
    scenario, baseline = gate
    return cli(
        "check",
        str(scenario),
        "--baseline",
        str(baseline),
        "--set",
        "strategies.poll_interval=15s",
        *options,
    )


def test_check_fails_naming_the_metric_when_poll_interval_is_halved(gate, tmp_path):
    _, baseline = gate
    junit = tmp_path / "junit.xml"
    result = check_with_poll_interval_halved(gate, "--junit", str(junit))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "strategies.poll_interval: 30.0 -> 15.0" in result.stdout
    moved = result.stdout.split("beyond their tolerance:")[1]
    assert "friends.poll.requests_per_s" in moved
    assert "friends.push.n_mean" not in moved

    # Every online user polls twice as often: 300 online / 15 s, not / 30 s.
    row = next(
        line for line in result.stdout.splitlines() if "poll.requests_per_s" in line
    )
    baseline_value, now = (float(cell) for cell in row.split()[1:3])
    assert now / baseline_value == pytest.approx(2.0, rel=0.03)

    # The JUnit report: one test case per checked metric, failures marked.
    metrics = json.loads(baseline.read_text())["metrics"]
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert sorted(case.get("name") for case in cases) == sorted(metrics)
    failed = [case.get("name") for case in cases if case.find("failure") is not None]
    assert "friends.poll.requests_per_s" in failed
    assert suite.get("failures") == str(len(failed))
    assert suite.get("tests") == str(len(metrics))


def test_a_wider_tolerance_on_the_command_line_lets_the_move_pass(gate):
    result = check_with_poll_interval_halved(gate, "--tolerance", "friends.poll.*=150%")
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_refuses_a_missing_or_bad_baseline_with_exit_2(gate, tmp_path):
    scenario, _ = gate
    missing = cli("check", str(scenario), "--baseline", str(tmp_path / "no.json"))
    assert missing.returncode == 2
    assert "--baseline" in missing.stderr and "not found" in missing.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": 1, "metrics": {"friends.push.n_mean": {}}}')
    refused = cli("check", str(scenario), "--baseline", str(bad))
    assert refused.returncode == 2
    assert "metrics.friends.push.n_mean needs a numeric value" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_check_refuses_a_tolerance_that_matches_no_metric(gate):
    scenario, baseline = gate
    result = cli(
        "check", str(scenario), "--baseline", str(baseline), "--tolerance", "x.*=5%"
    )
    assert result.returncode == 2
    assert "--tolerance x.*: matches no metric" in result.stderr


@pytest.mark.parametrize(
    ("text", "tolerance"),
    [
        ("5%", Tolerance(relative=0.05)),
        ("0.002", Tolerance(absolute=0.002)),
        ("2ms", Tolerance(absolute=0.002)),
        ("10%,100us", Tolerance(relative=0.10, absolute=1e-4)),
    ],
)
def test_tolerances_read_as_shares_amounts_or_both(text, tolerance):
    parsed = parse_tolerance(text, "--tolerance")
    assert parsed.relative == pytest.approx(tolerance.relative)
    assert parsed.absolute == pytest.approx(tolerance.absolute)


def test_a_bad_tolerance_says_what_is_valid():
    with pytest.raises(PresenceSimError, match="write a share such as 5%"):
        parse_tolerance("lots", "--tolerance")


def test_a_change_holds_within_either_bound():
    # 100 -> 104 is within 5%; 0.001 -> 0.0015 is 50% but within 1 ms.
    assert Tolerance(relative=0.05).holds(100.0, 104.0)
    assert not Tolerance(relative=0.05).holds(100.0, 106.0)
    assert Tolerance(relative=0.05, absolute=0.001).holds(0.001, 0.0015)
