"""Optional tables a richer run would write, made up for the report tests.

The report draws sections for faults, staleness, system messages, capacity
plans, sweeps, intervals and predictions from tables that other parts of the
model write. These helpers add plausible versions of them to a real run's
folder, with the columns the report reads, so the tests can check that every
section renders in full.
"""

from pathlib import Path

import numpy as np
import pandas as pd

DURATION_S = 180.0


def write(folder: Path, name: str, frame: pd.DataFrame) -> None:
    frame.to_parquet(folder / "tables" / f"{name}.parquet", index=False)
    frame.to_csv(folder / "tables" / f"{name}.csv", index=False)


def with_intervals(strategies: pd.DataFrame) -> pd.DataFrame:
    """Intervals of plus or minus 5% and predictions 2% below every value."""
    frame = strategies.copy()
    for column in ("n_mean", "amplification", "latency_p99_s"):
        values = frame[column]
        frame[f"{column}_ci_low"] = values * 0.95
        frame[f"{column}_ci_high"] = values * 1.05
        frame[f"{column}_predicted"] = values / 1.02
        frame[f"{column}_rel_error"] = 0.02
    frame["stale_share_mean"] = np.linspace(0.01, 0.2, len(frame))
    frame["bytes"] = frame["messages"] * 120.0
    return frame


def faults() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "kind": ["crash", "slowdown"],
            "tier": ["gateway", "presence"],
            "start_s": [60.0, 120.0],
            "end_s": [60.0, 150.0],
            "reconnects": [85, 0],
            "peak_rps": [900.0, 40.0],
            "drain_s": [4.5, 12.0],
        }
    )


def staleness(strategies: pd.DataFrame) -> pd.DataFrame:
    times = np.arange(0.0, DURATION_S, 10.0)
    frames = []
    for index, row in enumerate(strategies.itertuples(index=False)):
        frames.append(
            pd.DataFrame(
                {
                    "audience": row.audience,
                    "strategy": row.strategy,
                    "time_s": times,
                    "stale_share": 0.01 * (index + 1) * (1 + np.sin(times / 30)),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def system_messages() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "mode": ["push", "pull"],
            "recipients": [1500, 1500],
            "delivered": [310, 372],
            "junk": [1190, 0],
            "peak_gateway_rps": [9300.0, 4.0],
            "delay_mean_s": [0.004, 41.0],
            "delay_p99_s": [0.011, 170.0],
        }
    )


def plan(strategies: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for index, row in enumerate(strategies.itertuples(index=False)):
        for tier, servers in (("gateway", 40 + 30 * index), ("presence", 6 + index)):
            rows.append(
                {
                    "audience": row.audience,
                    "strategy": row.strategy,
                    "tier": tier,
                    "servers": servers,
                    "utilisation_peak": 0.62,
                    "latency_p99_s": 0.4,
                }
            )
    return pd.DataFrame(rows)


def sweep(strategies: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for interval in (10.0, 30.0, 60.0, 120.0):
        for row in strategies.itertuples(index=False):
            pushing = row.strategy == "push"
            latency = 0.002 if pushing else interval
            messages = 40.0 if pushing else 600.0 / interval
            rows.append(
                {
                    "strategies.poll_interval": interval,
                    "audience": row.audience,
                    "strategy": row.strategy,
                    "amplification": messages,
                    "amplification_ci_low": messages * 0.9,
                    "amplification_ci_high": messages * 1.1,
                    "latency_p99_s": latency,
                    "latency_p99_s_ci_low": latency * 0.9,
                    "latency_p99_s_ci_high": latency * 1.1,
                }
            )
    return pd.DataFrame(rows)


def add_optional_tables(folder: Path) -> None:
    """Give a run folder every optional table the report can show."""
    strategies = pd.read_parquet(folder / "tables" / "strategies.parquet")
    write(folder, "strategies", with_intervals(strategies))
    write(folder, "faults", faults())
    write(folder, "staleness", staleness(strategies))
    write(folder, "system_messages", system_messages())
    write(folder, "plan", plan(strategies))
    write(folder, "sweep_summary", sweep(strategies))
