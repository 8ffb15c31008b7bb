"""One benchmark case in its own process, so that its peak memory is its own.

Prints one JSON line: wall seconds, peak RSS, status changes and messages.
"""

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from bench.naive import NAIVE
from sim.experiment import Run, build_tiers
from sim.model import Simulation
from sim.protocol.push import Push
from sim.scenario import load_scenario
from sim.tiers import Tier

ROOT = Path(__file__).resolve().parents[1]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_model(scenario_file: str, overrides: list[str]) -> dict:
    """presence-sim on a scenario: every strategy it names."""
    scenario = load_scenario(scenario_file, overrides)
    started = time.perf_counter()
    run = Run(scenario).simulate()
    table = run.result().tables["strategies"]
    wall = time.perf_counter() - started
    changes = int(table["changes"].max()) if len(table) else 0
    return {
        "wall_s": wall,
        "changes": changes,
        "messages": int(table["messages"].sum()),
        "users": run.graph.users,
    }


def run_naive(scenario_file: str, overrides: list[str], audience: str) -> dict:
    """The per-message reference for one push audience, on the same trace."""
    scenario = load_scenario(scenario_file, overrides)
    started = time.perf_counter()
    run = Run(scenario)
    naive = NAIVE[audience](run.world, build_tiers(scenario))
    Simulation(run.world, [naive], None).run()
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "changes": naive.metrics.changes,
        "messages": naive.metrics.messages,
        "n_mean": float(naive.metrics.n.values().mean()),
        "users": run.graph.users,
    }


def run_limit(scenario_file: str, overrides: list[str]) -> dict:
    """Time spent in friend push fan-outs against a bare numpy loop doing only
    the same gathers over the same changes."""
    scenario = load_scenario(scenario_file, overrides)
    run = Run(scenario)
    spent = [0.0]
    original_on_change = Push.on_change
    original_serve = Tier.serve

    def timed_on_change(self, event, ready):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        original_on_change(self, event, ready)
        spent[0] += time.perf_counter() - began

    def timed_serve(self, t, servers, op):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        finish = original_serve(self, t, servers, op)
        if op == "deliver":
            spent[0] += time.perf_counter() - began
        return finish

    Push.on_change = timed_on_change
    Tier.serve = timed_serve
    try:
        run.simulate()
    finally:
        Push.on_change = original_on_change
        Tier.serve = original_serve

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
        if kind in (0, 2, 4):
            connected[user] = kind == 0
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
    result["peak_rss_mb"] = _peak_rss_mb()
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
