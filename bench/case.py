"""One benchmark case in its own process, so that its peak memory is its own.

Prints one JSON line: wall seconds, peak RSS, status changes and messages.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.naive import NAIVE
from sim.experiment import Run, build_tiers
from sim.model import Simulation
from sim.output import write_run
from sim.protocol.base import Strategy
from sim.protocol.push import Push
from sim.scenario import load_scenario
from sim.workload import LOGIN, LOGOUT, TIMEOUT

ROOT = Path(__file__).resolve().parents[1]


def _peak_rss_mb() -> dict:
    """Peak resident memory of this process and of its largest forked
    child (a forked child shares the parent's pages until it writes them, so
    their sum overstates the machine's peak)."""
    main = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": main, "child_rss_mb": child}


def load_kernels(scenario_file: str, overrides: list[str]) -> float:
    """Run the case's scenario at 2,000 users, so that the kernels it calls
    are loaded from the disk cache (or compiled) before any timing starts.

    Loading is a one-off cost of each process, about the same whatever the
    size of the run; the cases that compare simulation times leave it out
    of both sides. Returns the seconds it took.
    """
    started = time.perf_counter()
    small = load_scenario(scenario_file, [*overrides, "population.users=2000"])
    Run(small).simulate(processes=1)
    return time.perf_counter() - started


def run_model(scenario_file: str, overrides: list[str]) -> dict:
    """presence-sim on a scenario as `presence-sim run` does it: every
    strategy it names, shared among the cores, and every output written."""
    scenario = load_scenario(scenario_file, overrides)
    started = time.perf_counter()
    run = Run(scenario)
    built = time.perf_counter()
    run.simulate(processes=os.cpu_count() or 1)
    simulated = time.perf_counter()
    result = run.result()
    with tempfile.TemporaryDirectory() as folder:
        write_run(result, Path(folder) / "run")
    wall = time.perf_counter() - started
    table = result.tables["strategies"]
    changes = int(table["changes"].max()) if len(table) else 0
    return {
        "wall_s": wall,
        "simulate_s": simulated - built,
        "changes": changes,
        "messages": int(table["messages"].sum()),
        "users": run.graph.users,
    }


def run_naive(scenario_file: str, overrides: list[str], audience: str) -> dict:
    """The per-message reference for one push audience, on the same trace."""
    scenario = load_scenario(scenario_file, overrides)
    started = time.perf_counter()
    run = Run(scenario)
    built = time.perf_counter()
    naive = NAIVE[audience](run.world, build_tiers(scenario))
    Simulation(run.world, [naive], None).run()
    simulated = time.perf_counter()
    return {
        "wall_s": simulated - started,
        "simulate_s": simulated - built,
        "changes": naive.metrics.changes,
        "messages": naive.metrics.messages,
        "n_mean": float(naive.metrics.n.values().mean()),
        "users": run.graph.users,
    }


def run_limit(scenario_file: str, overrides: list[str]) -> dict:
    """Time spent in friend push fan-outs, from the change to the recorded
    deliveries, against a bare numpy loop doing only the same gathers over
    the same changes."""
    scenario = load_scenario(scenario_file, overrides)
    run = Run(scenario)
    spent = [0.0]

    def timed(action):  # type: ignore[no-untyped-def]
        def wrapped(*args):  # type: ignore[no-untyped-def]
            began = time.perf_counter()
            action(*args)
            spent[0] += time.perf_counter() - began

        return wrapped

    # A fan-out is the change's handling by the push strategy and the
    # arrival of its push at the gateways.
    originals = {Push: Push.on_change, Strategy: Strategy._arrive}
    Push.on_change = timed(Push.on_change)
    Strategy._arrive = timed(Strategy._arrive)
    try:
        run.simulate()
    finally:
        Push.on_change = originals[Push]
        Strategy._arrive = originals[Strategy]

    # The bare loop: replay connections, gather online reverse friends.
    workload = run.workload
    connected = np.zeros(run.graph.users, dtype=bool)
    connected[workload.sessions.user[workload.sessions.start < 0]] = True
    reverse = run.graph.reverse
    kinds = workload.event_kind.tolist()
    users = workload.event_user.tolist()
    began = time.perf_counter()
    total = 0
    for kind, user in zip(kinds, users, strict=True):
        # Logins connect; logouts and timeouts disconnect; each is a change.
        if kind in (LOGIN, LOGOUT, TIMEOUT):
            connected[user] = kind == LOGIN
            friends = reverse.indices[reverse.indptr[user] : reverse.indptr[user + 1]]
            total += len(friends[connected[friends]])
    bare = time.perf_counter() - began
    return {"fanout_s": spent[0], "bare_s": bare, "gathered": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["model", "naive", "limit"])
    parser.add_argument("scenario")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--audience", default="friends")
    parser.add_argument(
        "--load-kernels",
        action="store_true",
        help="load the kernels with a small run before timing (see load_kernels)",
    )
    args = parser.parse_args()
    loading = None
    if args.load_kernels:
        loading = load_kernels(args.scenario, args.overrides)
    if args.kind == "model":
        result = run_model(args.scenario, args.overrides)
    elif args.kind == "naive":
        result = run_naive(args.scenario, args.overrides, args.audience)
    else:
        result = run_limit(args.scenario, args.overrides)
    result.update(_peak_rss_mb())
    result["loading_s"] = loading
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
