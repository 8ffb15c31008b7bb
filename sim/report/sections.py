"""The report's sections, each built from the tables it draws on.

A section whose table the run did not produce still appears, with a one-line
note saying so, so every report has the same outline and a reader learns what
a richer scenario would add.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from sim.comparison import side_by_side
from sim.report import figures
from sim.report.blocks import (
    Cell,
    Facts,
    Figure,
    Paragraph,
    Section,
    Table,
    frame_table,
)
from sim.report.comparison import (
    COMPANIONS,
    IDENTITY,
    STRATEGY_MEASURES,
    comparison_tables,
    system_table,
)
from sim.report.recommend import recommendation
from sim.report.style import Palette
from sim.report.values import count, seconds, share, shown
from sim.units import format_duration

# Where a sweep's aggregated table may be found, first match wins.
SWEEP_TABLES = ("sweep_strategies", "sweep_summary", "sweep_aggregated", "sweep")


@dataclass
class Inputs:
    """Everything a section may draw on."""

    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    palette: Palette
    figure_dir: Path

    def table(self, name: str) -> pd.DataFrame | None:
        """A table the run wrote, or None when it wrote none of that name."""
        return self.tables.get(name)

    @property
    def settings(self) -> dict[str, Any]:
        return self.summary.get("scenario_settings") or {}


def missing(name: str, what: str) -> str:
    """The one-line note of a section whose table the run did not write."""
    return f"This run wrote no tables/{name}.parquet, so there is no {what} to show."


def _events(workload: dict[str, Any]) -> Any:
    """User events of the workload; runs before the full protocol said changes."""
    return workload.get("events", workload.get("changes"))


def headline(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The few figures shown first: how big and how long the run was."""
    graph = summary.get("graph", {})
    workload = summary.get("workload", {})
    return [
        ("users", count(graph.get("users"))),
        ("simulated time", format_duration(float(summary.get("duration_s", 0.0)))),
        ("online on average", share(workload.get("mean_online_fraction"))),
        ("user events", count(_events(workload))),
        ("friend arcs", count(graph.get("arcs"))),
        ("groups", count(graph.get("groups"))),
    ]


def recommendation_section(inputs: Inputs) -> Section:
    section = Section("recommendation", "Recommendation", "Recommendation")
    paragraphs = recommendation(
        inputs.table("strategies"),
        inputs.table("tiers"),
        inputs.table("plan"),
        inputs.table("system_messages"),
    )
    section.blocks = [
        Paragraph(text, lead, aside=not lead) for lead, text in paragraphs
    ]
    if not paragraphs:
        section.note = missing("strategies", "strategy to recommend")
    return section


def _degree_facts(degrees: pd.DataFrame | None, direction: str) -> str:
    if degrees is None or degrees.empty:
        return "-"
    rows = degrees[degrees["direction"] == direction]
    users = rows["users"].sum()
    if users == 0:
        return "-"
    mean = (rows["degree"] * rows["users"]).sum() / users
    return f"mean {count(mean)}, max {count(rows['degree'].max())}"


def _length(spec: Any) -> str:
    """A service or session length setting, as the scenario would say it."""
    if not isinstance(spec, dict):
        return str(spec)
    mean = format_duration(float(spec.get("mean", 0.0)))
    kind = spec.get("distribution", "fixed")
    if kind == "fixed":
        return mean
    if kind == "lognormal":
        return f"lognormal, mean {mean}, cv {spec.get('cv', 1.0):g}"
    return f"{kind}, mean {mean}"


def tier_settings(settings: dict[str, Any]) -> Table | None:
    """Servers, workers and service times of every tier the scenario sets."""
    rows = []
    for tier, spec in (settings.get("tiers") or {}).items():
        if not isinstance(spec, dict):
            continue
        times = ", ".join(
            f"{op} {_length(value)}"
            for op, value in spec.items()
            if isinstance(value, dict) and "mean" in value
        )
        rows.append(
            (
                Cell(str(tier), numeric=False),
                Cell(count(spec.get("servers"))),
                Cell(count(spec.get("workers"))),
                Cell(times or "-", numeric=False),
            )
        )
    if not rows:
        return None
    header = ("tier", "servers", "workers per server", "service time per job")
    return Table(header, tuple(rows))


def scenario_section(inputs: Inputs) -> Section:
    summary, settings = inputs.summary, inputs.settings
    graph = summary.get("graph", {})
    workload = summary.get("workload", {})
    population = settings.get("population", {})
    strategies = settings.get("strategies", {})
    degrees = inputs.table("degrees")
    facts = [
        ("simulated time", format_duration(float(summary.get("duration_s", 0.0)))),
        ("seed", str(summary.get("seed", "-"))),
    ]
    if summary.get("replications"):
        facts.append(("replications", count(summary["replications"])))
    if settings.get("warmup"):
        facts.append(("warm-up, not counted", seconds(settings["warmup"])))
    facts += [
        ("graph", str(graph.get("source", "-"))),
        ("users", count(graph.get("users"))),
        ("friend arcs", count(graph.get("arcs"))),
        ("out-degree (friends added)", _degree_facts(degrees, "out")),
        ("in-degree (reverse friends)", _degree_facts(degrees, "in")),
        ("reciprocity (arcs whose reverse exists)", share(graph.get("reciprocity"))),
        (
            "groups",
            f"{count(graph.get('groups'))}, mean size "
            f"{count(graph.get('mean_group_size'))}",
        ),
        (
            "online fraction",
            f"{share(workload.get('mean_online_fraction'))} over the run "
            f"(target {share(population.get('online_fraction'))})",
        ),
        ("sessions", _length(population.get("session"))),
        (
            "user events",
            f"{count(_events(workload))} ({count(workload.get('logins'))} logins"
            + (
                f", {count(workload['sessions'])} sessions)"
                if "sessions" in workload
                else ")"
            ),
        ),
        ("group visits", count(workload.get("group_visits"))),
        (
            "group visits per online hour",
            count((settings.get("behaviour") or {}).get("group_visits_per_hour")),
        ),
        ("friend strategies", ", ".join(strategies.get("friends", [])) or "-"),
        ("group strategies", ", ".join(strategies.get("groups", [])) or "-"),
        ("poll interval", seconds(strategies.get("poll_interval"))),
        (
            "network hop delay",
            seconds((settings.get("network") or {}).get("hop_delay")),
        ),
    ]
    section = Section("scenario", "Scenario", "Scenario", [Facts(tuple(facts))])
    picture = (
        figures.degree_distribution(degrees, inputs.figure_dir)
        if degrees is not None
        else None
    )
    if picture:
        section.blocks.append(
            Figure(
                picture,
                "Degree distributions as complementary CDFs on log-log axes: the "
                "share of users with at least k friends (out-degree) or at least k "
                "reverse friends (in-degree). Push fans out along in-degrees.",
            )
        )
    else:
        section.note = missing("degrees", "degree distribution")
    tiers = tier_settings(settings)
    if tiers is not None:
        section.blocks.append(tiers)
    return section


def comparison_section(inputs: Inputs) -> Section:
    section = Section("comparison", "Strategy comparison", "Comparison")
    strategies = inputs.table("strategies")
    if strategies is None or strategies.empty:
        section.note = missing("strategies", "comparison")
        return section
    section.blocks.append(
        Paragraph(
            "N is the storm diffusion factor: the observers one status change is "
            "carried to. Messages count every presence message sent to clients "
            "(pushes, poll replies, pull replies). Latency runs from a change to "
            "the moment an observer's view shows it; for polling it is the wait "
            "for the next poll. A strategy that sends nothing on a change has no N "
            "and no latency. Every strategy ran on its own copy of the tiers, on "
            "the same workload. Highlighted: the best value of a row, where lower "
            "(or, for deliveries, higher) is better; N describes how far a change "
            "reaches, so it has no best."
        )
    )
    if not any(c.endswith("_ci_low") for c in strategies.columns):
        section.note = (
            "This run has one replication, so the table shows no confidence intervals."
        )
    section.blocks += comparison_tables(strategies, inputs.table("tiers"))
    return section


def prediction_table(pairs: pd.DataFrame) -> Table:
    """Simulated and predicted values, each shown in its figure's own unit."""
    rows = tuple(
        (
            Cell(str(row["audience"]), numeric=False),
            Cell(str(row["strategy"]), numeric=False),
            Cell(str(row["figure"]), numeric=False),
            Cell(shown(row["simulated"], str(row["figure"]))),
            Cell(shown(row["predicted"], str(row["figure"]))),
            Cell(str(row["rel. error"])),
        )
        for row in pairs.to_dict("records")
    )
    header = ("audience", "strategy", "figure", "simulated", "predicted", "error")
    return Table(header, rows)


def predictions_section(inputs: Inputs) -> Section:
    """Every predicted figure beside its simulated value, and the reasons
    they differ where a known reason applies."""
    section = Section("predictions", "Predictions beside the simulation", "Predictions")
    strategies, tiers = inputs.table("strategies"), inputs.table("tiers")
    frames = [t for t in (strategies, tiers) if t is not None]
    if not any(c.endswith("_predicted") for t in frames for c in t.columns):
        section.note = (
            "This run's tables hold no closed-form predictions (no M_predicted "
            "columns), so there is nothing to set beside the simulation."
        )
        return section
    predictions = inputs.summary.get("predictions") or {}
    basis = f" Basis: {predictions['basis']}." if predictions.get("basis") else ""
    section.blocks.append(
        Paragraph(
            "Closed-form predictions of the simulated figures (as presence-sim "
            "estimate prints them) and the relative error (simulated - "
            "predicted) / predicted. Waits far below a millisecond come from rare "
            "coincidences of arrivals, so their relative errors say little." + basis
        )
    )
    empty = pd.DataFrame(columns=["audience", "strategy", "tier"])
    pairs = side_by_side(
        strategies if strategies is not None else empty,
        tiers if tiers is not None else empty,
    )
    section.blocks.append(prediction_table(pairs))
    notes = predictions.get("notes") or []
    if notes:
        section.blocks.append(Paragraph("Where they differ, and why:"))
        section.blocks += [Paragraph(note, aside=True) for note in notes]
    else:
        section.blocks.append(
            Paragraph("Every checked figure is within chance of its prediction.")
        )
    return section


@dataclass(frozen=True)
class FigureSection:
    """A section built around one figure drawn from one table.

    `draw` takes the table and the inputs and returns the figure's name, or
    None when the table holds nothing to draw; `what` names what the section
    shows, for the note when the table is missing.
    """

    id: str
    title: str
    short: str
    table: str
    draw: Callable[[pd.DataFrame, Inputs], str | None]
    caption: str
    what: str


def figure_section(
    spec: FigureSection, inputs: Inputs, caption: str | None = None
) -> Section:
    """The section of `spec`: its figure, or the note that its table is missing
    or empty. `caption` replaces the spec's own when given."""
    section = Section(spec.id, spec.title, spec.short)
    table = inputs.table(spec.table)
    name = spec.draw(table, inputs) if table is not None else None
    if name:
        section.blocks.append(Figure(name, caption or spec.caption))
    elif table is None:
        section.note = missing(spec.table, spec.what)
    else:
        section.note = (
            f"This run's tables/{spec.table}.parquet has no rows, so there is no "
            f"{spec.what} to show."
        )
    return section


N_FIGURE = FigureSection(
    "n-distribution",
    "Storm diffusion factor N",
    "N",
    "n_histogram",
    lambda t, i: figures.n_distribution(t, i.palette, i.figure_dir),
    "Share of status changes by the number of observers each reached, on a "
    "logarithmic N axis; the dotted lines mark each strategy's mean.",
    "N distribution",
)
LATENCY_FIGURE = FigureSection(
    "latency",
    "Propagation latency",
    "Latency",
    "latency_histogram",
    lambda t, i: figures.latency_cdf(t, i.palette, i.figure_dir),
    "Share of observers whose view shows a change within a given time, on a "
    "logarithmic time axis. Strategies that push nothing have no curve.",
    "latency distribution",
)
LOAD_FIGURE = FigureSection(
    "load",
    "Load over time",
    "Load",
    "load",
    lambda t, i: figures.load_over_time(
        t, fault_spans(i.table("faults"), i.settings), i.palette, i.figure_dir
    ),
    "",
    "load time series",
)
STALENESS_FIGURE = FigureSection(
    "staleness",
    "Staleness",
    "Staleness",
    "staleness",
    lambda t, i: figures.staleness(t, i.palette, i.figure_dir),
    "Share of sampled views showing a wrong status over simulated time: "
    "observer-friend pairs while the observer is connected, and for groups "
    "sampled group visits while the group is open.",
    "staleness measurement",
)
SYSTEM_FIGURE = FigureSection(
    "system-messages",
    "System messages",
    "System messages",
    "system_messages",
    lambda t, i: figures.system_messages(t, i.palette, i.figure_dir),
    "A broadcast pushed to every online user at once, against the same message "
    "pulled by each user at login.",
    "system-message comparison",
)
CAPACITY_FIGURE = FigureSection(
    "capacity",
    "Capacity plan",
    "Capacity",
    "plan",
    lambda t, i: figures.capacity(t, i.figure_dir),
    "The fewest servers per tier that meet the scenario's SLOs, per strategy.",
    "capacity plan (run presence-sim plan)",
)


def fault_spans(
    faults: pd.DataFrame | None, settings: dict[str, Any]
) -> pd.DataFrame | None:
    """One row per fault: its kind, the tier it hits, its start and end.

    The `faults` table may hold a row per fault and strategy and tier; the
    tier a fault hits comes from the scenario (a crash hits the gateway, a
    slowdown names its tier), else from the table when it names one tier.
    """
    if faults is None or faults.empty:
        return None
    key = "fault" if "fault" in faults.columns else ["kind", "start_s", "end_s"]
    scheduled = settings.get("faults") or []
    rows = []
    for index, (_, part) in enumerate(faults.groupby(key, sort=False)):
        first = part.iloc[0]
        number = int(first["fault"]) if "fault" in part.columns else index
        spec = scheduled[number] if number < len(scheduled) else {}
        tier = spec.get("tier")
        if tier is None and first["kind"] == "gateway_crash":
            tier = "gateway"
        if tier is None and "tier" in part.columns and part["tier"].nunique() == 1:
            tier = first["tier"]
        rows.append(
            {
                "kind": first["kind"],
                "tier": tier,
                "start_s": first["start_s"],
                "end_s": first["end_s"],
            }
        )
    return pd.DataFrame(rows)


def load_section(inputs: Inputs) -> Section:
    faults = inputs.table("faults")
    load = inputs.table("load")
    window = figures.load_window(load) if load is not None and not load.empty else 0
    caption = (
        "Requests per second reaching each tier, per strategy: lines are means "
        f"over {format_duration(window)} windows, shading reaches the busiest "
        "slot of each window. The axes are logarithmic, and linear from 0 to 1 "
        "where a tier sees less than one request per second."
    )
    if faults is not None and not faults.empty:
        caption += " Shaded spans and dash-dotted lines mark the scheduled faults."
    section = figure_section(LOAD_FIGURE, inputs, caption)
    if faults is not None and not faults.empty:
        section.blocks.append(
            frame_table(
                faults,
                caption="Faults: load before and at the peak, worst wait and time "
                "to drain, per strategy and tier.",
            )
        )
    tiers = inputs.table("tiers")
    if tiers is not None and not tiers.empty:
        # Servers and workers are settings, shown with the scenario, and the
        # predictions have their own section.
        measured = tiers[
            [
                column
                for column in tiers.columns
                if column not in ("servers", "workers")
                and not column.endswith(COMPANIONS)
            ]
        ]
        section.blocks.append(
            frame_table(
                measured,
                caption="Per strategy and tier: jobs served, requests per second, "
                "utilisation and queueing.",
            )
        )
    return section


def system_section(inputs: Inputs) -> Section:
    section = figure_section(SYSTEM_FIGURE, inputs)
    frame = inputs.table("system_messages")
    if frame is not None and not frame.empty:
        section.blocks.append(system_table(frame))
    return section


def capacity_section(inputs: Inputs) -> Section:
    section = figure_section(CAPACITY_FIGURE, inputs)
    plan = inputs.table("plan")
    if plan is not None and not plan.empty:
        section.blocks.append(frame_table(plan, caption="Capacity plan."))
    return section


def sweep_keys(summary: dict[str, Any], frame: pd.DataFrame) -> list[str]:
    """The swept scenario keys: from the summary, else the dotted columns."""
    sweep = summary.get("sweep")
    if isinstance(sweep, dict) and sweep.get("keys"):
        return [key for key in sweep["keys"] if key in frame.columns]
    return [column for column in frame.columns if "." in column]


def sweep_section(inputs: Inputs) -> Section:
    section = Section("sweep", "Sweep", "Sweep")
    frame = next(
        (inputs.tables[name] for name in SWEEP_TABLES if name in inputs.tables), None
    )
    if frame is None:
        section.note = "This run is not a sweep, so there is no sweep to show."
        return section
    keys = sweep_keys(inputs.summary, frame)
    labels = {m.column: m.label for m in STRATEGY_MEASURES}
    measures = [
        (column, labels.get(column, column.replace("_", " ")))
        for column in frame.columns
        if f"{column}_ci_low" in frame.columns
        and f"{column}_ci_high" in frame.columns
        and column not in IDENTITY
        and not column.endswith(COMPANIONS)
    ]
    order = {m.column: i for i, m in enumerate(STRATEGY_MEASURES)}
    measures.sort(key=lambda m: order.get(m[0], len(order)))
    if not keys or not measures:
        section.note = (
            "The sweep table names no swept key or no measure with an interval."
        )
        return section
    for key in keys:
        others = [k for k in keys if k != key]
        name = figures.sweep(
            frame, key, others, measures, inputs.palette, inputs.figure_dir
        )
        if name:
            section.blocks.append(
                Figure(
                    name,
                    f"Each measure against {key}; bands are 95% confidence "
                    "intervals over the replications.",
                )
            )
    return section


SECTIONS: tuple[Callable[[Inputs], Section], ...] = (
    recommendation_section,
    scenario_section,
    comparison_section,
    partial(figure_section, N_FIGURE),
    partial(figure_section, LATENCY_FIGURE),
    load_section,
    partial(figure_section, STALENESS_FIGURE),
    system_section,
    capacity_section,
    sweep_section,
    predictions_section,
)


def build_sections(inputs: Inputs) -> list[Section]:
    """Every section of the report, in reading order."""
    return [build(inputs) for build in SECTIONS]
