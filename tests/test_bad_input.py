"""Bad input: one clear message naming the field, exit 2, nothing written."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT, datasets_or_skip

GOOD = (ROOT / "scenarios" / "seed.yaml").read_text()


def _run(tmp_path, text: str | None, *extra: str) -> subprocess.CompletedProcess:
    scenario = tmp_path / "scenario.yaml"
    if text is not None:
        scenario.write_text(text)
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "cli.py"),
            "run",
            str(scenario),
            *extra,
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )


CASES = {
    "missing file": (None, [], "scenario.yaml: scenario file not found"),
    "yaml syntax": ("population: {users: 20\n", [], "YAML syntax error at line"),
    "unknown field": (
        GOOD.replace("online_fraction:", "online_fractoin:"),
        [],
        "population.online_fractoin: unknown field; valid fields here: users, "
        "online_fraction, session",
    ),
    "unknown strategy": (
        GOOD.replace("friends: [push, poll]", "friends: [push, gossip]"),
        [],
        "strategies.friends.1: Input should be 'push' or 'poll'",
    ),
    "negative rate": (
        GOOD.replace("group_visits_per_hour: 2", "group_visits_per_hour: -3"),
        [],
        "behaviour.group_visits_per_hour: Input should be greater than or equal to 0",
    ),
    "bad duration": (GOOD, ["--set", "duration=soon"], "duration: 'soon' is not a"),
    "missing data file": (
        GOOD.replace(
            "kind: synthetic\n  out_degree: {distribution: fixed, mean: 200}",
            "kind: edge_list\n  path: no-such-edges.txt",
        ),
        [],
        "graph.path: data file",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_2_naming_the_field(tmp_path, case):
    text, extra, expected = CASES[case]
    result = _run(tmp_path, text, *extra)
    assert result.returncode == 2, result.stderr
    assert expected in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] in ([], ["scenario.yaml"])


@pytest.mark.parametrize(
    "path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.name
)
def test_validate_accepts_the_shipped_scenarios(path):
    if "shared/datasets" in path.read_text():
        datasets_or_skip()
    result = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "validate", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_memory_guard_refuses_a_scenario_larger_than_the_machine(tmp_path):
    # 10^9 users with 200 friends each: about 5 TB of arcs alone.
    result = _run(tmp_path, GOOD, "--set", "population.users=1000000000")
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "population.users: this scenario needs about" in message
    assert "the largest population that fits is about" in message
    assert not (tmp_path / "out").exists()


def test_out_folder_with_other_files_is_refused_before_running(tmp_path):
    keep = tmp_path / "out"
    keep.mkdir()
    (keep / "important.txt").write_text("keep")
    result = _run(tmp_path, GOOD, "--set", "population.users=200")
    assert result.returncode == 2
    assert "not a presence-sim run" in " ".join(result.stderr.split())
    assert (keep / "important.txt").read_text() == "keep"


def test_no_strategy_at_all_is_refused(tmp_path):
    result = _run(
        tmp_path,
        GOOD,
        "--set",
        "strategies.friends=[]",
        "--set",
        "strategies.groups=[]",
    )
    assert result.returncode == 2
    assert "strategies: choose at least one strategy" in " ".join(result.stderr.split())


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "faults=[{kind: slowdown, tier: cache, start: 2h, end: 3h, factor: 5}]",
            "faults.0.start must come before the end of the run",
        ),
        (
            "system_messages=[{at: 2h}]",
            "system_messages.0.at must come before the end of the run",
        ),
        ("faults.0.at=5m", "'faults' is a list; it is empty"),
    ],
)
def test_events_after_the_run_and_bad_list_positions_are_refused(
    tmp_path, override, expected
):
    result = _run(tmp_path, GOOD, "--set", override)
    assert result.returncode == 2
    assert expected in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
