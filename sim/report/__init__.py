"""Rendering a run's report (Markdown and figures) from its tables."""

import math
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined

from sim.comparison import is_prediction_column, side_by_side
from sim.report import figures
from sim.scenario import Scenario
from sim.units import format_duration


def _number(value: Any) -> str:
    """Numbers as a person reads them: 3 significant figures, thousands split."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    magnitude = abs(float(value))
    if magnitude >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table with readable numbers."""
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = [
        "| " + " | ".join(_number(v) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *body])


def _measured(frame: pd.DataFrame) -> pd.DataFrame:
    """The simulated columns only; predictions get their own section."""
    return frame[[c for c in frame.columns if not is_prediction_column(c)]]


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("sim.report", "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["number"] = _number
    env.filters["duration"] = format_duration
    env.filters["table"] = markdown_table
    return env


def render_report(
    scenario: Scenario,
    summary: dict[str, Any],
    tables: dict[str, pd.DataFrame],
    folder: Path,
) -> None:
    """Draw the figures and write `report.md` into `folder`."""
    folder = Path(folder)
    figure_dir = folder / "figures"
    images = {
        "n_distribution": figures.n_distribution(tables["n_histogram"], figure_dir),
        "load_over_time": figures.load_over_time(tables["load"], figure_dir),
        "latency_cdf": figures.latency_cdf(tables["latency_histogram"], figure_dir),
    }
    strategies, tiers = tables["strategies"], tables["tiers"]
    text = (
        _environment()
        .get_template("report.md.j2")
        .render(
            scenario=scenario,
            summary=summary,
            strategies=_measured(strategies),
            tiers=_measured(tiers),
            predictions=side_by_side(strategies, tiers),
            prediction_notes=summary.get("predictions", {}).get("notes", []),
            images=images,
        )
    )
    (folder / "report.md").write_text(text, encoding="utf-8")
