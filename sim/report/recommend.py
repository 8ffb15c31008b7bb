"""The report's recommendation, written from the numbers of the run.

The rule is the reference article's advice made explicit: per audience, take
the strategy that shows a change soonest (lowest p99 propagation latency),
unless it costs more than `AFFORDABLE` times the work of the cheapest one,
in which case take the cheapest. Work is the servers a capacity plan found,
when the run made one; otherwise the jobs all tiers served; otherwise the
messages and requests the strategy exchanged with clients. System messages go
to whichever delivery mode puts less peak load on the gateways.

Limitation: the rule weighs freshness against cost with one fixed factor; an
audience whose freshness matters more or less than that should read the
comparison table rather than the verdict.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sim.report.values import count, is_missing, rate, seconds

# The freshest strategy is chosen while it costs at most this many times the
# work of the cheapest one.
AFFORDABLE = 2.0

RULE = (
    "How this is decided: per audience, the strategy with the lowest p99 "
    "propagation latency is chosen unless it costs more than "
    f"{AFFORDABLE:g} times the work of the cheapest strategy; then the "
    "cheapest is. Work is the servers of the capacity plan when there is one, "
    "else the jobs served by all tiers. For system messages, which tolerate "
    "delay, the mode with the lower peak gateway load is chosen."
)


@dataclass(frozen=True)
class Option:
    """One strategy of an audience, with the figures the verdict quotes."""

    name: str
    work: float
    latency_p99: float
    n_mean: float
    amplification: float


def _name(strategy: str) -> str:
    return strategy.replace("_", " ")


def work_of(
    strategies: pd.DataFrame, tiers: pd.DataFrame | None, plan: pd.DataFrame | None
) -> tuple[dict[tuple[str, str], float], str]:
    """Each strategy's cost, and the words that say what it counts."""
    if plan is not None and not plan.empty and "servers" in plan.columns:
        totals = plan.groupby(["audience", "strategy"], sort=False)["servers"].sum()
        return {key: float(value) for key, value in totals.items()}, "servers"
    if tiers is not None and not tiers.empty and "jobs" in tiers.columns:
        totals = tiers.groupby(["audience", "strategy"], sort=False)["jobs"].sum()
        return {key: float(value) for key, value in totals.items()}, "server jobs"
    exchanged = strategies.set_index(["audience", "strategy"])
    columns = [c for c in ("messages", "requests") if c in exchanged.columns]
    work = exchanged[columns].sum(axis=1)
    return {key: float(value) for key, value in work.items()}, "client messages"


def _get(row: Mapping[str, Any], column: str) -> float:
    value = row.get(column)
    return float("nan") if is_missing(value) else float(value)


Verdict = tuple[str, str]


def audience_verdict(audience: str, options: list[Option], unit: str) -> Verdict:
    """The choice for an audience, and the numbers behind it."""
    if len(options) == 1:
        only = options[0]
        return (
            f"{audience.capitalize()}: {_name(only.name)}.",
            f"It is the only {audience} strategy this run simulated. {_reach(only)}",
        )
    costed = [o for o in options if not is_missing(o.work)] or options
    cheapest = min(costed, key=lambda o: o.work)
    timed = [o for o in costed if not is_missing(o.latency_p99)]
    freshest = min(timed, key=lambda o: o.latency_p99) if timed else cheapest
    ratio = freshest.work / cheapest.work if cheapest.work > 0 else float("inf")
    chosen = freshest if ratio <= AFFORDABLE else cheapest
    others = [o for o in options if o is not chosen]

    if chosen is freshest and chosen is cheapest:
        why = (
            f"It is both the freshest ({_latency(chosen)}) and the cheapest "
            f"({count(chosen.work)} {unit}, against "
            + _against(others, lambda o: f"{count(o.work)} for {_name(o.name)}")
            + ")."
        )
    elif chosen is freshest:
        why = (
            f"It shows a change within {seconds(chosen.latency_p99)} at p99, "
            f"against {_against(others, _latency_of)}, for {ratio:.2g} times the "
            f"work of {_name(cheapest.name)} ({count(chosen.work)} against "
            f"{count(cheapest.work)} {unit})."
        )
    else:
        why = (
            f"{_name(freshest.name).capitalize()} would show changes sooner "
            f"({_latency(freshest)}) but costs {ratio:.3g} times the work "
            f"({count(freshest.work)} against {count(chosen.work)} {unit})."
        )
    return f"{audience.capitalize()}: {_name(chosen.name)}.", f"{why} {_reach(chosen)}"


def _latency(option: Option) -> str:
    return f"p99 latency {seconds(option.latency_p99)}"


def _latency_of(option: Option) -> str:
    if is_missing(option.latency_p99):
        return f"{_name(option.name)}, which shows statuses only when a user looks"
    return f"{seconds(option.latency_p99)} for {_name(option.name)}"


def _against(options: list[Option], phrase: Callable[[Option], str]) -> str:
    return ", ".join(phrase(option) for option in options)


def _reach(option: Option) -> str:
    if is_missing(option.n_mean):
        return (
            f"{_name(option.name).capitalize()} sends nothing when a status "
            f"changes; it exchanges {count(option.amplification)} messages per "
            "change with the clients that look."
        )
    return (
        f"Each change reaches N = {count(option.n_mean)} observers on average, "
        f"{count(option.amplification)} messages per change."
    )


def system_verdict(frame: pd.DataFrame) -> Verdict | None:
    """Push broadcast or pull at login, by the peak gateway load.

    Over several broadcasts, a mode counts its highest peak and delay and the
    sum of its junk.
    """
    if "peak_gateway_rps" not in frame.columns:
        return None
    totals = {
        column: how
        for column, how in (
            ("peak_gateway_rps", "max"),
            ("junk", "sum"),
            ("delivered", "sum"),
            ("delay_p99_s", "max"),
        )
        if column in frame.columns
    }
    per_mode = frame.groupby("mode", sort=False).agg(totals).reset_index()
    rows = {str(row["mode"]): row for row in per_mode.to_dict("records")}
    if len(rows) < 2:
        return None
    ranked = sorted(rows, key=lambda mode: _get(rows[mode], "peak_gateway_rps"))
    chosen, other = rows[ranked[0]], rows[ranked[1]]
    text = (
        f"Its peak gateway load is {rate(chosen['peak_gateway_rps'])} against "
        f"{rate(other['peak_gateway_rps'])} for {ranked[1]}"
    )
    if "junk" in frame.columns:
        text += (
            f"; it leaves {count(chosen['junk'])} junk messages for offline "
            f"users, against {count(other['junk'])}"
        )
    if "delivered" in frame.columns:
        text += (
            f"; it reaches {count(chosen['delivered'])} users before expiry, "
            f"against {count(other['delivered'])}"
        )
    if "delay_p99_s" in frame.columns:
        text += (
            f"; its p99 delivery delay is {seconds(chosen['delay_p99_s'])}, "
            f"against {seconds(other['delay_p99_s'])}"
        )
    return f"System messages: {ranked[0]}.", text + "."


def recommendation(
    strategies: pd.DataFrame | None,
    tiers: pd.DataFrame | None = None,
    plan: pd.DataFrame | None = None,
    system: pd.DataFrame | None = None,
) -> list[Verdict]:
    """(lead, text) pairs: a verdict per audience, system messages, the rule.

    The rule comes last, with an empty lead.
    """
    verdicts: list[Verdict] = []
    if strategies is not None and not strategies.empty:
        work, unit = work_of(strategies, tiers, plan)
        for audience in dict.fromkeys(strategies["audience"]):
            rows = strategies[strategies["audience"] == audience]
            options = [
                Option(
                    str(row["strategy"]),
                    work.get((audience, row["strategy"]), float("nan")),
                    _get(row, "latency_p99_s"),
                    _get(row, "n_mean"),
                    _get(row, "amplification"),
                )
                for row in rows.to_dict("records")
            ]
            verdicts.append(audience_verdict(str(audience), options, unit))
    if system is not None and not system.empty:
        verdict = system_verdict(system)
        if verdict is not None:
            verdicts.append(verdict)
    if verdicts:
        verdicts.append(("", RULE))
    return verdicts
