"""Predictions beside simulated figures, and why they differ where they do.

For every simulated figure M that has a formula, the run's tables gain the
columns `M_predicted` and `M_rel_error` = (simulated - predicted) / predicted.
A known reason for a difference (saturation, users who changed status being
more or less connected than average, an online share off its target) becomes
one sentence in the run's notes; a large difference with no known reason is
flagged, because it means a bug in the model or in the formula.
"""

import math
from typing import Any

import numpy as np
import pandas as pd

from sim.analytic import Estimate, estimate, scenario_profile
from sim.graph import SocialGraph
from sim.scenario import Scenario
from sim.workload import (
    LOGIN,
    LOGOUT,
    SWITCH,
    TIMEOUT,
    Workload,
    mean_online_fraction,
)

PREDICTED = "_predicted"
REL_ERROR = "_rel_error"

STRATEGY_KEYS = ["audience", "strategy"]
TIER_KEYS = ["audience", "strategy", "tier"]
# Figures whose difference from the prediction is checked for a reason.
CHECKED = ("changes", "messages", "requests", "n_mean", "latency_mean_s")
# Beyond this relative gap a deviation of the run's own inputs is worth a note.
NOTE_THRESHOLD = 0.02
# Utilisation from which a run's waits settle too slowly to match a formula.
NEAR_SATURATION = 0.9


def add_predictions(
    tables: dict[str, pd.DataFrame],
    scenario: Scenario,
    graph: SocialGraph,
    workload: Workload,
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The tables with predicted columns joined on, and the run's notes.

    The graph is used only for what a formula cannot know: the degrees of a
    real graph and its groups, and who changed status in this run.
    """
    predicted = estimate(scenario, scenario_profile(scenario, graph))
    window = scenario.duration - scenario.warmup
    strategy_rows = [
        {"audience": s.audience, "strategy": s.strategy, **s.figures(window)}
        for s in predicted.strategies
    ]
    tier_rows = [
        {
            "audience": s.audience,
            "strategy": s.strategy,
            "tier": tier.tier,
            "mean_rps": tier.jobs_per_second,
            "utilisation": tier.utilisation,
            "wait_mean_s": tier.wait_mean,
            "queue_mean": tier.queue_mean,
        }
        for s in predicted.strategies
        for tier in s.tiers
    ]
    tables = dict(tables)
    tables["strategies"] = join_predictions(
        tables["strategies"], pd.DataFrame(strategy_rows), STRATEGY_KEYS
    )
    tables["tiers"] = join_predictions(
        tables["tiers"], pd.DataFrame(tier_rows), TIER_KEYS
    )
    inputs = run_inputs(graph, workload, scenario.warmup)
    notes = explain(tables["strategies"], predicted, inputs, scenario)
    summary = {
        "basis": predicted.profile.basis,
        "online_fraction": predicted.online_fraction,
        "changes_per_second": predicted.changes_per_second,
        **inputs,
        "notes": notes,
    }
    return tables, summary


def join_predictions(
    simulated: pd.DataFrame, predicted: pd.DataFrame, keys: list[str]
) -> pd.DataFrame:
    """Append `M_predicted` and `M_rel_error` for each predicted figure M.

    A table without rows to join on (a run of system messages only) is
    returned as it is.
    """
    if predicted.empty or not set(keys) <= set(simulated.columns):
        return simulated
    figures = [c for c in predicted.columns if c not in keys and c in simulated]
    renamed = predicted.rename(columns={f: f + PREDICTED for f in figures})
    joined = simulated.merge(renamed, on=keys, how="left")
    for figure in figures:
        joined[figure + REL_ERROR] = relative_error(
            joined[figure].to_numpy(float), joined[figure + PREDICTED].to_numpy(float)
        )
    order = list(simulated.columns) + [
        f + suffix for f in figures for suffix in (PREDICTED, REL_ERROR)
    ]
    return joined[order]


def relative_error(simulated: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(simulated - predicted) / predicted; 0 when both are 0, NaN without a
    finite, non-zero prediction."""
    with np.errstate(divide="ignore", invalid="ignore"):
        error = (simulated - predicted) / predicted
    usable = np.isfinite(predicted) & (predicted != 0)
    error = np.where(usable, error, np.nan)
    return np.where((simulated == 0) & (predicted == 0), 0.0, error)


def is_prediction_column(name: str) -> bool:
    return name.endswith(PREDICTED) or name.endswith(REL_ERROR)


def run_inputs(
    graph: SocialGraph, workload: Workload, warmup: float = 0.0
) -> dict[str, float]:
    """What this run drew, against which its predictions can be read.

    The users behind the changes are uniform over users in expectation, but a
    run draws only so many; on a skewed real graph the handful of
    well-connected users who happen to change move N.
    """
    # Visible changes: logins, logouts and detected disconnects, after the
    # warm-up.
    kinds = np.isin(workload.event_kind, [LOGIN, LOGOUT, TIMEOUT, SWITCH])
    changers = workload.event_user[kinds & (workload.event_time >= warmup)]
    in_degree = graph.reverse.degrees()
    sizes = graph.members.degrees()
    slots = np.bincount(
        graph.members.indices,
        weights=np.repeat(sizes - 1, sizes),
        minlength=graph.users,
    )
    has_changes = len(changers) > 0
    return {
        "mean_in_degree": float(in_degree.mean()),
        "changers_mean_in_degree": float(in_degree[changers].mean())
        if has_changes
        else math.nan,
        "mean_group_slots": float(slots.mean()),
        "changers_mean_group_slots": float(slots[changers].mean())
        if has_changes
        else math.nan,
        "mean_online_fraction": mean_online_fraction(workload),
    }


def explain(
    strategies: pd.DataFrame,
    predicted: Estimate,
    inputs: dict[str, float],
    scenario: Scenario,
) -> list[str]:
    """One sentence per known reason for a difference, then the unexplained."""
    notes: list[str] = []
    p = predicted.online_fraction
    online_gap = inputs["mean_online_fraction"] / p - 1
    if abs(online_gap) > NOTE_THRESHOLD:
        notes.append(
            f"The share of users online over this run was "
            f"{inputs['mean_online_fraction']:.3g} against the configured {p:.3g} "
            f"({online_gap:+.1%}), a draw of a small population, and every N "
            f"scales with it."
        )

    audiences = set(strategies.get("audience", []))
    drawn = {
        "friends": ("reverse friends", "in_degree"),
        "groups": ("group co-member slots", "group_slots"),
    }
    drifted = abs(online_gap) > NOTE_THRESHOLD
    for audience, (what, name) in drawn.items():
        changers, overall = inputs[f"changers_mean_{name}"], inputs[f"mean_{name}"]
        gap = _gap(changers, overall)
        if abs(gap) <= NOTE_THRESHOLD or audience not in audiences:
            continue
        drifted = True
        notes.append(
            f"The users who changed status in this run have {changers:.3g} {what} "
            f"on average against {overall:.3g} over all users ({gap:+.1%}): on a "
            f"skewed graph the few well-connected users who happen to change move "
            f"{audience} N, as activity correlated with degree (the friendship "
            f"paradox) would."
        )

    saturated: set[tuple[str, str]] = set()
    for strategy in predicted.strategies:
        for tier in strategy.tiers:
            key = (strategy.audience, strategy.strategy)
            label = f"{strategy.audience} {strategy.strategy.replace('_', ' ')}"
            if tier.utilisation >= 1:
                saturated.add(key)
                notes.append(
                    f"{label}: the {tier.tier} tier is offered "
                    f"{tier.utilisation:.3g} times what it can serve, so its queue "
                    f"grows for the whole run and the simulated waits and latency "
                    f"depend on the run's length, not on a steady state."
                )
            elif tier.utilisation >= NEAR_SATURATION:
                notes.append(
                    f"{label}: the {tier.tier} tier runs at utilisation "
                    f"{tier.utilisation:.2f}, where waits settle so slowly that a "
                    f"run of this length may stay far from the formula."
                )

    explained = {"n_mean", "messages"} if drifted else set()
    notes += _unexplained(strategies, predicted, scenario, saturated, explained)
    return notes


def _gap(value: float, reference: float) -> float:
    if not (reference > 0) or math.isnan(value):
        return 0.0
    return value / reference - 1


def _unexplained(
    strategies: pd.DataFrame,
    predicted: Estimate,
    scenario: Scenario,
    saturated: set[tuple[str, str]],
    explained: set[str],
) -> list[str]:
    """Differences beyond what the run's size lets chance explain.

    The tolerance is 5% plus three standard errors: one from the number of
    changes, one from the share of users online, which all changes share.
    """
    users = predicted.profile.users
    p = predicted.online_fraction
    changes = max(predicted.changes_per_second * scenario.duration, 1.0)
    tolerance = 0.05 + 3 * (1 / math.sqrt(changes) + math.sqrt((1 - p) / (p * users)))
    omitted = omitted_features(scenario)
    notes = []
    for row in strategies.to_dict("records"):
        key = (row["audience"], row["strategy"])
        for figure in CHECKED:
            error = row.get(figure + REL_ERROR, math.nan)
            if math.isnan(error) or abs(error) <= tolerance:
                continue
            if figure in explained or (
                key in saturated and figure.startswith("latency")
            ):
                continue
            name = f"{row['audience']} {row['strategy'].replace('_', ' ')}"
            if omitted:
                notes.append(
                    f"{name}: {figure} differs from its prediction by {error:+.1%}; "
                    f"the formulas leave out {', '.join(omitted)}, which this "
                    "scenario uses."
                )
                continue
            notes.append(
                f"{name}: {figure} differs from its prediction by {error:+.1%}, "
                f"more than chance explains (tolerance {tolerance:.0%}) and with "
                "no known reason: a bug in the model or in the formula."
            )
    return notes


def omitted_features(scenario: Scenario) -> list[str]:
    """Features of the scenario that the closed-form predictions leave out."""
    behaviour = scenario.behaviour
    features = []
    if behaviour.status_switches_per_hour > 0:
        features.append("status switches")
    if behaviour.invisible_login_share > 0:
        features.append("invisible logins")
    if behaviour.abrupt_disconnect_share > 0:
        features.append("abrupt disconnects")
    if scenario.faults:
        features.append("faults")
    if scenario.strategies.group_refresh_interval > 0:
        features.append("lazy-pull refreshes")
    return features


def side_by_side(strategies: pd.DataFrame, tiers: pd.DataFrame) -> pd.DataFrame:
    """One row per predicted figure: simulated, predicted and relative error."""
    rows = []
    for frame, keys in ((strategies, STRATEGY_KEYS), (tiers, TIER_KEYS)):
        figures = [c[: -len(PREDICTED)] for c in frame.columns if c.endswith(PREDICTED)]
        for record in frame.to_dict("records"):
            for figure in figures:
                predicted = record[figure + PREDICTED]
                if math.isnan(predicted) or predicted == record[figure] == 0:
                    continue
                name = figure if len(keys) == 2 else f"{record['tier']} {figure}"
                error = record[figure + REL_ERROR]
                rows.append(
                    {
                        "audience": record["audience"],
                        "strategy": record["strategy"],
                        "figure": name,
                        "simulated": record[figure],
                        "predicted": predicted,
                        "rel. error": "-" if math.isnan(error) else f"{error:+.1%}",
                    }
                )
    columns = ["audience", "strategy", "figure", "simulated", "predicted", "rel. error"]
    return pd.DataFrame(rows, columns=columns)
