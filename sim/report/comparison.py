"""The strategy comparison: one table per audience, a row per measure.

A measure's value may come with companions in the same table row:
`M_ci_low` and `M_ci_high` (the 95% interval over replications),
`M_predicted` (the closed-form value) and `M_rel_error` (the simulated value's
relative difference from it). The table shows whichever the run produced.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sim.report.blocks import Cell, Table
from sim.report.style import label
from sim.report.values import is_missing, shown, signed_share

COMPANIONS = ("_ci_low", "_ci_high", "_predicted", "_rel_error")

# Columns that name a row rather than measure something.
IDENTITY = {
    "audience",
    "strategy",
    "mode",
    "message",
    "fault",
    "tier",
    "replication",
    "replications",
}


@dataclass(frozen=True)
class Measure:
    """A column worth a row; `better` is "lower", "higher" or None (no best)."""

    column: str
    label: str
    better: str | None = None


STRATEGY_MEASURES = (
    Measure("changes", "status changes"),
    Measure("n_mean", "N, mean (observers per change)"),
    Measure("n_p50", "N, median"),
    Measure("n_p99", "N, p99"),
    Measure("n_max", "N, max"),
    Measure("amplification", "messages per change", "lower"),
    Measure("messages", "messages to clients", "lower"),
    Measure("requests", "requests from clients", "lower"),
    Measure("bytes", "bytes on the wire", "lower"),
    Measure("bytes_per_s", "bandwidth", "lower"),
    Measure("latency_mean_s", "propagation latency, mean", "lower"),
    Measure("latency_p50_s", "propagation latency, median", "lower"),
    Measure("latency_p99_s", "propagation latency, p99", "lower"),
    Measure("login_latency_p50_s", "login latency, median", "lower"),
    Measure("login_latency_p99_s", "login latency, p99", "lower"),
    Measure("stale_share_mean", "stale views, mean share", "lower"),
    Measure("empty_polls", "polls that found no change", "lower"),
    Measure("ghost_pushes", "pushes to ghost sessions", "lower"),
    Measure("ghost_online_mean_s", "ghost online time, mean"),
)

# The strategy table's per-tier peak loads, `peak_rps_TIER`, join the rows of
# their tier.
PEAK_PREFIX = "peak_rps_"

# Per-tier columns of the `tiers` table that join the comparison.
TIER_MEASURES = (
    Measure("peak_rps", "peak load", "lower"),
    Measure("utilisation", "utilisation", "lower"),
)

SYSTEM_MEASURES = (
    Measure("users", "users"),
    Measure("delivered", "delivered", "higher"),
    Measure("delivered_at_send", "delivered when sent"),
    Measure("junk", "junk left for offline users", "lower"),
    Measure("lost_to_ghosts", "lost to ghost sessions", "lower"),
    Measure("not_reached", "not reached", "lower"),
    Measure("peak_gateway_rps", "peak gateway load", "lower"),
    Measure("delay_mean_s", "delivery delay, mean", "lower"),
    Measure("delay_p50_s", "delivery delay, median", "lower"),
    Measure("delay_p99_s", "delivery delay, p99", "lower"),
)
# Settings of the broadcast, not measures of its delivery.
SYSTEM_SKIPPED = ("at_s", "expires_s")


def measures_of(
    frame: pd.DataFrame, known: tuple[Measure, ...], skipped: tuple[str, ...] = ()
) -> list[Measure]:
    """The known measures the frame has, then its other numeric columns."""
    names = {measure.column for measure in known} | set(skipped)
    found = [measure for measure in known if measure.column in frame.columns]
    for column in frame.columns:
        if (
            column not in names
            and column not in IDENTITY
            and not column.endswith(COMPANIONS)
            and pd.api.types.is_numeric_dtype(frame[column])
            and not pd.api.types.is_bool_dtype(frame[column])
        ):
            found.append(Measure(column, column.replace("_", " ")))
    return found


def value_cell(row: Mapping[str, Any], column: str, best: bool = False) -> Cell:
    """The value of `column` with its interval and prediction, where present."""
    details = []
    low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    if not (is_missing(low) or is_missing(high)):
        details.append(f"95% CI {shown(low, column)} – {shown(high, column)}")
    predicted = row.get(f"{column}_predicted")
    if not is_missing(predicted):
        text = f"predicted {shown(predicted, column)}"
        error = row.get(f"{column}_rel_error")
        if not is_missing(error):
            text += f", error {signed_share(error)}"
        details.append(text)
    return Cell(shown(row.get(column), column), tuple(details), best)


def winners(values: list[Any], shown_as: list[str], better: str | None) -> set[int]:
    """Positions holding the best value, when there is a contest to win.

    A value that reads the same as a beaten one (both `<0.001%`) wins nothing,
    so what is highlighted is always visibly better.
    """
    present = [(i, float(v)) for i, v in enumerate(values) if not is_missing(v)]
    if better is None or len(present) < 2:
        return set()
    numbers = [v for _, v in present]
    target = min(numbers) if better == "lower" else max(numbers)
    best = {i for i, v in present if v == target}
    beaten = {shown_as[i] for i, _ in present if i not in best}
    return set() if any(shown_as[i] in beaten for i in best) or not beaten else best


def measure_table(
    records: list[Mapping[str, Any]],
    names: list[str],
    measures: list[Measure],
    caption: str = "",
) -> Table:
    """Measures down, records (strategies, modes) across, best highlighted."""
    rows = []
    for measure in measures:
        values = [record.get(measure.column) for record in records]
        if all(is_missing(value) for value in values):
            continue
        texts = [shown(value, measure.column) for value in values]
        best = winners(values, texts, measure.better)
        cells = [
            value_cell(record, measure.column, i in best)
            for i, record in enumerate(records)
        ]
        rows.append((Cell(measure.label, numeric=False), *cells))
    return Table(("measure", *names), tuple(rows), caption)


def tier_measures(
    strategies: pd.DataFrame, tiers: pd.DataFrame | None
) -> tuple[list[dict[str, Any]], list[Measure]]:
    """Each strategy's row, widened with its per-tier measures.

    Peak loads come from the strategy table's `peak_rps_TIER` columns where
    it has them; other tier measures from the `tiers` table, keyed
    `TIER.COLUMN` (and `TIER.COLUMN_ci_low`...), so that a record holds every
    number its comparison column shows.
    """
    records = strategies.to_dict("records")
    peaks = {
        column.removeprefix(PEAK_PREFIX): column
        for column in strategies.columns
        if column.startswith(PEAK_PREFIX) and not column.endswith(COMPANIONS)
    }
    names = list(peaks)
    if tiers is not None and not tiers.empty:
        names = list(dict.fromkeys([*tiers["tier"], *names]))
    measures = []
    for tier in names:
        for measure in TIER_MEASURES:
            if measure.column == "peak_rps" and tier in peaks:
                column = peaks[tier]
            elif tiers is not None and measure.column in tiers.columns:
                column = f"{tier}.{measure.column}"
            else:
                continue
            measures.append(
                Measure(column, f"{tier} tier, {measure.label}", measure.better)
            )
    if tiers is None or tiers.empty:
        return records, measures
    by_key = {
        (row["audience"], row["strategy"], row["tier"]): row
        for row in tiers.to_dict("records")
    }
    for record in records:
        for tier in names:
            row = by_key.get((record["audience"], record["strategy"], tier), {})
            record.update({f"{tier}.{column}": v for column, v in row.items()})
    return records, measures


def comparison_tables(
    strategies: pd.DataFrame, tiers: pd.DataFrame | None
) -> list[Table]:
    """One table for each audience of the run, captioned with its name."""
    records, per_tier = tier_measures(strategies, tiers)
    skipped = tuple(m.column for m in per_tier)
    measures = measures_of(strategies, STRATEGY_MEASURES, skipped) + per_tier
    tables = []
    for audience in dict.fromkeys(strategies["audience"]):
        mine = [r for r in records if r["audience"] == audience]
        names = [label(audience, r["strategy"]) for r in mine]
        caption = f"{str(audience).capitalize()}: strategies side by side."
        tables.append(measure_table(mine, names, measures, caption))
    return tables


def broadcast_names(frame: pd.DataFrame) -> list[str]:
    """A column name per row: the mode, and the message when there are several."""
    several = "message" in frame.columns and frame["message"].nunique() > 1
    return [
        f"{row['mode']}, message {row['message']}" if several else str(row["mode"])
        for row in frame.to_dict("records")
    ]


def system_table(frame: pd.DataFrame) -> Table:
    """Push broadcast against pull at login, a column per delivery mode."""
    return measure_table(
        frame.to_dict("records"),
        broadcast_names(frame),
        measures_of(frame, SYSTEM_MEASURES, SYSTEM_SKIPPED),
        "Delivery modes side by side.",
    )
