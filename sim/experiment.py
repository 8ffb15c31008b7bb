"""One run of a scenario: graph, workload, every strategy, and its tables."""

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sim import __version__
from sim.graph import SocialGraph, build_graph
from sim.model import Progress, Simulation, World
from sim.protocol import STRATEGIES, Strategy
from sim.randomness import stream
from sim.scenario import LengthDistribution, Scenario
from sim.tiers import Tier
from sim.workload import Workload, generate_workload, mean_online_fraction

log = logging.getLogger(__name__)

TIER_NAMES = ("gateway", "presence")


@dataclass
class RunResult:
    """A finished run: its tables (keyed by stable names) and a summary."""

    scenario: Scenario
    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def build_tiers(scenario: Scenario) -> dict[str, Tier]:
    """A fresh set of tiers; every strategy gets the same service-time streams."""
    tiers = {}
    for index, name in enumerate(TIER_NAMES):
        spec = getattr(scenario.tiers, name)
        operations = {
            op: value for op, value in spec if isinstance(value, LengthDistribution)
        }
        tiers[name] = Tier(
            name,
            spec.servers,
            spec.workers,
            operations,
            stream(scenario.seed, "service", index),
            scenario.duration,
            scenario.metrics.slot,
        )
    return tiers


def chosen_strategies(scenario: Scenario, graph: SocialGraph) -> list[tuple[str, str]]:
    keys = [("friends", name) for name in scenario.strategies.friends]
    if graph.members.rows > 0:
        keys += [("groups", name) for name in scenario.strategies.groups]
    elif scenario.strategies.groups:
        log.warning("the scenario has no groups; group strategies are skipped")
    return keys


def run_scenario(scenario: Scenario, progress: Progress | None = None) -> RunResult:
    """Build the graph and workload, run every strategy, collect the tables."""
    started = time.perf_counter()
    graph = build_graph(
        scenario, stream(scenario.seed, "graph"), stream(scenario.seed, "groups")
    )
    workload = generate_workload(
        scenario,
        graph,
        stream(scenario.seed, "sessions"),
        stream(scenario.seed, "visits"),
    )
    world = World(scenario, graph, workload)
    strategies = [
        STRATEGIES[key](world, build_tiers(scenario))
        for key in chosen_strategies(scenario, graph)
    ]
    Simulation(world, strategies, progress).run()

    tables = {
        "strategies": strategy_table(strategies),
        "tiers": tier_table(strategies, scenario),
        "load": load_table(strategies, scenario),
        "n_histogram": n_histogram_table(strategies),
        "latency_histogram": latency_histogram_table(strategies),
    }
    summary = run_summary(scenario, graph, workload, time.perf_counter() - started)
    return RunResult(scenario, summary, tables)


def strategy_table(strategies: list[Strategy]) -> pd.DataFrame:
    rows = []
    for strategy in strategies:
        metrics = strategy.metrics
        n = metrics.n.values()
        has_n = len(n) > 0
        rows.append(
            {
                "audience": strategy.audience,
                "strategy": strategy.name,
                "changes": metrics.changes,
                "messages": metrics.messages,
                "requests": metrics.requests,
                "amplification": metrics.messages / metrics.changes
                if metrics.changes
                else math.nan,
                "n_mean": float(n.mean()) if has_n else math.nan,
                "n_p50": float(np.percentile(n, 50)) if has_n else math.nan,
                "n_p99": float(np.percentile(n, 99)) if has_n else math.nan,
                "n_max": float(n.max()) if has_n else math.nan,
                "latency_mean_s": metrics.latency.mean(),
                "latency_p50_s": metrics.latency.quantile(0.50),
                "latency_p99_s": metrics.latency.quantile(0.99),
            }
        )
    return pd.DataFrame(rows)


def tier_table(strategies: list[Strategy], scenario: Scenario) -> pd.DataFrame:
    rows = []
    for strategy in strategies:
        for tier in strategy.tiers.values():
            stats = tier.stats
            capacity = tier.servers * tier.workers * scenario.duration
            per_second = tier.arrivals / scenario.metrics.slot
            rows.append(
                {
                    "audience": strategy.audience,
                    "strategy": strategy.name,
                    "tier": tier.name,
                    "servers": tier.servers,
                    "workers": tier.workers,
                    "jobs": stats.jobs,
                    "mean_rps": stats.jobs / scenario.duration,
                    "peak_rps": float(per_second.max()),
                    "utilisation": stats.busy / capacity,
                    "wait_mean_s": stats.wait / stats.jobs if stats.jobs else 0.0,
                    "wait_max_s": stats.max_wait,
                    "queue_mean": stats.wait / scenario.duration,
                }
            )
    return pd.DataFrame(rows)


def load_table(strategies: list[Strategy], scenario: Scenario) -> pd.DataFrame:
    frames = []
    slot = scenario.metrics.slot
    for strategy in strategies:
        for tier in strategy.tiers.values():
            frames.append(
                pd.DataFrame(
                    {
                        "audience": strategy.audience,
                        "strategy": strategy.name,
                        "tier": tier.name,
                        "time_s": np.arange(len(tier.arrivals)) * slot,
                        "requests": tier.arrivals,
                        "rps": tier.arrivals / slot,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def n_histogram_table(strategies: list[Strategy]) -> pd.DataFrame:
    frames = []
    for strategy in strategies:
        n = strategy.metrics.n.values()
        if len(n) == 0:
            continue
        counts = np.bincount(n)
        present = np.flatnonzero(counts)
        frames.append(
            pd.DataFrame(
                {
                    "audience": strategy.audience,
                    "strategy": strategy.name,
                    "n": present,
                    "changes": counts[present],
                }
            )
        )
    columns = ["audience", "strategy", "n", "changes"]
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=columns)
    )


def latency_histogram_table(strategies: list[Strategy]) -> pd.DataFrame:
    frames = []
    for strategy in strategies:
        histogram = strategy.metrics.latency
        present = np.flatnonzero(histogram.counts)
        edges = histogram.edges()
        frames.append(
            pd.DataFrame(
                {
                    "audience": strategy.audience,
                    "strategy": strategy.name,
                    "low_s": edges[present],
                    "high_s": edges[present + 1],
                    "count": histogram.counts[present],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def run_summary(
    scenario: Scenario, graph: SocialGraph, workload: Workload, wall: float
) -> dict[str, Any]:
    in_degrees = graph.reverse.degrees()
    return {
        "scenario": scenario.name,
        "description": scenario.description,
        "seed": scenario.seed,
        "version": __version__,
        "duration_s": scenario.duration,
        "graph": {
            "source": graph.source,
            "users": graph.users,
            "arcs": graph.arcs,
            "mean_in_degree": float(in_degrees.mean()),
            "max_in_degree": int(in_degrees.max()) if graph.users else 0,
            "groups": graph.members.rows,
            "mean_group_size": float(graph.members.degrees().mean())
            if graph.members.rows
            else 0.0,
        },
        "workload": {
            "changes": workload.changes,
            "logins": int(workload.change_online.sum()),
            "group_visits": len(workload.visit_time),
            "initial_online_fraction": float(workload.initially_online.mean()),
            "mean_online_fraction": mean_online_fraction(workload),
        },
        "wall_seconds": round(wall, 3),
        "scenario_settings": scenario.model_dump(mode="json"),
    }
