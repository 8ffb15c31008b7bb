"""Sweeps: the grid, identical tables on every executor, resuming after a kill."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import sim.runner
from sim.errors import PresenceSimError
from sim.executors import ExecutorChoice
from sim.runner import RunsFailed, run_plan
from sim.sweep import parse_grid, plan_sweep
from tests.conftest import ROOT

GRID = ["strategies.poll_interval=10s,30s"]


def _scenario_file(tmp_path, users: int = 1000, duration: str = "3m", **extra):
    """A small scenario file: N about 20 for friends, a few dozen changes."""
    raw = {
        "name": "tiny",
        "seed": 5,
        "duration": duration,
        "population": {"users": users},
        "graph": {"kind": "synthetic", "out_degree": {"mean": 100}},
        "groups": {"kind": "synthetic", "groups_per_user": 2, "group_size": 50},
        **extra,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _finished_runs(out) -> list[str]:
    runs = out / "runs"
    if not runs.is_dir():
        return []
    return sorted(
        entry.name
        for entry in runs.iterdir()
        if not entry.name.startswith(".") and (entry / "run.json").is_file()
    )


def test_grid_values_are_a_yaml_list():
    assert parse_grid("strategies.poll_interval=10s,30s") == (
        "strategies.poll_interval",
        ["10s", "30s"],
    )
    assert parse_grid("strategies.friends=[push],[push,poll]")[1] == [
        ["push"],
        ["push", "poll"],
    ]


def test_full_grid_has_every_combination_times_replications(tmp_path):
    path = _scenario_file(tmp_path, sweep={"population.online_fraction": [0.1, 0.2]})
    plan = plan_sweep(path, grid=GRID, replications=3)
    assert plan.keys == ["population.online_fraction", "strategies.poll_interval"]
    assert [point.settings for point in plan.points] == [
        {"population.online_fraction": 0.1, "strategies.poll_interval": 10.0},
        {"population.online_fraction": 0.1, "strategies.poll_interval": 30.0},
        {"population.online_fraction": 0.2, "strategies.poll_interval": 10.0},
        {"population.online_fraction": 0.2, "strategies.poll_interval": 30.0},
    ]
    assert len(plan.runs) == 4 * 3
    assert len({run.run_id for run in plan.runs}) == 12


def test_grid_option_replaces_the_same_key_of_the_sweep_block(tmp_path):
    path = _scenario_file(tmp_path, sweep={"strategies.poll_interval": ["1m", "2m"]})
    plan = plan_sweep(path, grid=GRID)
    assert [p.settings["strategies.poll_interval"] for p in plan.points] == [10, 30]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (["strategies.poll_interval"], "expected KEY=V1,V2,..."),
        (["strategies.poll_interval=10s,soon"], "strategies.poll_interval"),
        (["strategies.poll_intervals=10s"], "unknown field"),
        (["strategies.poll_interval=10s,10s"], "listed twice"),
        (GRID + GRID, "given twice"),
    ],
)
def test_bad_grid_names_the_key(tmp_path, grid, message):
    with pytest.raises(PresenceSimError, match=message):
        plan_sweep(_scenario_file(tmp_path), grid=grid)


@pytest.fixture(scope="module")
def sweep_on_every_executor(tmp_path_factory):
    """One sweep (2 points x 2 replications) made by -j 1, -j 2 and Dask."""
    tmp_path = tmp_path_factory.mktemp("executors")
    plan = plan_sweep(_scenario_file(tmp_path), grid=GRID, replications=2)
    choices = {
        "j1": ExecutorChoice(jobs=1),
        "j2": ExecutorChoice(jobs=2),
        "dask": ExecutorChoice(jobs=2, dask="local"),
    }
    return {
        name: run_plan(plan, tmp_path / name, choice, report=False)
        for name, choice in choices.items()
    }


def test_sweep_long_table_has_a_row_per_point_replication_and_strategy(
    sweep_on_every_executor,
):
    long = sweep_on_every_executor["j1"].tables["sweep_strategies_replications"]
    # 2 points x 2 replications x 4 strategies (friends and groups, 2 each).
    assert len(long) == 16
    labels = ["point", "strategies.poll_interval", "replication"]
    assert list(long.columns[:3]) == labels
    aggregated = sweep_on_every_executor["j1"].tables["sweep_strategies"]
    assert len(aggregated) == 8
    assert set(aggregated["replications"]) == {2}


def test_same_sweep_gives_identical_tables_on_every_executor(
    sweep_on_every_executor,
):
    reference = sweep_on_every_executor["j1"]
    for name in ("j2", "dask"):
        outcome = sweep_on_every_executor[name]
        assert outcome.executed == 4
        for name in ("strategies", "tiers", "load", "n_histogram"):
            table = f"sweep_{name}"
            pd.testing.assert_frame_equal(
                outcome.tables[table], reference.tables[table], check_exact=True
            )
        csv = Path("tables", "sweep_strategies.csv")
        assert (outcome.out_dir / csv).read_bytes() == (
            reference.out_dir / csv
        ).read_bytes()


def test_points_share_replication_streams(sweep_on_every_executor):
    # Common random numbers: the poll interval does not change the workload,
    # so push to friends sees the same changes at both points.
    long = sweep_on_every_executor["j1"].tables["sweep_strategies_replications"]
    push = long[(long["audience"] == "friends") & (long["strategy"] == "push")]
    by_point = push.pivot(index="replication", columns="point", values="n_mean")
    assert list(by_point[0]) == list(by_point[1])


def test_killed_sweep_resumes_without_recomputing_finished_runs(tmp_path, monkeypatch):
    path = _scenario_file(tmp_path, users=2000, duration="10m")
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "cli.py"), "sweep", str(path)]
    command += ["--grid", GRID[0], "--replications", "4", "-j", "1", "--out", str(out)]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    # Kill it (no clean-up possible) as soon as two runs are on disk.
    deadline = time.monotonic() + 300
    while len(_finished_runs(out)) < 2 and process.poll() is None:
        assert time.monotonic() < deadline, "the sweep wrote no runs"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = _finished_runs(out)
    stamps = {run: os.stat(out / "runs" / run / "run.json").st_mtime_ns for run in kept}
    assert 2 <= len(kept) < 8

    made = []

    def counting(run):
        made.append(run.run_id)
        return real(run)

    real = sim.runner.make_run
    monkeypatch.setattr(sim.runner, "make_run", counting)
    plan = plan_sweep(path, grid=GRID, replications=4)
    outcome = run_plan(plan, out, ExecutorChoice(jobs=1), report=False)

    assert len(made) == 8 - len(kept)
    assert not set(made) & set(kept)
    assert (outcome.executed, outcome.skipped) == (8 - len(kept), len(kept))
    assert len(_finished_runs(out)) == 8
    for run, stamp in stamps.items():
        assert os.stat(out / "runs" / run / "run.json").st_mtime_ns == stamp
    assert len(outcome.tables["sweep_strategies_replications"]) == 2 * 4 * 4


def test_failed_run_is_named_and_finished_runs_are_kept(tmp_path, monkeypatch):
    real = sim.runner.make_run

    def second_replication_fails(run):
        if run.replication == 1:
            raise MemoryError("out of memory")
        return real(run)

    monkeypatch.setattr(sim.runner, "make_run", second_replication_fails)
    plan = plan_sweep(_scenario_file(tmp_path), grid=GRID, replications=2)
    with pytest.raises(RunsFailed) as failed:
        run_plan(plan, tmp_path / "out", ExecutorChoice(jobs=1), report=False)
    message = str(failed.value)
    assert "strategies.poll_interval=10s), replication 1" in message
    assert "strategies.poll_interval=30s), replication 1" in message
    assert "MemoryError: out of memory" in message
    assert failed.value.kept == 2
    assert len(_finished_runs(tmp_path / "out")) == 2
    assert not (tmp_path / "out" / "tables").exists()


def test_sweep_command_writes_long_and_aggregated_tables(tmp_path):
    path = _scenario_file(tmp_path)
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "cli.py"), "sweep", str(path)]
    command += ["--grid", GRID[0], "--replications", "2", "-j", "1", "--out", str(out)]
    first = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "ran 4 runs" in first.stdout
    again = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "ran 0 runs, skipped 4 finished" in again.stdout
    for name in ("sweep_strategies", "sweep_strategies_replications", "runs"):
        assert (out / "tables" / f"{name}.csv").is_file()
        assert (out / "tables" / f"{name}.parquet").is_file()
    runs = pd.read_csv(out / "tables" / "runs.csv")
    assert len(runs) == 4


def test_sweep_with_bad_value_exits_2_and_writes_nothing(tmp_path):
    path = _scenario_file(tmp_path)
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "cli.py"), "sweep", str(path)]
    command += ["--grid", "population.users=1000,-5", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2
    assert "population.users=-5" in result.stderr
    assert "greater than or equal to 2" in result.stderr
    assert not out.exists()


def test_swept_lists_are_shown_as_written_in_the_terminal_table(tmp_path):
    path = _scenario_file(tmp_path)
    command = [sys.executable, str(ROOT / "cli.py"), "sweep", str(path)]
    command += ["--grid", "strategies.friends=[push],[poll]", "-j", "1"]
    command += ["--out", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    # One row per strategy of each point, labelled with the point's list.
    assert result.stdout.count("[push]") >= 1
    assert result.stdout.count("[poll]") >= 1
