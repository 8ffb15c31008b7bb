"""presence-sim benchmarks: `make bench` (or `python -m bench.run --quick`).

Every case runs in a fresh process (bench/case.py) so that its peak memory
is its own. Speeds are compared only as ratios of cases measured in the same
run. Targets are printed beside the figures; nothing here fails on them.
"""

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEED = str(ROOT / "scenarios" / "seed.yaml")
SLASHDOT = ROOT.parent / "shared" / "datasets" / "soc-Slashdot0902.txt.gz"


def case(
    kind: str,
    scenario: str,
    *overrides: str,
    audience: str = "friends",
    load_kernels: bool = False,
) -> dict:
    command = [sys.executable, "-m", "bench.case", kind, scenario]
    for item in overrides:
        command += ["--set", item]
    command += ["--audience", audience]
    if load_kernels:
        command.append("--load-kernels")
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def line(label: str, result: dict, timed: str = "wall_s") -> None:
    """One case: its `timed` seconds (the whole wall time, or the simulation
    alone), peak memory and the rates over those seconds."""
    if "error" in result:
        print(f"{label:<44} failed: {result['error']}")
        return
    seconds = result[timed]
    memory = f"{result['peak_rss_mb']:6.0f} MB"
    if result.get("child_rss_mb"):
        memory += f" + {result['child_rss_mb']:5.0f} MB"
    warm = ""
    if result.get("loading_s") is not None:
        warm = f"  (after a warm-up run of {result['loading_s']:.1f} s)"
    print(
        f"{label:<44} {seconds:8.3f} s {memory:<18} "
        f"{result['changes'] / seconds:10,.0f} changes/s "
        f"{result['messages'] / seconds:13,.0f} messages/s{warm}"
    )


def speed_up(naive: dict, model: dict) -> float:
    return naive["simulate_s"] / model["simulate_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tenth of the populations and of the simulated time",
    )
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    hour = "6m" if args.quick else "1h"
    big = [10_000 // scale, 100_000 // scale, 1_000_000 // scale]

    print(f"presence-sim benchmarks ({'quick' if args.quick else 'full'})")
    print(
        "Model cases run as `presence-sim run` does (strategies shared among "
        "the cores, every output written); peak RSS is the main process + the "
        "largest forked one, which share the graph's pages."
    )
    if args.quick:
        print("Quick sizes: the targets are set for the full `make bench`.")
    print(f"{'case':<44} {'wall':>9}  peak RSS")
    walls = {}
    case_results = {}
    for users in big:
        result = case("model", SEED, f"population.users={users}", f"duration={hour}")
        line(f"seed, {users:,} users, {hour}, all strategies", result)
        walls[users] = result.get("wall_s", math.nan)
        case_results[users] = result

    if SLASHDOT.exists():
        slashdot = str(ROOT / "bench" / "slashdot.yaml")
        line(
            f"Slashdot (82,168 users), {hour}",
            case("model", slashdot, f"duration={hour}"),
        )
    else:
        print(f"Slashdot: skipped, {SLASHDOT} is absent")

    users = np.array(big, dtype=float)
    seconds = np.array([walls[u] for u in big])
    exponent = float(np.polyfit(np.log(users), np.log(seconds), 1)[0])
    print(
        f"scaling exponent of wall time against users: {exponent:.2f} "
        f"(target <= 1.1: {verdict(exponent <= 1.1)})"
    )
    largest = case_results[big[-1]]
    if "error" not in largest:
        peak_gb = (largest["peak_rss_mb"] + largest["child_rss_mb"]) / 1024
        met = largest["wall_s"] <= 180 and peak_gb <= 8
        print(
            f"seed at {big[-1]:,} users, {hour}: {largest['wall_s']:.0f} s, at most "
            f"{peak_gb:.1f} GB (target 180 s and 8 GB at 1,000,000 users, 1h: "
            f"{verdict(met) if not args.quick else 'not measured by --quick'})"
        )

    # Naive per-message reference against the batch model, same workload.
    print(
        "The speed-ups and the distance to the limit compare simulation times "
        "only (graph and workload building left out of both sides), and each "
        "of their processes first loads its kernels with a 2,000-user warm-up "
        "run of the same case; the lines below give simulation seconds."
    )
    for audience, users_n in (
        ("friends", 100_000 // scale),
        ("groups", 20_000 // scale),
    ):
        only = [
            f"population.users={users_n}",
            "duration=10m",
            f"strategies.friends={'[push]' if audience == 'friends' else '[]'}",
            f"strategies.groups={'[push]' if audience == 'groups' else '[]'}",
            "metrics.staleness_pairs=0",
        ]
        naive = case("naive", SEED, *only, audience=audience, load_kernels=True)
        model = case("model", SEED, *only, load_kernels=True)
        line(f"naive {audience} push, {users_n:,} users, 10m", naive, "simulate_s")
        line(f"presence-sim {audience} push, same", model, "simulate_s")
        if "error" in naive or "error" in model:
            continue
        ratio = speed_up(naive, model)
        target = 20 if audience == "friends" else 100
        print(
            f"speed-up over the naive model, {audience} push: {ratio:.1f}x "
            f"(simulation {naive['simulate_s']:.3f} s against "
            f"{model['simulate_s']:.3f} s; N {naive['n_mean']:.1f}; "
            f"target >= {target}x: {verdict(ratio >= target)})"
        )
        if audience == "friends":
            # The same pair with the kernels loaded inside the timed part.
            cold_naive = case("naive", SEED, *only, audience=audience)
            cold_model = case("model", SEED, *only)
            if "error" not in cold_naive and "error" not in cold_model:
                print(
                    f"  the same without the warm-up runs (kernel loading timed "
                    f"on both sides): {speed_up(cold_naive, cold_model):.1f}x "
                    f"({cold_naive['simulate_s']:.3f} s against "
                    f"{cold_model['simulate_s']:.3f} s)"
                )

    limit = case(
        "limit",
        SEED,
        f"population.users={100_000 // scale}",
        "duration=10m",
        "strategies.friends=[push]",
        "strategies.groups=[]",
        "metrics.staleness_pairs=0",
        load_kernels=True,
    )
    if "error" in limit:
        print(f"distance to the limit: failed: {limit['error']}")
    else:
        distance = limit["fanout_s"] / limit["bare_s"]
        print(
            f"distance to the limit: fan-out {limit['fanout_s']:.3f} s against a "
            f"bare numpy gather loop {limit['bare_s']:.3f} s = "
            f"{distance:.1f}x (target <= 3x: {verdict(distance <= 3)}; after a "
            f"warm-up run of {limit['loading_s']:.1f} s)"
        )


if __name__ == "__main__":
    main()
