"""Making the runs of a plan: resumable, on any executor, combined at the end.

Each finished run is written into `runs/<run id>/` of the output folder
through a staging folder renamed into place, so the folder only ever holds
whole runs. Running a plan again skips the runs found there; an interrupted
plan loses only the runs in flight. When every run is there, the runs are read
back in plan order and combined: per table, one long table with a row per
replication (`<table>_replications`) and the table of means with 95% intervals
under the table's own name, plus `runs`, one row per run. A sweep's tables
are named `sweep_<table>` (`sweep_strategies`, `sweep_tiers`, ...), so that a
sweep folder is never read as a single run's. Tables are always combined from
the stored runs, so resumed and fresh runs, and every executor, give the same
bytes.
"""

import json
import logging
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.api.types import is_numeric_dtype

from sim import __version__
from sim.comparison import PREDICTED, REL_ERROR, relative_error
from sim.executors import ExecutorChoice, describe_failure
from sim.experiment import RunResult
from sim.output import (
    check_out_dir,
    staged_folder,
    write_json,
    write_outputs_into,
    write_tables,
)
from sim.stats import HIGH, LOW, summarise_replications
from sim.sweep import Plan, RunSpec, make_run

log = logging.getLogger(__name__)

# The columns that name a row of each table; the numeric rest are metrics.
# A table missing here is keyed by its non-numeric columns alone.
TABLE_KEYS = {
    "strategies": ["audience", "strategy"],
    "tiers": ["audience", "strategy", "tier", "servers", "workers"],
    "operations": ["audience", "strategy", "tier", "operation"],
    "load": ["audience", "strategy", "tier", "time_s"],
    "n_histogram": ["audience", "strategy", "n"],
    "latency_histogram": ["audience", "strategy", "low_s", "high_s"],
    "staleness": ["audience", "strategy", "time_s"],
    "faults": ["fault", "kind", "tier", "audience", "strategy", "start_s", "end_s"],
    "system_messages": ["message", "mode", "at_s", "expires_s"],
}
# Histograms: a bin missing from one replication counted nothing there.
COUNT_TABLES = {"n_histogram", "latency_histogram"}


@dataclass
class RunCounts:
    """Where a plan stands: runs to make, and how many are done or failed."""

    total: int
    skipped: int
    done: int = 0
    running: int = 0
    failed: int = 0


@dataclass(frozen=True)
class RunFailure:
    run: RunSpec
    reason: str


@dataclass
class Outcome:
    """What making a plan did, and its combined tables."""

    executed: int
    skipped: int
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    out_dir: Path | None = None


class RunsFailed(Exception):
    """Some runs failed; the finished ones are kept for the next attempt."""

    def __init__(self, failures: list[RunFailure], kept: int, out_dir: Path) -> None:
        self.failures = failures
        self.kept = kept
        self.out_dir = out_dir
        lines = [f"run {item.run.label} failed: {item.reason}" for item in failures]
        super().__init__("\n".join(lines))


class RunsInterrupted(Exception):
    """Stopped by an interrupt; the finished runs are kept."""

    def __init__(self, kept: int, out_dir: Path) -> None:
        self.kept = kept
        self.out_dir = out_dir
        super().__init__(f"interrupted with {kept} finished runs kept in {out_dir}")


class RunStore:
    """The finished runs of an output folder, one folder per run id."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def finished(self) -> set[str]:
        if not self.folder.is_dir():
            return set()
        return {
            entry.name
            for entry in self.folder.iterdir()
            if not entry.name.startswith(".") and (entry / "run.json").is_file()
        }

    def clear_leftovers(self) -> None:
        """Remove staging folders that an interrupted write left behind."""
        if self.folder.is_dir():
            for entry in self.folder.glob(".*"):
                shutil.rmtree(entry, ignore_errors=True)

    def save(self, run: RunSpec, result: RunResult) -> None:
        with staged_folder(self.folder / run.run_id) as staging:
            write_tables(result.tables, staging / "tables", csv=False)
            record = {
                "run_id": run.run_id,
                "point": run.point.index,
                "overrides": list(run.point.overrides),
                "replication": run.replication,
                "summary": result.summary,
            }
            write_json(record, staging / "run.json")

    def load(self, run_id: str) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
        """A stored run's tables and its summary."""
        folder = self.folder / run_id
        record = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        tables = {
            path.stem: pd.read_parquet(path)
            for path in sorted((folder / "tables").glob("*.parquet"))
        }
        return tables, record["summary"]


def run_plan(
    plan: Plan,
    out_dir: Path,
    choice: ExecutorChoice,
    progress: Callable[[RunCounts], None] | None = None,
    report: bool = True,
) -> Outcome:
    """Make every run of `plan` not yet in `out_dir`, then write the combined
    tables, the summary and (unless `report` is false) the report there.

    Raises RunsFailed when runs failed and RunsInterrupted on an interrupt;
    either way the finished runs stay in `out_dir/runs` for the next attempt.
    """
    started = time.perf_counter()
    # A bad output folder is refused before any run is made.
    out_dir = check_out_dir(out_dir)
    store = RunStore(out_dir / "runs")
    executed, skipped = make_runs(plan, store, choice, progress)
    try:
        tables, summaries = combine_runs(plan, store)
        summary = plan_summary(plan, summaries, executed, skipped)
        summary["wall_seconds"] = round(time.perf_counter() - started, 3)
        write_outputs_into(RunResult(plan.base, summary, tables), out_dir, report)
    except KeyboardInterrupt:
        # Every run is made and kept; only the combined outputs are missing.
        raise RunsInterrupted(len(store.finished()), out_dir) from None
    return Outcome(executed, skipped, tables, out_dir)


def make_runs(
    plan: Plan,
    store: RunStore,
    choice: ExecutorChoice,
    progress: Callable[[RunCounts], None] | None = None,
) -> tuple[int, int]:
    """Make the runs missing from `store`; return (made, skipped)."""
    store.clear_leftovers()
    finished = store.finished()
    runs = plan.distinct_runs
    waiting = deque(run for run in runs if run.run_id not in finished)
    counts = RunCounts(total=len(waiting), skipped=len(runs) - len(waiting))
    if counts.skipped:
        log.info("skipping %d finished runs in %s", counts.skipped, store.folder)

    def update(running: int) -> None:
        counts.running = running
        if progress is not None:
            progress(counts)

    update(0)
    if not waiting:
        return 0, counts.skipped
    failures: list[RunFailure] = []
    with choice.open(len(waiting)) as executor:
        in_flight: dict[Any, RunSpec] = {}
        try:
            while waiting or in_flight:
                while waiting and len(in_flight) < executor.capacity():
                    run = waiting.popleft()
                    update(len(in_flight) + 1)
                    in_flight[executor.submit(make_run, run)] = run
                for future in executor.wait(list(in_flight)):
                    run = in_flight.pop(future)
                    try:
                        result = future.result()
                    except Exception as error:
                        failures.append(RunFailure(run, describe_failure(error)))
                        log.info("run %s failed: %s", run.label, failures[-1].reason)
                        counts.failed += 1
                    else:
                        store.save(run, result)
                        counts.done += 1
                    update(len(in_flight))
        except KeyboardInterrupt:
            executor.stop()
            raise RunsInterrupted(counts.done + counts.skipped, store.folder) from None
    if failures:
        raise RunsFailed(failures, counts.done + counts.skipped, store.folder)
    return counts.done, counts.skipped


def combine_runs(
    plan: Plan, store: RunStore
) -> tuple[dict[str, pd.DataFrame], list[dict[str, Any]]]:
    """The combined tables of a finished plan, and each run's summary."""
    parts: dict[str, list[pd.DataFrame]] = {}
    rows = []
    summaries = []
    loaded: dict[str, tuple[dict[str, pd.DataFrame], dict[str, Any]]] = {}
    for run in plan.runs:
        if run.run_id not in loaded:
            loaded[run.run_id] = store.load(run.run_id)
        tables, summary = loaded[run.run_id]
        labels = _labels(plan, run)
        for name, frame in tables.items():
            parts.setdefault(name, []).append(frame.assign(**labels)[[*labels, *frame]])
        rows.append({**labels, "run_id": run.run_id, **_run_facts(summary)})
        summaries.append(summary)

    combined: dict[str, pd.DataFrame] = {}
    prefix = "sweep_" if plan.keys else ""
    for name, frames in parts.items():
        long = pd.concat(frames, ignore_index=True)
        if long.empty:
            # Nothing to average (no faults, say): an empty table of the same form.
            means = long.drop(columns="replication")
        else:
            means = summarise_replications(
                long,
                _row_keys(plan, name, long),
                absent_is_zero=name in COUNT_TABLES,
            )
        combined[prefix + name] = _errors_of_means(means)
        combined[f"{prefix}{name}_replications"] = long
    combined["runs"] = pd.DataFrame(rows)
    return combined, summaries


def plan_summary(
    plan: Plan, summaries: list[dict[str, Any]], executed: int, skipped: int
) -> dict[str, Any]:
    """The summary of a combined output.

    With one point it is the first replication's run summary with the plan
    added; for a sweep it describes the grid.

    Limitation: the summary (and so the report) of several replications
    describes replication 0's graph and workload; the `runs` table has each
    replication's workload figures.
    """
    runs = {
        "replications": plan.replications,
        "points": len(plan.points),
        "runs": len(plan.runs),
        "executed": executed,
        "skipped": skipped,
        "run_wall_seconds": round(sum(item["wall_seconds"] for item in summaries), 3),
    }
    if not plan.keys:
        return {**summaries[0], **runs}
    return {
        "scenario": plan.base.name,
        "description": plan.base.description,
        "seed": plan.base.seed,
        "version": __version__,
        "duration_s": plan.base.duration,
        "sweep": {
            "keys": plan.keys,
            "points": [dict(point.settings) for point in plan.points],
        },
        **runs,
        "scenario_settings": plan.base.model_dump(mode="json"),
    }


def _labels(plan: Plan, run: RunSpec) -> dict[str, Any]:
    """The columns that place a run's rows: its point and settings, replication."""
    labels: dict[str, Any] = {}
    if plan.keys:
        labels["point"] = run.point.index
        labels.update(run.point.settings)
    labels["replication"] = run.replication
    return labels


def _row_keys(plan: Plan, name: str, frame: pd.DataFrame) -> list[str]:
    """The point columns, the table's own keys and any non-numeric column."""
    keys = ["point", *plan.keys] if plan.keys else []
    own = [column for column in TABLE_KEYS.get(name, []) if column in frame]
    other = [
        column
        for column in frame.columns
        if column not in (*keys, *own, "replication")
        and not is_numeric_dtype(frame[column])
    ]
    return [*keys, *own, *other]


def _errors_of_means(frame: pd.DataFrame) -> pd.DataFrame:
    """A mean's relative error against the mean prediction, in place of the
    mean of each replication's relative error (which is not the same)."""
    frame = frame.copy()
    for column in [c for c in frame.columns if c.endswith(REL_ERROR)]:
        figure = column[: -len(REL_ERROR)]
        if figure in frame and figure + PREDICTED in frame:
            frame[column] = relative_error(
                frame[figure].to_numpy(), frame[figure + PREDICTED].to_numpy()
            )
            frame = frame.drop(columns=[column + LOW, column + HIGH], errors="ignore")
    return frame


def _run_facts(summary: dict[str, Any]) -> dict[str, Any]:
    """A run's wall time and workload figures, for the `runs` table."""
    workload = {
        key: value
        for key, value in summary.get("workload", {}).items()
        if isinstance(value, int | float)
    }
    return {"wall_seconds": summary.get("wall_seconds"), **workload}
