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
    original_on_change = Push.on_change

    def timed(action):  # type: ignore[no-untyped-def]
        def wrapped(*args):  # type: ignore[no-untyped-def]
            began = time.perf_counter()
            action(*args)
            spent[0] += time.perf_counter() - began

        return wrapped

    # Every follow-up of a user event is the arrival of a push at the
    # gateways; nothing else is scheduled through World.at in this case.
    follow_up = run.world.follow_up
    run.world.follow_up = lambda when, action: follow_up(when, timed(action))
    world_at = run.world.at
    run.world.at = lambda when, action: world_at(when, timed(action))
    Push.on_change = timed(original_on_change)
    try:
        run.simulate()
    finally:
        Push.on_change = original_on_change

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
    args = parser.parse_args()
    if args.kind == "model":
        result = run_model(args.scenario, args.overrides)
    elif args.kind == "naive":
        result = run_naive(args.scenario, args.overrides, args.audience)
    else:
        result = run_limit(args.scenario, args.overrides)
    result.update(_peak_rss_mb())
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
