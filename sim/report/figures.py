"""Report figures drawn from the run's tables, one colour per strategy."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# One colour per (audience, strategy), the same in every figure.
COLOURS = {
    ("friends", "push"): "#1f77b4",
    ("friends", "poll"): "#ff7f0e",
    ("groups", "push"): "#2ca02c",
    ("groups", "lazy_pull"): "#d62728",
}
_FALLBACK = "#7f7f7f"


def colour(audience: str, strategy: str) -> str:
    return COLOURS.get((audience, strategy), _FALLBACK)


def label(audience: str, strategy: str) -> str:
    return f"{audience} {strategy.replace('_', ' ')}"


def _save(figure: plt.Figure, folder: Path, name: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    figure.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return f"figures/{name}.png"


def n_distribution(histogram: pd.DataFrame, folder: Path) -> str | None:
    """Share of changes against N, one panel per audience."""
    if histogram.empty:
        return None
    audiences = list(dict.fromkeys(histogram["audience"]))
    figure, axes = plt.subplots(1, len(audiences), figsize=(5 * len(audiences), 3.6))
    for axis, audience in zip(np.atleast_1d(axes), audiences, strict=True):
        part = histogram[histogram["audience"] == audience]
        for strategy, rows in part.groupby("strategy", sort=False):
            share = rows["changes"] / rows["changes"].sum()
            axis.step(
                rows["n"],
                share,
                where="mid",
                color=colour(audience, strategy),
                label=label(audience, strategy),
            )
        axis.set_xlabel("N: observers reached per status change")
        axis.set_ylabel("share of changes")
        axis.set_title(f"Storm diffusion factor, {audience}")
        axis.legend()
    return _save(figure, folder, "n_distribution")


def load_over_time(load: pd.DataFrame, folder: Path) -> str:
    """Requests per second arriving at each tier, one line per strategy."""
    tiers = list(dict.fromkeys(load["tier"]))
    figure, axes = plt.subplots(
        len(tiers), 1, figsize=(9, 2.8 * len(tiers)), sharex=True, squeeze=False
    )
    for axis, tier in zip(axes[:, 0], tiers, strict=True):
        part = load[load["tier"] == tier]
        for (audience, strategy), rows in part.groupby(
            ["audience", "strategy"], sort=False
        ):
            axis.plot(
                rows["time_s"],
                rows["rps"],
                lw=0.8,
                color=colour(audience, strategy),
                label=label(audience, strategy),
            )
        axis.set_ylabel("requests/s")
        axis.set_yscale("symlog", linthresh=1)
        axis.set_title(f"{tier} tier")
        axis.legend(fontsize="small", ncol=2)
    axes[-1, 0].set_xlabel("simulated time (s)")
    return _save(figure, folder, "load_over_time")


def latency_cdf(histogram: pd.DataFrame, folder: Path) -> str | None:
    """Cumulative share of deliveries against propagation latency."""
    if histogram.empty:
        return None
    figure, axis = plt.subplots(figsize=(7, 4))
    for (audience, strategy), rows in histogram.groupby(
        ["audience", "strategy"], sort=False
    ):
        share = rows["count"].cumsum() / rows["count"].sum()
        axis.step(
            rows["high_s"],
            share,
            where="post",
            color=colour(audience, strategy),
            label=label(audience, strategy),
        )
    axis.set_xscale("log")
    axis.set_xlabel("propagation latency (s)")
    axis.set_ylabel("share of observers reached")
    axis.set_title("Propagation latency CDF")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    return _save(figure, folder, "latency_cdf")
