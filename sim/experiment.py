"""One run of a scenario: graph, workload, every strategy, and its tables."""

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sim import __version__, forked
from sim.comparison import add_predictions
from sim.graph import SocialGraph, build_graph
from sim.memory import check_memory
from sim.model import Progress, World
from sim.protocol import STRATEGIES, Strategy
from sim.protocol.system import broadcast_rows
from sim.randomness import stream
from sim.scenario import LengthDistribution, Scenario, Slowdown
from sim.staleness import StalenessProbe, staleness_table
from sim.tiers import Tier
from sim.workload import LOGIN, Workload, generate_workload, mean_online_fraction

log = logging.getLogger(__name__)

TIER_NAMES = ("gateway", "presence", "cache", "db")


@dataclass
class RunResult:
    """A finished run: its tables (keyed by stable names) and a summary."""

    scenario: Scenario
    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def build_tiers(scenario: Scenario, replication: int = 0) -> dict[str, Tier]:
    """A fresh set of tiers; every strategy gets the same service-time streams."""
    tiers = {}
    for index, name in enumerate(TIER_NAMES):
        spec = getattr(scenario.tiers, name)
        operations = {
            op: value for op, value in spec if isinstance(value, LengthDistribution)
        }
        slowdowns = [
            (fault.start, fault.end, fault.factor)
            for fault in scenario.faults
            if isinstance(fault, Slowdown) and fault.tier == name
        ]
        tiers[name] = Tier(
            name,
            spec.servers,
            spec.workers,
            operations,
            stream(scenario.seed, "service", index, replication=replication),
            scenario.duration,
            scenario.metrics.slot,
            counted_from=scenario.warmup,
            slowdowns=slowdowns,
        )
    return tiers


def chosen_strategies(scenario: Scenario, graph: SocialGraph) -> list[tuple[str, str]]:
    keys = [("friends", name) for name in scenario.strategies.friends]
    if graph.members.rows > 0:
        keys += [("groups", name) for name in scenario.strategies.groups]
    elif scenario.strategies.groups:
        log.warning("the scenario has no groups; group strategies are skipped")
    if scenario.system_messages:
        keys += [("system", "push"), ("system", "pull")]
    return keys


class Run:
    """One run, step by step: build, simulate, then read the tables.

    `run_scenario` does all three; tests use the steps to look inside.
    """

    def __init__(self, scenario: Scenario, replication: int = 0) -> None:
        self.scenario = scenario
        self.replication = replication
        self.started = time.perf_counter()
        check_memory(scenario)

        def draws(name: str) -> np.random.Generator:
            return stream(scenario.seed, name, replication=replication)

        self.graph = build_graph(scenario, draws("graph"), draws("groups"))
        self.workload = generate_workload(
            scenario, self.graph, draws("sessions"), draws("visits")
        )
        self.world = World(scenario, self.graph, self.workload, replication)
        self.probe = StalenessProbe(
            self.world, draws("staleness"), scenario.metrics.staleness_pairs
        )
        self.strategies = [
            STRATEGIES[key](self.world, self.tiers_for(key))
            for key in chosen_strategies(scenario, self.graph)
        ]

    def tiers_for(self, key: tuple[str, str]) -> dict[str, Tier]:
        """The tiers strategy `key` runs on, built as the run starts; a
        capacity search gives each strategy its own server counts."""
        return build_tiers(self.scenario, self.replication)

    def strategy(self, audience: str, name: str) -> Strategy:
        for strategy in self.strategies:
            if strategy.key == (audience, name):
                return strategy
        raise KeyError((audience, name))

    def simulate(self, progress: Progress | None = None, processes: int = 1) -> "Run":
        """Run every strategy, shared among up to `processes` processes."""
        forked.simulate(self.world, self.strategies, progress, processes)
        return self

    def result(self) -> RunResult:
        scenario, strategies = self.scenario, self.strategies
        staleness, stale_shares = staleness_table(
            self.probe, strategies, scenario.warmup
        )
        presence = [s for s in strategies if s.audience != "system"]
        ghost = ghost_summary(self.world)
        tables = {
            "strategies": strategy_table(presence, stale_shares, ghost, scenario),
            "tiers": tier_table(strategies, scenario),
            "operations": operation_table(strategies, scenario),
            "load": load_table(strategies, scenario),
            "n_histogram": n_histogram_table(presence),
            "latency_histogram": latency_histogram_table(presence),
            "staleness": staleness,
            "faults": fault_table(strategies, scenario),
            "system_messages": pd.DataFrame(broadcast_rows(strategies)),
            "degrees": degree_table(self.graph),
        }
        tables, predictions = add_predictions(
            tables, scenario, self.graph, self.workload
        )
        summary = run_summary(
            scenario, self.graph, self.workload, time.perf_counter() - self.started
        )
        summary["ghost_online"] = ghost
        summary["predictions"] = predictions
        summary["replication"] = self.replication
        return RunResult(scenario, summary, tables)


def run_scenario(
    scenario: Scenario,
    progress: Progress | None = None,
    replication: int = 0,
    processes: int = 1,
) -> RunResult:
    """Build the graph and workload, run every strategy, collect the tables.

    `replication` picks independent random streams for everything, the graph
    of a synthetic scenario included; replication 0 is the single run. The
    strategies are shared among up to `processes` processes.
    """
    return Run(scenario, replication).simulate(progress, processes).result()


def ghost_summary(world: World) -> dict[str, float]:
    """Time from an abrupt disconnect to the server declaring it offline."""
    ghosts = np.asarray(world.ghost_seconds)
    return {
        "detected": len(ghosts),
        "mean_s": float(ghosts.mean()) if len(ghosts) else math.nan,
        "p99_s": float(np.percentile(ghosts, 99)) if len(ghosts) else math.nan,
    }


def strategy_table(
    strategies: list[Strategy],
    stale_shares: dict[tuple[str, str], float],
    ghost: dict[str, float],
    scenario: Scenario,
) -> pd.DataFrame:
    rows = []
    window = scenario.duration - scenario.warmup
    for strategy in strategies:
        metrics = strategy.metrics
        n = metrics.n.values()
        has_n = len(n) > 0
        peak = {
            f"peak_rps_{name}": float(tier.rates().max())
            for name, tier in strategy.tiers.items()
        }
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
                "login_latency_p50_s": metrics.login.quantile(0.50),
                "login_latency_p99_s": metrics.login.quantile(0.99),
                "stale_share_mean": stale_shares.get(strategy.key, math.nan),
                "empty_polls": metrics.empty_polls,
                "ghost_pushes": metrics.ghost_pushes,
                "ghost_online_mean_s": ghost["mean_s"],
                "bytes": metrics.bytes,
                "bytes_per_s": metrics.bytes / window,
                **peak,
            }
        )
    if not rows:
        # A run of system messages only: the table keeps its columns.
        columns = [*STRATEGY_COLUMNS, *(f"peak_rps_{name}" for name in TIER_NAMES)]
        return _empty(columns)
    return pd.DataFrame(rows)


STRATEGY_COLUMNS = [
    "audience",
    "strategy",
    "changes",
    "messages",
    "requests",
    "amplification",
    "n_mean",
    "n_p50",
    "n_p99",
    "n_max",
    "latency_mean_s",
    "latency_p50_s",
    "latency_p99_s",
    "login_latency_p50_s",
    "login_latency_p99_s",
    "stale_share_mean",
    "empty_polls",
    "ghost_pushes",
    "ghost_online_mean_s",
    "bytes",
    "bytes_per_s",
]


def tier_table(strategies: list[Strategy], scenario: Scenario) -> pd.DataFrame:
    rows = []
    window = scenario.duration - scenario.warmup
    slot = scenario.metrics.slot
    first = int(scenario.warmup / slot)
    for strategy in strategies:
        for tier in strategy.tiers.values():
            jobs = tier.jobs
            capacity = tier.servers * tier.workers * window
            rows.append(
                {
                    "audience": strategy.audience,
                    "strategy": strategy.name,
                    "tier": tier.name,
                    "servers": tier.servers,
                    "workers": tier.workers,
                    "jobs": jobs,
                    "mean_rps": jobs / window,
                    "peak_rps": float(tier.rates()[first:].max()),
                    "utilisation": tier.busy / capacity,
                    "wait_mean_s": tier.wait / jobs if jobs else 0.0,
                    "wait_max_s": tier.max_wait,
                    "queue_mean": tier.wait / window,
                    "queue_max": tier.max_queued,
                }
            )
    return pd.DataFrame(rows)


def operation_table(strategies: list[Strategy], scenario: Scenario) -> pd.DataFrame:
    """Per tier and operation: load, utilisation, queueing and latency."""
    rows = []
    window = scenario.duration - scenario.warmup
    for strategy in strategies:
        for tier in strategy.tiers.values():
            capacity = tier.servers * tier.workers * window
            for op, stats in tier.ops.items():
                rows.append(
                    {
                        "audience": strategy.audience,
                        "strategy": strategy.name,
                        "tier": tier.name,
                        "operation": op,
                        "jobs": stats.jobs,
                        "mean_rps": stats.jobs / window,
                        "utilisation": stats.busy / capacity,
                        "wait_mean_s": stats.wait / stats.jobs if stats.jobs else 0.0,
                        "wait_max_s": stats.max_wait,
                        "queue_mean": stats.wait / window,
                        "queue_max": stats.max_queued,
                        "latency_p50_s": stats.sojourn.quantile(0.5),
                        "latency_p99_s": stats.sojourn.quantile(0.99),
                    }
                )
    return pd.DataFrame(rows)


def fault_table(strategies: list[Strategy], scenario: Scenario) -> pd.DataFrame:
    """Per fault, strategy and tier: load before and at peak, worst wait, and
    how long the tier took to drain after the fault.

    The fault's window runs from its start to its end (for a crash, to the
    end of the reconnect jitter). The tier has drained at the first slot
    after the window whose worst wait is back within twice the worst wait
    seen in the slots before the fault (and at least one millisecond).
    """
    rows = []
    slot = scenario.metrics.slot
    for index, fault in enumerate(scenario.faults):
        if isinstance(fault, Slowdown):
            start, end = fault.start, fault.end
        else:
            start = fault.at
            end = fault.at + max(fault.reconnect_jitter, fault.detect_after)
        first, last = int(start / slot), int(math.ceil(end / slot))
        for strategy in strategies:
            for tier in strategy.tiers.values():
                before = tier.slot_max_wait[:first]
                usual = max(2 * float(before.max()) if len(before) else 0.0, 1e-3)
                after = tier.slot_max_wait[last:]
                calm = np.flatnonzero(after <= usual)
                drain = float(calm[0] * slot) if len(calm) else math.nan
                rate = tier.rates()
                rows.append(
                    {
                        "fault": index,
                        "kind": fault.kind,
                        "tier": tier.name,
                        "audience": strategy.audience,
                        "strategy": strategy.name,
                        "start_s": start,
                        "end_s": end,
                        "rps_before": float(rate[:first].mean()) if first else math.nan,
                        "peak_rps": float(
                            rate[first : max(last, first + 1) + 60].max()
                        ),
                        "wait_max_s": float(
                            tier.slot_max_wait[first : max(last, first + 1) + 60].max()
                        ),
                        "drain_s": drain,
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
                        "rps": tier.rates(),
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
    frames = [_empty(["audience", "strategy", "low_s", "high_s", "count"])]
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


def _empty(columns: list[str]) -> pd.DataFrame:
    """A table with its columns and no rows, so that empty runs keep a schema."""
    return pd.DataFrame({column: pd.Series(dtype=float) for column in columns})


def degree_table(graph: SocialGraph) -> pd.DataFrame:
    """How many users have each out-degree (friends) and in-degree (reverse)."""
    frames = []
    for direction, csr in (("out", graph.friends), ("in", graph.reverse)):
        counts = np.bincount(csr.degrees())
        present = np.flatnonzero(counts)
        frames.append(
            pd.DataFrame(
                {"direction": direction, "degree": present, "users": counts[present]}
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
            "reciprocity": graph.reciprocity(),
            "groups": graph.members.rows,
            "mean_group_size": float(graph.members.degrees().mean())
            if graph.members.rows
            else 0.0,
        },
        "workload": {
            "sessions": len(workload.sessions),
            "logins": workload.count(LOGIN),
            "events": len(workload.event_time),
            "abrupt_sessions": int(workload.sessions.abrupt.sum()),
            "crashed_sessions": int(workload.sessions.crashed.sum()),
            "reconnects": int(workload.sessions.reconnect.sum()),
            "group_visits": len(workload.visit_time),
            "initial_online_fraction": float(workload.initially_online.mean()),
            "mean_online_fraction": mean_online_fraction(workload, scenario.warmup),
        },
        "wall_seconds": round(wall, 3),
        "scenario_settings": scenario.model_dump(mode="json"),
    }
