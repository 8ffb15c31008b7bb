"""A regression gate for CI: the figures to watch, written once as a
baseline, and a check that re-runs the scenario and compares.

A baseline file is JSON: the scenario's name, seed and settings, the
versions that made it, how the plan was sized (when there is one) and, per
metric, its value and tolerance. Metric names are stable dotted keys, for
example `friends.push.n_mean`, `groups.push.peak_rps.gateway` or
`friends.poll.servers.cache`.

A tolerance is relative (`5%`), absolute (`0.002`, or `2ms` for times), or
both (`5%,2ms`), in which case a change within either holds.
"""

import fnmatch
import importlib.metadata
import json
import math
import platform
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sim import __version__
from sim.capacity import Plan, make_plan, plan_settings
from sim.errors import PresenceSimError
from sim.experiment import RunResult, run_scenario
from sim.model import Progress
from sim.scenario import Scenario
from sim.units import format_duration, parse_duration

FORMAT = 1

# Per strategy: the strategies table's columns a gate watches.
STRATEGY_FIGURES = (
    "n_mean",
    "n_p99",
    "amplification",
    "latency_p50_s",
    "latency_p99_s",
    "login_latency_p99_s",
)


@dataclass(frozen=True)
class Tolerance:
    """How far a metric may move and still hold: within `relative` of the
    baseline's magnitude or within `absolute`, whichever is wider."""

    relative: float | None = None
    absolute: float | None = None

    def holds(self, baseline: float, now: float) -> bool:
        if math.isnan(baseline) or math.isnan(now):
            return math.isnan(baseline) and math.isnan(now)
        change = abs(now - baseline)
        within_relative = self.relative is not None and change <= self.relative * abs(
            baseline
        )
        within_absolute = self.absolute is not None and change <= self.absolute
        return within_relative or within_absolute or change == 0

    def describe(self, seconds: bool = False) -> str:
        """As `--tolerance` takes it, e.g. `10%,100us`."""
        parts = []
        if self.relative is not None:
            parts.append(f"{self.relative * 100:.3g}%")
        if self.absolute is not None:
            amount = (
                format_duration(self.absolute) if seconds else f"{self.absolute:.6g}"
            )
            parts.append(amount)
        return ",".join(parts) or "exact"

    def as_json(self) -> dict[str, float]:
        data = {"relative": self.relative, "absolute": self.absolute}
        return {name: value for name, value in data.items() if value is not None}


# Written into each new baseline; the first pattern that matches wins.
DEFAULT_TOLERANCES: list[tuple[str, Tolerance]] = [
    ("*.servers.*", Tolerance(relative=0.10)),
    ("*.total_servers", Tolerance(relative=0.10)),
    ("*latency*", Tolerance(relative=0.10, absolute=1e-4)),
    ("*.peak_rps.*", Tolerance(relative=0.10, absolute=2.0)),
    ("*", Tolerance(relative=0.05)),
]


def parse_tolerance(text: str, where: str) -> Tolerance:
    """`5%` (relative), `0.002` or `2ms` (absolute), or both as `5%,2ms`."""
    relative = absolute = None
    try:
        for part in (piece.strip() for piece in text.split(",")):
            if part.endswith("%"):
                relative = float(part[:-1]) / 100
            else:
                absolute = parse_duration(part)
    except ValueError:
        relative = absolute = math.nan
    if not all(v is None or v >= 0 for v in (relative, absolute)):
        raise PresenceSimError(
            f"{where}: {text!r} is not a tolerance; write a share such as 5%, an "
            "amount such as 0.002 or 2ms, or both as 5%,2ms"
        )
    return Tolerance(relative, absolute)


def tolerance_options(items: list[str]) -> list[tuple[str, Tolerance]]:
    """`--tolerance PATTERN=TOLERANCE` options, in the order given."""
    parsed = []
    for item in items:
        pattern, sep, text = item.partition("=")
        if not sep or not pattern.strip():
            raise PresenceSimError(
                f"--tolerance {item!r}: expected METRIC=TOLERANCE, e.g. "
                "'friends.push.n_mean=2%' or '*.latency_p99_s=1ms'"
            )
        parsed.append((pattern.strip(), parse_tolerance(text, f"--tolerance {item}")))
    return parsed


# --- What a gate watches -----------------------------------------------------


def watched_figures(result: RunResult, plan: Plan | None = None) -> dict[str, float]:
    """The figures of a run (and of a capacity plan, when there is one) under
    their metric names; figures a strategy does not have are left out."""
    figures: dict[str, float] = {}
    scenario = result.scenario
    window = scenario.duration - scenario.warmup
    strategies = result.tables["strategies"]
    for row in strategies.to_dict("records"):
        prefix = f"{row['audience']}.{row['strategy']}"
        for column in STRATEGY_FIGURES:
            figures[f"{prefix}.{column}"] = row[column]
        figures[f"{prefix}.messages_per_s"] = row["messages"] / window
        figures[f"{prefix}.requests_per_s"] = row["requests"] / window
        for column, value in row.items():
            if column.startswith("peak_rps_") and not column.endswith(
                ("_predicted", "_rel_error")
            ):
                figures[f"{prefix}.peak_rps.{column[len('peak_rps_') :]}"] = value
    if plan is not None:
        for (audience, strategy), servers in plan.servers.items():
            prefix = f"{audience}.{strategy}"
            for tier, count in servers.items():
                figures[f"{prefix}.servers.{tier}"] = count
            figures[f"{prefix}.total_servers"] = sum(servers.values())
    return {
        name: float(value)
        for name, value in figures.items()
        if value is not None and math.isfinite(float(value))
    }


def versions() -> dict[str, str]:
    """The versions whose change may move the numbers."""
    found = {"presence-sim": __version__, "python": platform.python_version()}
    for package in ("numpy", "simpy"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "unknown"
    return found


def _rounded(value: float) -> float:
    """Nine significant figures: enough to see any move, short to read."""
    return float(f"{value:.9g}")


def make_baseline(
    result: RunResult,
    plan: Plan | None,
    scenario_file: str,
    overrides: list[str],
) -> dict[str, Any]:
    """The baseline of a run and its plan, with default tolerances."""
    scenario = result.scenario
    metrics = {}
    for name, value in sorted(watched_figures(result, plan).items()):
        tolerance = next(t for p, t in DEFAULT_TOLERANCES if fnmatch.fnmatch(name, p))
        metrics[name] = {"value": _rounded(value), "tolerance": tolerance.as_json()}
    baseline: dict[str, Any] = {
        "format": FORMAT,
        "scenario": scenario.name,
        "scenario_file": scenario_file,
        "overrides": list(overrides),
        "seed": scenario.seed,
        "versions": versions(),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "settings": scenario.model_dump(mode="json"),
        "metrics": metrics,
    }
    if plan is not None:
        baseline["plan"] = {
            "target_users": plan.settings.target_users,
            "simulated_users": plan.settings.simulated_users,
        }
    return baseline


def measure(
    scenario: Scenario,
    target_users: int | None,
    simulated_users: int | None = None,
    progress: Progress | None = None,
) -> tuple[RunResult, Plan | None]:
    """Run the scenario and, given a target, plan it: what a gate watches."""
    result = run_scenario(scenario, progress)
    if target_users is None:
        return result, None
    settings = plan_settings(scenario, target_users, simulated_users)
    return result, make_plan(scenario, settings)


def read_baseline(path: Path) -> dict[str, Any]:
    """A baseline file, checked enough that a comparison can trust it."""
    path = Path(path)
    if not path.is_file():
        raise PresenceSimError(f"--baseline: {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PresenceSimError(f"--baseline: {path} is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PresenceSimError(
            f"--baseline: {path} is not a presence-sim baseline of format {FORMAT}; "
            "write one with `presence-sim baseline`"
        )
    metrics = data.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise PresenceSimError(f"--baseline: {path} lists no metrics")
    for name, entry in metrics.items():
        value = entry.get("value") if isinstance(entry, dict) else None
        if not isinstance(value, int | float):
            raise PresenceSimError(
                f"--baseline: {path}: metrics.{name} needs a numeric value"
            )
        tolerance = entry.get("tolerance", {})
        if not isinstance(tolerance, dict) or set(tolerance) - {
            "relative",
            "absolute",
        }:
            raise PresenceSimError(
                f"--baseline: {path}: metrics.{name}.tolerance takes relative "
                'and absolute, e.g. {"relative": 0.05}'
            )
        for kind, amount in tolerance.items():
            if not isinstance(amount, int | float) or amount < 0:
                raise PresenceSimError(
                    f"--baseline: {path}: metrics.{name}.tolerance.{kind} must be "
                    "a number of 0 or more"
                )
    plan = data.get("plan")
    if plan is not None and not (
        isinstance(plan, dict)
        and isinstance(plan.get("target_users"), int)
        and isinstance(plan.get("simulated_users"), int)
    ):
        raise PresenceSimError(
            f"--baseline: {path}: plan needs target_users and simulated_users"
        )
    return data


# --- Comparing ---------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One metric of a check."""

    metric: str
    baseline: float
    now: float | None
    tolerance: Tolerance

    @property
    def missing(self) -> bool:
        return self.now is None

    @property
    def holds(self) -> bool:
        return not self.missing and self.tolerance.holds(self.baseline, self.now)

    @property
    def change(self) -> str:
        if self.missing:
            return "-"
        difference = self.now - self.baseline
        if self.baseline:
            return f"{difference / abs(self.baseline):+.2%}"
        return f"{difference:+.6g}"

    @property
    def verdict(self) -> str:
        if self.missing:
            return "missing"
        return "ok" if self.holds else "moved"

    def describe_tolerance(self) -> str:
        return self.tolerance.describe(seconds=self.metric.endswith("_s"))


def compare(
    baseline: dict[str, Any],
    now: dict[str, float],
    overrides: list[tuple[str, Tolerance]],
) -> list[Comparison]:
    """Every baseline metric against its new value; `overrides` (pattern,
    tolerance) replace the file's tolerances, later ones winning."""
    metrics = baseline["metrics"]
    for pattern, _ in overrides:
        if not fnmatch.filter(metrics, pattern):
            raise PresenceSimError(
                f"--tolerance {pattern}: matches no metric of the baseline; names "
                "look like friends.push.n_mean or *.servers.*"
            )
    rows = []
    for name, entry in sorted(metrics.items()):
        tolerance = Tolerance(**entry.get("tolerance", {}))
        for pattern, chosen in overrides:
            if fnmatch.fnmatch(name, pattern):
                tolerance = chosen
        rows.append(Comparison(name, float(entry["value"]), now.get(name), tolerance))
    return rows


def setting_changes(
    before: dict[str, Any], after: dict[str, Any], prefix: str = ""
) -> list[str]:
    """The dotted scenario keys whose values differ, with both values."""
    changes = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        name = f"{prefix}{key}"
        if isinstance(old, dict) and isinstance(new, dict):
            changes += setting_changes(old, new, name + ".")
        elif old != new:
            changes.append(f"{name}: {old!r} -> {new!r}")
    return changes


def junit_xml(
    comparisons: list[Comparison], suite: str, properties: dict[str, str]
) -> str:
    """A JUnit XML report: one test case per metric, a failure per move."""
    failures = sum(not row.holds for row in comparisons)
    root = ET.Element("testsuites", tests=str(len(comparisons)))
    testsuite = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(comparisons)),
        failures=str(failures),
        errors="0",
        skipped="0",
    )
    listed = ET.SubElement(testsuite, "properties")
    for name, value in properties.items():
        ET.SubElement(listed, "property", name=name, value=value)
    for row in comparisons:
        case = ET.SubElement(testsuite, "testcase", classname=suite, name=row.metric)
        if row.holds:
            continue
        if row.missing:
            message = "missing from this run"
        else:
            message = (
                f"moved {row.change} (tolerance {row.describe_tolerance()}): "
                f"baseline {row.baseline:.6g}, now {row.now:.6g}"
            )
        failure = ET.SubElement(case, "failure", message=message, type="regression")
        failure.text = message
    root.set("failures", str(failures))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
