"""Same seed, same numbers; another seed, other numbers."""

import subprocess
import sys

import pandas as pd

from tests.conftest import ROOT


def _run(tmp_path, name: str, seed: int) -> pd.DataFrame:
    out = tmp_path / name
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "cli.py"),
            "run",
            str(ROOT / "scenarios" / "seed.yaml"),
            "--set",
            "population.users=2000",
            "--set",
            "duration=5m",
            "--set",
            f"seed={seed}",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return (out / "tables" / "strategies.csv").read_bytes()


def test_same_seed_gives_identical_strategy_table(tmp_path):
    assert _run(tmp_path, "a", 3) == _run(tmp_path, "b", 3)


def test_other_seed_gives_other_numbers(tmp_path):
    assert _run(tmp_path, "a", 3) != _run(tmp_path, "c", 4)
