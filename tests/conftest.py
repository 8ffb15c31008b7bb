"""Shared fixtures: small scenarios, small runs and the shared datasets folder."""

import subprocess
import sys
from pathlib import Path

import pytest

from sim.scenario import Scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"


def datasets_or_skip() -> Path:
    """The shared datasets folder, or a skip saying why it is needed."""
    if not DATASETS.is_dir():
        pytest.skip(
            f"needs the shared real-graph datasets at {DATASETS}, which exist in "
            "CI but not in a standalone clone"
        )
    return DATASETS


def small_scenario(**sections: object) -> Scenario:
    """A fast scenario: 2,000 users for 10 simulated minutes, then overrides."""
    raw: dict[str, object] = {
        "name": "small",
        "seed": 11,
        "duration": "10m",
        "population": {"users": 2000},
        "graph": {"kind": "synthetic", "out_degree": {"mean": 50}},
        "groups": {"kind": "synthetic", "groups_per_user": 5, "group_size": 50},
    }
    raw.update(sections)
    return parse_scenario(raw)


def every_strategy() -> Scenario:
    """`small_scenario` with every strategy, status switches, abrupt
    disconnects and a system message."""
    return small_scenario(
        strategies={
            "friends": ["push", "poll"],
            "groups": ["push", "push_dedup", "lazy_pull"],
        },
        behaviour={"status_switches_per_hour": 2, "abrupt_disconnect_share": 0.2},
        system_messages=[{"at": "2m", "expires": "5m"}],
    )


@pytest.fixture
def datasets() -> Path:
    return datasets_or_skip()


def run_cli(*arguments: str) -> subprocess.CompletedProcess:
    """`presence-sim ARGUMENTS...` in a fresh interpreter, output captured."""
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *arguments],
        capture_output=True,
        text=True,
    )


def small_run(folder: Path, *overrides: str) -> Path:
    """The seed scenario at 1,500 users for 3 simulated minutes, written to folder."""
    settings = ["population.users=1500", "duration=3m", *overrides]
    result = run_cli(
        "run",
        str(ROOT / "scenarios" / "seed.yaml"),
        *(part for setting in settings for part in ("--set", setting)),
        "--out",
        str(folder),
    )
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture(scope="session")
def report_run(tmp_path_factory) -> Path:
    """A small run as `presence-sim run` writes it; tests must not change it."""
    return small_run(tmp_path_factory.mktemp("report") / "run")


@pytest.fixture(scope="session")
def full_report_run(tmp_path_factory) -> Path:
    """A small run with a gateway crash and a system message, given the tables
    of later features (intervals, predictions, a plan, a sweep), its report
    drawn again from them."""
    from tests.report_tables import add_optional_tables

    folder = small_run(
        tmp_path_factory.mktemp("full-report") / "run",
        "faults=[{kind: gateway_crash, at: 60s, reconnect_jitter: 20s}]",
        "system_messages=[{at: 30s, expires: 90s}]",
    )
    add_optional_tables(folder)
    result = run_cli("report", str(folder))
    assert result.returncode == 0, result.stderr
    return folder


# A scenario name and description that would run or load something if the
# report did not escape them.
HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_DESCRIPTION = "<img src=x onerror=alert(2)> & friends | groups"


@pytest.fixture(scope="session")
def hostile_run(tmp_path_factory) -> Path:
    """A tiny run whose scenario name and description are markup."""
    return small_run(
        tmp_path_factory.mktemp("hostile") / "run",
        f"name={HOSTILE_NAME}",
        f"description={HOSTILE_DESCRIPTION}",
        "duration=1m",
        "population.users=1000",
    )
