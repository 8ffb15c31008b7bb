"""Tables of features still being built, made up for the report tests.

The report shows intervals over replications, closed-form predictions,
capacity plans and sweeps from tables that other parts of the project will
write. These helpers add plausible versions of them to a real run's folder,
with the columns the report reads, so the tests can check that every section
renders in full.
"""

from pathlib import Path

import pandas as pd


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
    return frame


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
    write(folder, "plan", plan(strategies))
    write(folder, "sweep_summary", sweep(strategies))
