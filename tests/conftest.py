"""Shared fixtures: small scenarios and the shared datasets folder."""

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


@pytest.fixture
def datasets() -> Path:
    return datasets_or_skip()
