"""Report figures, each drawn from one of the run's tables.

Every function takes the table it draws, the report's palette and the
figures folder, writes `NAME.png` and `NAME.svg` there, and returns NAME, or
None when the table holds nothing to draw.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from sim.report import style
from sim.report.comparison import broadcast_names
from sim.report.style import Palette, figure, save, styled
from sim.report.values import count, kind_of, shown

# Bin edges for N on a log axis: the E24 series of preferred numbers, 24 a
# decade, so bins are even on the axis and their edges are round numbers.
_E24 = (
    1.0, 1.1, 1.2, 1.3, 1.5, 1.6, 1.8, 2.0, 2.2, 2.4, 2.7, 3.0,
    3.3, 3.6, 3.9, 4.3, 4.7, 5.1, 5.6, 6.2, 6.8, 7.5, 8.2, 9.1,
)  # fmt: skip

# Load is drawn over about this many windows, whatever the run's length.
LOAD_WINDOWS = 120
_NICE_WIDTHS = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600)


def strategy_groups(
    frame: pd.DataFrame, by: tuple[str, ...] = ("audience", "strategy")
) -> list[tuple[tuple, pd.DataFrame]]:
    """The frame's rows per (audience, strategy), in order of appearance."""
    return [(tuple(key), rows) for key, rows in frame.groupby(list(by), sort=False)]


def n_bin_edges(largest: int) -> np.ndarray:
    """Integer bin edges 0, 1, 2, ..., 10, 11, 12, 13, 15, 16, 18, 20, ... past
    `largest`: every integer while the E24 steps are finer than one.

    Bin i holds the values in [edge i, edge i+1).
    """
    edges = [0, 1]
    decade = 1.0
    while edges[-1] <= largest:
        for mantissa in _E24:
            edge = round(mantissa * decade)
            if edge > edges[-1]:
                edges.append(edge)
        decade *= 10
    return np.array(edges)


def tick_seconds(value: float, _position: object = None) -> str:
    """A time axis label: `20us`, `5ms`, `30s`, `100s`, `10m`, `2h`."""
    if value <= 0:
        return "0"
    if value >= 3600:
        return f"{value / 3600:g}h"
    if value >= 600 and (value / 60).is_integer():
        return f"{value / 60:g}m"
    if value >= 1:
        return f"{value:g}s"
    if value >= 1e-3:
        return f"{value * 1e3:g}ms"
    return f"{value * 1e6:g}us"


def _percent_axis(axis: Axes, which: str = "y") -> None:
    """Shares read as percentages: 0.25 as `25%`."""
    target = axis.yaxis if which == "y" else axis.xaxis
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v * 100:g}%"))


def _value_axis(axis: Axes, column: str) -> None:
    """A y axis that reads like the column's values: seconds, shares, counts."""
    kind = kind_of(column)
    if kind == "seconds":
        axis.yaxis.set_major_formatter(FuncFormatter(tick_seconds))
    elif kind == "share":
        _percent_axis(axis)
    else:
        axis.yaxis.set_major_formatter(FuncFormatter(lambda v, _: shown(v, column)))


def plain_number(value: float, _position: object = None) -> str:
    """A tick label without exponents: `0.5`, `200`, `10,000`."""
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def _plain_log_axis(axis: Axes, which: str, low: float, high: float) -> None:
    """Log ticks read as plain numbers (200 and 10,000, not 2x10^2 and 1e4).

    Over less than two decades (`low` to `high`), the 2s, 3s and 5s between
    the powers of ten are labelled too, and within one decade every tick.
    """
    target = axis.xaxis if which == "x" else axis.yaxis
    target.set_major_formatter(FuncFormatter(plain_number))
    within_decade = high < low * 10
    labelled = {2, 3, 5} if high < low * 100 else set()

    def minor(value: float, _position: object = None) -> str:
        mantissa = round(value / 10 ** np.floor(np.log10(value)), 6)
        shown = within_decade or mantissa in labelled
        return plain_number(value) if shown else ""

    target.set_minor_formatter(FuncFormatter(minor))


def _strategy_legend(fig: Figure, axis: Axes) -> None:
    """The strategies' legend, below the plots, in one row where it fits."""
    handles, labels = axis.get_legend_handles_labels()
    if handles:
        fig.legend(
            handles, labels, loc="outside lower center", ncols=min(4, len(labels))
        )


@styled
def degree_distribution(degrees: pd.DataFrame, folder: Path) -> str | None:
    """Share of users with at least k friends (out) or reverse friends (in)."""
    if degrees.empty or degrees["degree"].max() < 1:
        return None
    fig, axes = figure(width=8, height=3.6)
    axis = axes[0, 0]
    names = {
        "out": "out-degree: friends a user added",
        "in": "in-degree: reverse friends, who added the user",
    }
    positive = degrees[degrees["degree"] >= 1]
    lowest = float(positive["degree"].min())
    floor = 0.5 / float(degrees.groupby("direction")["users"].sum().max())
    for direction, colour, line in (
        ("out", style.NEUTRAL, "-"),
        ("in", style.SECOND_NEUTRAL, "--"),
    ):
        rows = positive[positive["direction"] == direction].sort_values("degree")
        if rows.empty:
            continue
        users = rows["users"].to_numpy(dtype=float)
        total = degrees.loc[degrees["direction"] == direction, "users"].sum()
        at_least = users[::-1].cumsum()[::-1] / total
        # Start at the left edge and end by falling off the bottom, so that a
        # graph where every user has the same degree still shows a step.
        ks = np.concatenate([[lowest / 1.2], rows["degree"], [rows["degree"].max()]])
        shares = np.concatenate([[at_least[0]], at_least, [floor / 10]])
        axis.step(ks, shares, where="post", color=colour, linestyle=line,
                  label=names[direction])  # fmt: skip
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_ylim(floor, 1.5)
    _plain_log_axis(axis, "x", lowest, float(positive["degree"].max()))
    _percent_axis(axis)
    axis.set_xlabel("degree k (users, log scale)")
    axis.set_ylabel("share of users with degree ≥ k")
    axis.set_title("Friend graph degrees")
    axis.legend(loc="lower left")
    return save(fig, folder, "degree_distribution")


@styled
def n_distribution(
    histogram: pd.DataFrame, palette: Palette, folder: Path
) -> str | None:
    """Share of status changes per range of N, on a logarithmic N axis."""
    if histogram.empty:
        return None
    largest = int(histogram["n"].max())
    smallest = int(histogram.loc[histogram["changes"] > 0, "n"].min())
    edges = n_bin_edges(largest)
    # Without changes that reached almost nobody, a plain log axis spends no
    # room on the range between 0 and the smallest N.
    plain_log = smallest >= 2
    if plain_log:
        edges = edges[np.searchsorted(edges, smallest, side="right") - 1 :]
    fig, axes = figure(width=9, height=3.9)
    axis = axes[0, 0]
    for (audience, strategy), rows in strategy_groups(histogram):
        counts, _ = np.histogram(rows["n"], bins=edges, weights=rows["changes"])
        share = counts / counts.sum()
        line = palette.line(audience, strategy)
        axis.stairs(share, edges, linewidth=1.6, **line)
        axis.stairs(share, edges, fill=True, alpha=0.08, color=line["color"])
        mean = float(np.average(rows["n"], weights=rows["changes"]))
        axis.axvline(mean, color=line["color"], linewidth=0.9, linestyle=":")
    if plain_log:
        axis.set_xscale("log")
        axis.set_xlim(smallest / 1.5, largest * 1.5)
        _plain_log_axis(axis, "x", smallest, largest)
    else:
        axis.set_xscale("symlog", linthresh=1, linscale=0.3)
        axis.set_xlim(0, max(10.0, largest * 1.5))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_ylim(bottom=0)
    _percent_axis(axis)
    axis.set_xlabel("N: observers reached by one status change (log scale)")
    axis.set_ylabel("share of status changes")
    axis.set_title("Storm diffusion factor N (dotted lines: means)")
    _strategy_legend(fig, axis)
    return save(fig, folder, "n_distribution")


@styled
def latency_cdf(histogram: pd.DataFrame, palette: Palette, folder: Path) -> str | None:
    """Cumulative share of observers reached against propagation latency."""
    if histogram.empty:
        return None
    fig, axes = figure(width=9, height=3.9)
    axis = axes[0, 0]
    for (audience, strategy), rows in strategy_groups(histogram):
        reached = rows["count"].cumsum() / rows["count"].sum()
        xs = np.concatenate([[rows["low_s"].iloc[0]], rows["high_s"]])
        ys = np.concatenate([[0.0], reached])
        axis.step(xs, ys, where="post", **palette.line(audience, strategy))
    axis.axhline(0.99, color="#999999", linewidth=0.8, linestyle=":")
    axis.annotate(
        "p99",
        (0.5, 0.99),
        xycoords=("axes fraction", "data"),
        va="bottom",
        color="#777777",
        fontsize=8,
    )
    axis.set_xscale("log")
    axis.set_xlim(histogram["low_s"].min() / 2, histogram["high_s"].max() * 2)
    axis.xaxis.set_major_formatter(FuncFormatter(tick_seconds))
    axis.set_ylim(0, 1.04)
    _percent_axis(axis)
    axis.set_xlabel("propagation latency, from a change to the observer's view (log)")
    axis.set_ylabel("share of observers reached")
    axis.set_title("Propagation latency CDF")
    _strategy_legend(fig, axis)
    return save(fig, folder, "latency_cdf")


def _mark_faults(axis: Axes, faults: pd.DataFrame | None, tier: str) -> None:
    """Shade each fault's span; name it on the panel of the tier it hits.

    `faults` has one row per fault: `kind`, `tier` (None when unknown),
    `start_s` and `end_s`. A fault that ends where it starts is a line.
    """
    if faults is None or faults.empty:
        return
    for fault in faults.itertuples(index=False):
        start, end = float(fault.start_s), float(fault.end_s)
        own = fault.tier in (tier, None)
        if end > start:
            axis.axvspan(
                start, end, color=style.FAULT_COLOUR, alpha=0.15 if own else 0.06
            )
        axis.axvline(start, color=style.FAULT_COLOUR, linewidth=1.0, linestyle="-.")
        if own:
            axis.annotate(
                str(fault.kind).replace("_", " "),
                (start, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, -3),
                textcoords="offset points",
                va="top",
                fontsize=8,
                color=style.FAULT_COLOUR,
            )


@styled
def load_over_time(
    load: pd.DataFrame, faults: pd.DataFrame | None, palette: Palette, folder: Path
) -> str | None:
    """Requests per second reaching each tier, one line per strategy."""
    if load.empty:
        return None
    tiers = list(dict.fromkeys(load["tier"]))
    width = load_window(load)
    end = float(load["time_s"].max()) + _slot_of(load)
    fig, axes = figure(
        len(tiers), 1, width=9.5, height=2.5 * len(tiers) + 0.7, sharex=True
    )
    for axis, tier in zip(axes[:, 0], tiers, strict=True):
        part = load[load["tier"] == tier]
        lowest, highest = np.inf, 0.0
        for (audience, strategy), rows in strategy_groups(part):
            window = np.floor(rows["time_s"].to_numpy() / width) * width
            per_window = rows.groupby(window)["rps"].agg(["mean", "max"])
            lowest = min(lowest, float(per_window["mean"].min()))
            highest = max(highest, float(per_window["max"].max()))
            times = per_window.index.to_numpy()
            line = palette.line(audience, strategy)
            axis.plot(times, per_window["mean"], drawstyle="steps-post", **line)
            axis.fill_between(
                times,
                per_window["mean"],
                per_window["max"],
                step="post",
                color=line["color"],
                alpha=0.13,
                linewidth=0,
            )
        _mark_faults(axis, faults, tier)
        _load_axis(axis, lowest, highest)
        axis.set_ylabel("requests/s")
        axis.set_title(f"{tier} tier", loc="left")
    axes[-1, 0].set_xlabel("simulated time (s)")
    axes[-1, 0].set_xlim(0, end)
    _strategy_legend(fig, axes[0, 0])
    return save(fig, folder, "load_over_time")


def _load_axis(axis: Axes, lowest: float, highest: float) -> None:
    """A log axis from the decade below the quietest window; if a window drops
    under one request per second, linear from 0 to 1 and log above."""
    if lowest >= 1:
        bottom = 10 ** np.floor(np.log10(lowest))
        axis.set_yscale("log")
        axis.set_ylim(bottom=bottom)
        _plain_log_axis(axis, "y", bottom, highest)
    else:
        axis.set_yscale("symlog", linthresh=1)
        axis.set_ylim(bottom=0)
        axis.yaxis.set_major_formatter(FuncFormatter(plain_number))


def _slot_of(load: pd.DataFrame) -> float:
    times = np.unique(load["time_s"].to_numpy())
    return float(times[1] - times[0]) if len(times) > 1 else 1.0


def load_window(load: pd.DataFrame) -> float:
    """Seconds over which the load figure averages: a round number of slots."""
    slot = _slot_of(load)
    span = float(load["time_s"].max()) + slot
    wanted = span / LOAD_WINDOWS
    nice = next((w for w in _NICE_WIDTHS if w >= wanted), _NICE_WIDTHS[-1])
    return max(slot, slot * np.ceil(nice / slot))


@styled
def staleness(frame: pd.DataFrame, palette: Palette, folder: Path) -> str | None:
    """Share of sampled views showing a wrong status, over time."""
    if frame.empty:
        return None
    audiences = list(dict.fromkeys(frame["audience"]))
    fig, axes = figure(1, len(audiences), width=4.8 * len(audiences), height=3.6)
    for axis, audience in zip(axes[0], audiences, strict=True):
        part = frame[frame["audience"] == audience]
        for (_, strategy), rows in strategy_groups(part):
            axis.plot(
                rows["time_s"], rows["stale_share"], **palette.line(audience, strategy)
            )
        _percent_axis(axis)
        axis.set_ylim(bottom=0)
        axis.set_xlabel("simulated time (s)")
        axis.set_ylabel("share of views showing a wrong status")
        axis.set_title(f"Staleness, {audience}")
        axis.legend()
    return save(fig, folder, "staleness")


# What the system-message figure compares, and how its axes read.
SYSTEM_PANELS = (
    ("peak_gateway_rps", "peak gateway load", "requests/s"),
    ("junk", "junk left for offline users", "messages"),
    ("delay_p99_s", "delivery delay, p99", "delay"),
)


@styled
def system_messages(frame: pd.DataFrame, palette: Palette, folder: Path) -> str | None:
    """Push broadcast against pull at login, side by side per measure."""
    panels = [panel for panel in SYSTEM_PANELS if panel[0] in frame.columns]
    if frame.empty or not panels:
        return None
    fig, axes = figure(1, len(panels), width=3.2 * len(panels), height=3.0)
    names = broadcast_names(frame)
    colours = [palette.colour("system", str(mode)) for mode in frame["mode"]]
    for axis, (column, title, unit) in zip(axes[0], panels, strict=True):
        values = frame[column].astype(float).fillna(0.0)
        bars = axis.bar(names, values, color=colours, width=0.6)
        # A bar of zero is invisible, so every bar says its value.
        axis.bar_label(bars, [shown(v, column) for v in frame[column]], padding=2)
        axis.margins(y=0.15)
        _value_axis(axis, column)
        axis.set_title(title)
        axis.set_ylabel(unit)
        axis.set_xlabel("delivery mode")
        axis.grid(axis="x", visible=False)
    return save(fig, folder, "system_messages")


@styled
def capacity(plan: pd.DataFrame, folder: Path) -> str | None:
    """Servers per tier for each strategy, stacked into its total."""
    if plan.empty or not {"tier", "servers"} <= set(plan.columns):
        return None
    servers = plan.pivot_table(
        index=["audience", "strategy"],
        columns="tier",
        values="servers",
        aggfunc="sum",
        sort=False,
    ).fillna(0)
    names = [style.label(audience, strategy) for audience, strategy in servers.index]
    fig, axes = figure(width=8.5, height=0.42 * len(names) + 1.6)
    axis = axes[0, 0]
    left = np.zeros(len(names))
    for index, tier in enumerate(servers.columns):
        widths = servers[tier].to_numpy(dtype=float)
        colour = style.TIER_COLOURS[index % len(style.TIER_COLOURS)]
        axis.barh(names, widths, left=left, color=colour, label=str(tier), height=0.55)
        left += widths
    for row, total in enumerate(left):
        axis.annotate(
            count(total),
            (total, row),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
        )
    axis.invert_yaxis()
    axis.set_xlabel("servers")
    axis.set_title("Servers needed per strategy, by tier")
    axis.grid(axis="y", visible=False)
    axis.margins(x=0.08)
    handles, labels = axis.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    return save(fig, folder, "capacity")


# Dash patterns that tell apart the lines of one strategy in a sweep over
# several keys, one per combination of the keys not on the x axis.
_SWEEP_DASHES = ("-", "--", ":", "-.")


@styled
def sweep(
    aggregated: pd.DataFrame,
    key: str,
    others: list[str],
    metrics: list[tuple[str, str]],
    palette: Palette,
    folder: Path,
) -> str | None:
    """Each metric against the swept `key`, with its 95% interval as a band.

    `metrics` lists (column, axis label). A key with numbers is drawn on a
    numeric axis; any other key as evenly spaced categories. When the sweep
    has `others` keys too, each of their combinations draws its own line.

    Limitation: with several swept keys the lines multiply, and the figure
    gets crowded beyond a few values per key.
    """
    if aggregated.empty or not metrics:
        return None
    numeric = pd.to_numeric(aggregated[key], errors="coerce")
    if numeric.notna().all():
        positions = numeric
        ticks = None
    else:
        categories = list(dict.fromkeys(aggregated[key].astype(str)))
        positions = aggregated[key].astype(str).map(categories.index)
        ticks = categories
    frame = aggregated.assign(_x=positions.to_numpy())

    columns = min(3, len(metrics))
    rows = -(-len(metrics) // columns)
    fig, axes = figure(rows, columns, width=4.0 * columns, height=3.0 * rows + 0.5)
    combos = list(dict.fromkeys(map(tuple, frame[others].astype(str).to_numpy())))
    by = ("audience", "strategy", *others)
    for index, (column, title) in enumerate(metrics):
        axis = axes[index // columns, index % columns]
        for group, part in strategy_groups(frame, by):
            part = part.sort_values("_x")
            if part[column].isna().all():
                continue
            line = palette.line(*group[:2])
            combo = tuple(str(value) for value in group[2:])
            if others:
                line["linestyle"] = _SWEEP_DASHES[combos.index(combo) % 4]
                line["label"] += ", " + ", ".join(
                    f"{name}={value}" for name, value in zip(others, combo, strict=True)
                )
            axis.plot(part["_x"], part[column], marker="o", markersize=3, **line)
            axis.fill_between(
                part["_x"],
                part[f"{column}_ci_low"],
                part[f"{column}_ci_high"],
                color=line["color"],
                alpha=0.18,
                linewidth=0,
            )
        _value_axis(axis, column)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel(key)
        if ticks is not None:
            axis.set_xticks(range(len(ticks)), ticks)
    for index in range(len(metrics), rows * columns):
        axes[index // columns, index % columns].set_visible(False)
    _strategy_legend(fig, axes[0, 0])
    return save(fig, folder, f"sweep_{_file_safe(key)}")


def _file_safe(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_") or "key"
