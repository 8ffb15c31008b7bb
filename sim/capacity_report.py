"""A capacity plan as tables, advice and a Markdown report.

The `plan` table has one row per audience, strategy and tier, with the
strategy's totals and SLO figures repeated on each of its rows, so that a
notebook can group or pivot it either way. `plan_runs` keeps every trial of
the search.
"""

import logging
import math
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sim import __version__
from sim.capacity import THIN_USERS_PER_SERVER, Key, Plan, Trial
from sim.output import check_out_dir, staged_folder, write_json, write_tables
from sim.units import format_duration

log = logging.getLogger(__name__)

PLAN_COLUMNS = [
    "audience",
    "strategy",
    "tier",
    "servers",
    "workers",
    "servers_predicted",
    "utilisation_peak",
    "utilisation_mean",
    "wait_p99_s",
    "jobs_per_s",
    "total_servers",
    "messages_per_s",
    "peak_messages_per_s",
    "bandwidth_bytes_per_s",
    "n_mean",
    "latency_p99_s",
    "login_latency_p99_s",
    "slo_met",
    "slo_missed",
    "confirmed",
    "target_users",
    "simulated_users",
    "scale_factor",
]


def _missed(trial: Trial) -> str:
    """The objectives a trial missed, as one comma-separated string."""
    verdict = trial.verdict
    names = [
        f"{tier} {miss}"
        for tier, misses in verdict.tier_misses.items()
        for miss in misses
    ]
    return ", ".join(names + verdict.misses)


def plan_table(plan: Plan) -> pd.DataFrame:
    """One row per (audience, strategy, tier) of the plan."""
    rows = []
    settings = plan.settings
    for key in plan.keys:
        trial = plan.chosen[key]
        reading = trial.reading
        servers = plan.servers[key]
        for tier, count in servers.items():
            figures = reading.tiers[tier]
            # Figures were read at the trial's count; utilisation goes as 1/s
            # where the plan settled on another (an unconfirmed plan).
            ratio = figures.servers / count
            rows.append(
                {
                    "audience": key[0],
                    "strategy": key[1],
                    "tier": tier,
                    "servers": count,
                    "workers": figures.workers,
                    "servers_predicted": plan.predicted[key][tier],
                    "utilisation_peak": figures.utilisation_peak * ratio,
                    "utilisation_mean": figures.utilisation_mean * ratio,
                    "wait_p99_s": figures.wait_p99,
                    "jobs_per_s": figures.jobs_per_s,
                    "total_servers": sum(servers.values()),
                    "messages_per_s": reading.messages_per_s,
                    "peak_messages_per_s": reading.peak_messages_per_s,
                    "bandwidth_bytes_per_s": reading.bytes_per_s,
                    "n_mean": reading.n_mean,
                    "latency_p99_s": reading.latency_p99,
                    "login_latency_p99_s": reading.login_p99,
                    "slo_met": trial.verdict.met,
                    "slo_missed": _missed(trial),
                    "confirmed": plan.confirmed[key],
                    "target_users": settings.target_users,
                    "simulated_users": settings.simulated_users,
                    "scale_factor": settings.scale,
                }
            )
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


def runs_table(plan: Plan) -> pd.DataFrame:
    """Every trial of the search: what was tried and what it showed."""
    rows = []
    for key, trial in plan.trials:
        for tier, figures in trial.reading.tiers.items():
            rows.append(
                {
                    "run": trial.run,
                    "audience": key[0],
                    "strategy": key[1],
                    "tier": tier,
                    "servers": trial.servers[tier],
                    "utilisation_peak": figures.utilisation_peak,
                    "wait_p99_s": figures.wait_p99,
                    "latency_p99_s": trial.reading.latency_p99,
                    "login_latency_p99_s": trial.reading.login_p99,
                    "tier_missed": ", ".join(trial.verdict.tier_misses[tier]),
                    "slo_met": trial.verdict.met,
                }
            )
    return pd.DataFrame(rows)


# --- Words -------------------------------------------------------------------


def _count(value: float) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _seconds(value: float) -> str:
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "unbounded"
    return format_duration(float(f"{value:.3g}"))


def _rate(bytes_per_s: float) -> str:
    """Bytes a second in decimal units, e.g. 1.2 GB/s."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if bytes_per_s >= size:
            return f"{bytes_per_s / size:.3g} {unit}/s"
    return f"{bytes_per_s:.3g} B/s"


def _label(key: Key) -> str:
    return f"{key[0]} {key[1].replace('_', ' ')}"


def _total(plan: Plan, key: Key) -> int:
    return sum(plan.servers[key].values())


def scaling_notes(plan: Plan) -> list[str]:
    """How the plan went from the simulated population to the target, and
    where that reasoning stops holding."""
    settings, scenario = plan.settings, plan.scenario
    k = settings.scale
    surges = bool(scenario.faults or scenario.system_messages)
    peaks = (
        "Peaks keep their simulated excess over the mean: the scenario's faults "
        "or system messages are surges every user takes part in."
        if surges
        else "A peak's excess over the mean is divided by sqrt(k) = "
        f"{math.sqrt(k):.3g}, as the fluctuations of independent users add up "
        "as the square root of their number."
    )
    notes = [
        f"Scaled from {settings.simulated_users:,} simulated users to "
        f"{settings.target_users:,} (scale factor k = {k:.6g}): per-user load is "
        "held constant and servers scale with it. The simulation keeps the "
        f"target's server counts and makes every service time and network hop "
        f"{k:.6g} times longer, so each simulated server carries the load of one "
        "target server: utilisations read as they are, waits and latencies are "
        f"divided by k. {peaks}"
    ]

    # Where the assumption breaks.
    n_figures = [
        f"{_label(key)} N = {plan.chosen[key].reading.n_mean:.3g}"
        for key in plan.keys
        if key[1] in ("push", "push_dedup") and key[0] != "system"
    ]
    if n_figures:
        notes.append(
            "N does not grow with users: it is the share online times a user's "
            "reverse friends or group co-members ("
            + ", ".join(n_figures)
            + "). Where friend lists, groups or the share online grow with the "
            "service, N and every push tier grow faster than the user count; "
            "plan again with those figures."
        )
    notes.append(
        "Service times are held constant: a tier whose per-server latency rises "
        "with load or with the data it holds (a cache or database whose working "
        "set outgrows memory) needs more servers than planned."
    )
    key, tier = max(
        ((key, tier) for key in plan.keys for tier in plan.servers[key]),
        key=lambda pair: plan.servers[pair[0]][pair[1]],
    )
    busiest = plan.servers[key][tier]
    per_server = settings.simulated_users / busiest
    thin = per_server < THIN_USERS_PER_SERVER
    notes.append(
        f"Small simulated populations: the most servers planned for one tier "
        f"are {busiest:,} ({_label(key)}, {tier}), {per_server:,.0f} simulated "
        "users each; "
        + (
            f"under {THIN_USERS_PER_SERVER} a server's arrivals come from too few "
            "users to be steady, so raise capacity.simulated_users."
            if thin
            else f"above {THIN_USERS_PER_SERVER}, enough for steady arrivals."
        )
    )
    notes.append(
        "Work timed by the load slots (polls, heartbeats) is not slowed with the "
        "servers: the scale model sees it spread over each slot, as clients at "
        "their own phases would send it."
    )
    if scenario.graph.kind != "synthetic":
        notes.append(
            "The target is taken to have the degree distribution and groups of "
            "the graph read from files."
        )
    for key in plan.keys:
        if not plan.confirmed[key]:
            notes.append(
                f"{_label(key)}: the search stopped after {plan.runs} runs before "
                "a run confirmed the fewest servers; the counts shown are the last "
                "ones tried (raise capacity.runs)."
            )
        trial = plan.chosen[key]
        if "propagation" in trial.verdict.unreachable:
            notes.append(
                f"{_label(key)}: p99 propagation is "
                f"{_seconds(trial.reading.latency_p99)}, set by its "
                f"{'poll interval' if key[1] == 'poll' else 'service times'}; no "
                f"server count meets the {_seconds(scenario.slo.propagation_p99)} "
                "objective."
            )
    return notes


@dataclass(frozen=True)
class Advice:
    """The strategy recommended for one audience, and why."""

    audience: str
    choice: str
    text: str


def advise(plan: Plan) -> list[Advice]:
    """A recommendation per audience, in the reference article's spirit: the
    cheapest strategy that meets every SLO, its deciding numbers beside the
    others'. Strategies that show statuses only when asked (lazy pull) are
    not held to the propagation objective."""
    advice = []
    gateways = max(servers["gateway"] for servers in plan.servers.values())
    for audience in dict.fromkeys(key[0] for key in plan.keys):
        if audience == "system":
            continue
        options = [key for key in plan.keys if key[0] == audience]
        meeting = [key for key in options if plan.chosen[key].verdict.met]
        pool = meeting or options
        choice = min(pool, key=lambda key: _total(plan, key))
        text = _why(plan, choice, options, bool(meeting))
        text += " " + _principle(plan, audience)
        advice.append(Advice(audience, choice[1], text))
        if audience == "friends":
            gateways = plan.servers[choice]["gateway"]
    advice.append(_system_advice(plan, gateways))
    return advice


def _figures(plan: Plan, key: Key) -> str:
    reading = plan.chosen[key].reading
    parts = [f"{_total(plan, key):,} servers"]
    if not math.isnan(reading.n_mean):
        parts.append(f"N = {reading.n_mean:.3g}")
    parts.append(f"{_count(reading.messages_per_s)} messages/s")
    if not math.isnan(reading.latency_p99):
        parts.append(f"p99 propagation {_seconds(reading.latency_p99)}")
    return ", ".join(parts)


def _why(plan: Plan, choice: Key, options: list[Key], met: bool) -> str:
    opening = (
        f"{choice[1].replace('_', ' ').capitalize()}: it meets every SLO with "
        if met
        else f"{choice[1].replace('_', ' ').capitalize()}: no strategy meets every "
        "SLO; it is the one needing fewest servers, "
    )
    text = opening + _figures(plan, choice) + "."
    for key in options:
        if key == choice:
            continue
        trial = plan.chosen[key]
        ratio = _total(plan, key) / max(1, _total(plan, choice))
        missed = _missed(trial)
        text += (
            f" {key[1].replace('_', ' ').capitalize()} would need "
            f"{_figures(plan, key)} ({ratio:.2g} times the servers)"
            + (f", missing {missed}" if missed else "")
            + "."
        )
    return text


def _principle(plan: Plan, audience: str) -> str:
    scenario = plan.scenario
    if audience == "friends":
        return (
            "Push friend status where freshness matters, poll where it does not: "
            "a poll shows a change only at the next poll, so it meets a "
            "propagation objective no shorter than its interval "
            f"({_seconds(scenario.strategies.poll_interval)}), and then the "
            "cheaper of the two wins. N, the online reverse friends per change, "
            "decides what push costs."
        )
    return (
        "N decides: a group push reaches the online members of every group of "
        "the user, so its cost grows with groups x size x the share online, "
        "while a lazy pull costs one pull per group opened and its view is "
        "fresh only while the group is open."
    )


def _system_advice(plan: Plan, gateways: int) -> Advice:
    """Push broadcast or pull at login, from the target's numbers on the
    gateways planned for friends (or the most any strategy needs), and from
    the simulated plan when the scenario has system messages."""
    scenario, settings = plan.scenario, plan.settings
    online = plan.estimate.online_fraction * settings.target_users
    logins = plan.estimate.changes_per_second / 2
    workers = scenario.tiers.gateway.workers
    drain = online * scenario.tiers.gateway.deliver.mean / (gateways * workers)
    text = (
        f"a push broadcast sends {online:,.0f} messages at once, one per online "
        f"user: {_seconds(drain)} of every worker of {gateways:,} "
        f"gateway{'s' if gateways != 1 else ''} ({workers} workers each) doing "
        "nothing else, and "
        f"{settings.target_users - online:,.0f} messages stored for offline users, "
        "junk for those who do not return before it expires. Pulled at login, "
        f"the same message costs one request and reply per login, "
        f"{_count(logins)} a second, spread as logins are, and nothing is stored."
    )
    simulated = [key for key in plan.keys if key[0] == "system"]
    choice = "pull"
    if simulated:
        totals = {key[1]: _total(plan, key) for key in simulated}
        peaks = {
            key[1]: plan.chosen[key].reading.tiers["gateway"].utilisation_peak
            for key in simulated
        }
        choice = min(totals, key=lambda mode: (totals[mode], mode != "pull"))
        text += (
            " Simulated with the scenario's system messages, push needs "
            f"{totals.get('push', 0):,} servers (gateway peak utilisation "
            f"{peaks.get('push', math.nan):.2f} at their counts) and pull "
            f"{totals.get('pull', 0):,} ({peaks.get('pull', math.nan):.2f})."
        )
    return Advice("system", choice, f"{choice.capitalize()}: {text}")


# --- The report and the output folder ----------------------------------------


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def strategy_rows(plan: Plan) -> list[list[str]]:
    """One row of words per strategy: servers per tier, totals, SLO figures."""
    rows = []
    for key in plan.keys:
        trial, servers = plan.chosen[key], plan.servers[key]
        reading = trial.reading
        peak = max(
            reading.tiers[tier].utilisation_peak * reading.tiers[tier].servers / count
            for tier, count in servers.items()
        )
        rows.append(
            [
                _label(key),
                *(f"{servers[tier]:,}" for tier in servers),
                f"{_total(plan, key):,}",
                "met" if trial.verdict.met else "missed: " + _missed(trial),
                _count(reading.peak_messages_per_s),
                _rate(reading.bytes_per_s),
                _seconds(reading.latency_p99),
                _seconds(reading.login_p99),
                f"{peak:.2f}",
            ]
        )
    return rows


STRATEGY_HEADER = [
    "strategy",
    "gateway",
    "presence",
    "cache",
    "db",
    "total",
    "SLO",
    "peak msg/s",
    "bandwidth",
    "prop. p99",
    "login p99",
    "util.",
]
# Where the header splits into servers and figures, for narrow screens.
SERVER_COLUMNS = 7


def _objectives(plan: Plan) -> str:
    slo = plan.scenario.slo
    parts = [
        f"utilisation at most {slo.utilisation:g} over the busiest "
        f"{_seconds(slo.peak_window)}"
    ]
    for name, value in (
        ("p99 propagation", slo.propagation_p99),
        ("p99 login", slo.login_p99),
        ("p99 wait at any tier", slo.wait_p99),
    ):
        if value is not None:
            parts.append(f"{name} at most {_seconds(value)}")
    return "; ".join(parts)


def plan_markdown(plan: Plan, notes: list[str], advice: list[Advice]) -> str:
    """The plan as a Markdown report."""
    settings, scenario = plan.settings, plan.scenario
    detail = plan_table(plan)
    tier_rows = [
        [
            _label((row.audience, row.strategy)),
            row.tier,
            f"{row.servers:,} x {row.workers}",
            f"{row.servers_predicted:,}",
            f"{row.utilisation_peak:.2f}",
            _seconds(row.wait_p99_s),
            _count(row.jobs_per_s),
        ]
        for row in detail.itertuples(index=False)
    ]
    lines = [
        f"# presence-sim capacity plan: {scenario.name}",
        "",
        f"{settings.target_users:,} users, planned from a simulation of "
        f"{settings.simulated_users:,} (scale factor {settings.scale:.6g}) in "
        f"{plan.runs} run{'s' if plan.runs != 1 else ''} of "
        f"{_seconds(scenario.duration)}, seed {scenario.seed}.",
        "",
        f"Objectives: {_objectives(plan)}.",
        "",
        "## Servers per strategy",
        "",
        "Servers per tier at the target size; peak messages are those the "
        "gateways deliver to clients over the busiest window; bandwidth is the "
        "mean of all presence traffic.",
        "",
        _markdown_table(STRATEGY_HEADER, strategy_rows(plan)),
        "",
        "## Recommendation",
        "",
        *[f"- **{item.audience.capitalize()}**: {item.text}" for item in advice],
        "",
        "## Per tier",
        "",
        "`predicted` is the formula's first guess, before simulation.",
        "",
        _markdown_table(
            [
                "strategy",
                "tier",
                "servers x workers",
                "predicted",
                "peak util.",
                "wait p99",
                "jobs/s",
            ],
            tier_rows,
        ),
        "",
        "## How it was scaled, and where that breaks",
        "",
        *[f"- {note}" for note in notes],
        "",
    ]
    return "\n".join(lines)


def plan_summary(plan: Plan, notes: list[str], advice: list[Advice]) -> dict[str, Any]:
    scenario, settings = plan.scenario, plan.settings
    return {
        "kind": "plan",
        "scenario": scenario.name,
        "description": scenario.description,
        "seed": scenario.seed,
        "version": __version__,
        "python": platform.python_version(),
        "duration_s": scenario.duration,
        "target_users": settings.target_users,
        "simulated_users": settings.simulated_users,
        "scale_factor": settings.scale,
        "runs": plan.runs,
        "slo": scenario.slo.model_dump(mode="json"),
        "notes": notes,
        "recommendations": [
            {"audience": a.audience, "strategy": a.choice, "text": a.text}
            for a in advice
        ],
        "wall_seconds": round(plan.wall_seconds, 3),
        "scenario_settings": scenario.model_dump(mode="json"),
    }


def write_plan(plan: Plan, out_dir: Path) -> Path:
    """Write a plan's tables, summary and report into `out_dir`, replacing an
    earlier output there (see `sim.output.check_out_dir`)."""
    notes, advice = scaling_notes(plan), advise(plan)
    out_dir = check_out_dir(out_dir)
    with staged_folder(out_dir) as staging:
        write_tables(
            {"plan": plan_table(plan), "plan_runs": runs_table(plan)},
            staging / "tables",
        )
        write_json(plan_summary(plan, notes, advice), staging / "summary.json")
        (staging / "report.md").write_text(
            plan_markdown(plan, notes, advice), encoding="utf-8"
        )
    log.info("wrote %s", out_dir)
    return out_dir
