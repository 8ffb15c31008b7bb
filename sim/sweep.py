"""Sweeps and replications as a plan: every run to make, named and keyed.

A sweep is a full grid over dotted scenario keys, from the scenario's `sweep:`
block and `--grid KEY=V1,V2,...` options; a point is one combination of
values, applied to the scenario as `--set` overrides are. Every point runs
`replications` times. A run is keyed by a digest of its point's scenario and
its replication index, so a folder of finished runs can be matched against a
new plan: a run whose digest is found need not be made again, even when the
grid has grown around it.
"""

import hashlib
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sim import __version__
from sim.errors import PresenceSimError
from sim.experiment import RunResult, run_scenario
from sim.scenario import Scenario, load_scenario

# Keys that shape the plan rather than a run, left out of a run's digest.
PLAN_KEYS = {"sweep", "replications", "description"}


@dataclass(frozen=True)
class Point:
    """One combination of swept values and the scenario it gives.

    `settings` maps each swept key to its value as validated (seconds for a
    duration), or to the value's YAML text where that is not a plain scalar.
    """

    index: int
    settings: dict[str, Any]
    overrides: tuple[str, ...]
    scenario: Scenario
    digest: str

    def describe(self) -> str:
        return ", ".join(self.overrides)


@dataclass(frozen=True)
class RunSpec:
    """One run of a plan: a point's scenario under one replication's streams."""

    point: Point
    replication: int

    @property
    def run_id(self) -> str:
        return f"{self.point.digest}-r{self.replication:03d}"

    @property
    def label(self) -> str:
        """How messages name the run: its settings and replication."""
        where = self.point.describe()
        prefix = f"point {self.point.index} ({where}), " if where else ""
        return f"{prefix}replication {self.replication} [{self.run_id}]"


@dataclass(frozen=True)
class Plan:
    """Every run of a sweep (or of one scenario's replications), in order.

    Runs are ordered by point, then replication; `keys` are the swept keys
    in grid order (empty without a sweep).
    """

    base: Scenario
    keys: list[str]
    points: list[Point]
    replications: int

    @property
    def runs(self) -> list[RunSpec]:
        return [
            RunSpec(point, replication)
            for point in self.points
            for replication in range(self.replications)
        ]

    @property
    def distinct_runs(self) -> list[RunSpec]:
        """The runs to make: points that give the same scenario share runs."""
        distinct: dict[str, RunSpec] = {}
        for run in self.runs:
            distinct.setdefault(run.run_id, run)
        return list(distinct.values())


def make_run(run: RunSpec) -> RunResult:
    """Compute one run. Executors call this anywhere, so this module imports
    only what a run needs."""
    return run_scenario(run.point.scenario, replication=run.replication)


def parse_grid(option: str) -> tuple[str, list[Any]]:
    """`KEY=V1,V2,...` from the command line: the key and its values.

    The values are read as one YAML flow list, so `30s,60s` gives two
    durations and `[push],[push,poll]` two strategy lists.
    """
    key, sep, text = option.partition("=")
    key = key.strip()
    if not sep or not key or not text.strip():
        raise PresenceSimError(
            f"--grid {option!r}: expected KEY=V1,V2,..., e.g. "
            "strategies.poll_interval=30s,60s"
        )
    try:
        values = yaml.safe_load(f"[{text}]")
    except yaml.YAMLError:
        raise PresenceSimError(
            f"--grid {key}: values {text!r} are not a comma-separated list of "
            "YAML values"
        ) from None
    return key, values


def plan_sweep(
    path: str | Path,
    overrides: Sequence[str] = (),
    grid: Sequence[str] = (),
    replications: int | None = None,
    sweep_block: bool = True,
) -> Plan:
    """The plan for a scenario file, its `--set` overrides and `--grid` options.

    `--grid` keys join the scenario's `sweep:` block (unless `sweep_block` is
    false) and replace a key the block also names; `replications` replaces
    the scenario's own count. Without any swept key the plan is the one
    point of the scenario itself. Every point is validated before anything
    runs, so a bad value stops the sweep with nothing written.
    """
    overrides = list(overrides)
    if replications is not None:
        overrides.append(f"replications={replications}")
    base = load_scenario(path, overrides)

    axes = dict(base.sweep) if sweep_block else {}
    given: set[str] = set()
    for option in grid:
        key, values = parse_grid(option)
        if key in given:
            raise PresenceSimError(f"--grid {key}: this key is given twice")
        given.add(key)
        axes[key] = values
    for key, values in axes.items():
        _check_axis(key, values)

    keys = list(axes)
    texts = [[_yaml_text(value) for value in axes[key]] for key in keys]
    points = []
    for index, combination in enumerate(itertools.product(*texts)):
        point_overrides = tuple(
            f"{key}={text}" for key, text in zip(keys, combination, strict=True)
        )
        try:
            scenario = load_scenario(path, [*overrides, *point_overrides])
        except PresenceSimError as exc:
            where = ", ".join(point_overrides)
            raise PresenceSimError(f"sweep point {where}: {exc}") from None
        settings = {
            key: _setting(scenario, key, text)
            for key, text in zip(keys, combination, strict=True)
        }
        points.append(
            Point(index, settings, point_overrides, scenario, run_digest(scenario))
        )
    return Plan(base, keys, points, base.replications)


def run_digest(scenario: Scenario) -> str:
    """A short stable digest of everything in a scenario that shapes its runs.

    Limitation: the digest covers a data file's path, not its contents; after
    editing a graph file in place, finished runs of the old file would be
    reused, so give a fresh output folder.
    """
    settings = scenario.model_dump(mode="json", exclude=PLAN_KEYS)
    text = json.dumps({"version": __version__, "scenario": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _check_axis(key: str, values: Any) -> None:
    if not isinstance(values, list) or not values:
        raise PresenceSimError(f"sweep {key}: give a list of at least one value")
    texts = [_yaml_text(value) for value in values]
    repeated = sorted({text for text in texts if texts.count(text) > 1})
    if repeated:
        raise PresenceSimError(
            f"sweep {key}: value {repeated[0]} is listed twice; list each once"
        )


def _yaml_text(value: Any) -> str:
    """A value as the YAML text that reads back as the same value."""
    # Dumping a one-item flow list keeps scalars free of document markers.
    dumped = yaml.safe_dump([value], default_flow_style=True, width=math.inf)
    return dumped.strip()[1:-1]


def _setting(scenario: Scenario, key: str, text: str) -> Any:
    """The validated value at a dotted key when it is a scalar, else its text."""
    value: Any = scenario
    for part in key.split("."):
        value = getattr(value, part, None)
    if isinstance(value, bool | int | float | str):
        return value
    return text
