"""The look shared by every report figure: colours, labels, fonts, files.

A strategy keeps one colour in every figure of a report. The strategies the
model knows have fixed colours, so they also match from one run to the next;
any other strategy takes the next free colour of the palette, in the order of
the run's strategy table. The palette is Okabe and Ito's, which stays
distinguishable for colour-blind readers and in greyscale print.
"""

from collections.abc import Callable, Iterable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import matplotlib
from matplotlib.figure import Figure

Key = tuple[str, str]

# Fixed colours of the known (audience, strategy) pairs.
KNOWN_COLOURS: dict[Key, str] = {
    ("friends", "push"): "#0072B2",
    ("friends", "poll"): "#E69F00",
    ("groups", "push"): "#009E73",
    ("groups", "push_dedup"): "#56B4E9",
    ("groups", "poll"): "#CC79A7",
    ("groups", "lazy_pull"): "#D55E00",
    ("system", "push"): "#882255",
    ("system", "pull"): "#999933",
}
# Handed out, in this order, to strategies without a fixed colour.
SPARE_COLOURS = ("#000000", "#44AA99", "#DDCC77", "#AA4499", "#117733", "#6699CC")

# Friends draw solid lines, groups dashed and system messages dash-dotted
# ones, so an audience reads at a glance even where two colours are close.
LINE_STYLES = {"friends": "-", "groups": "--", "system": "-."}

# Colours for things that are not strategies: tiers in stacked bars, degrees.
TIER_COLOURS = ("#4C4C4C", "#8C8C8C", "#B8B8B8", "#DADADA", "#6F6F6F")
NEUTRAL = "#333333"
SECOND_NEUTRAL = "#8A8A8A"
FAULT_COLOUR = "#C0392B"

RC = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "axes.edgecolor": "#555555",
    "axes.labelcolor": "#222222",
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "figure.titlesize": 11,
    "figure.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#E3E3E3",
    "grid.linewidth": 0.6,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "font.family": "DejaVu Sans",
    # A fixed salt keeps the ids inside SVG files, and so the files, the same
    # from one rendering to the next.
    "svg.hashsalt": "presence-sim",
}


def label(audience: str, strategy: str) -> str:
    """How a strategy is named in legends and table headers."""
    return f"{audience} {strategy.replace('_', ' ')}"


class Palette:
    """The colour of each strategy of one report."""

    def __init__(self, keys: Iterable[Key] = ()) -> None:
        self._colours: dict[Key, str] = {}
        for key in keys:
            self.colour(*key)

    def colour(self, audience: str, strategy: str) -> str:
        key = (audience, strategy)
        if key not in self._colours:
            taken = set(self._colours.values())
            fixed = KNOWN_COLOURS.get(key)
            spare = [c for c in SPARE_COLOURS if c not in taken] or list(SPARE_COLOURS)
            self._colours[key] = fixed or spare[0]
        return self._colours[key]

    def line(self, audience: str, strategy: str) -> dict[str, str]:
        """Keyword arguments that draw this strategy's line."""
        return {
            "color": self.colour(audience, strategy),
            "linestyle": LINE_STYLES.get(audience, "-"),
            "label": label(audience, strategy),
        }


Draw = TypeVar("Draw", bound=Callable[..., Any])


def styled(draw: Draw) -> Draw:
    """Run a figure function with the report's style in force throughout."""

    @wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with matplotlib.rc_context(RC):
            return draw(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def figure(
    rows: int = 1,
    columns: int = 1,
    width: float = 9.0,
    height: float = 3.6,
    **kwargs: Any,
) -> tuple[Figure, Any]:
    """A new figure; its axes come back as a 2-D array, even for one.

    The figure is made without pyplot, so drawing a report neither needs nor
    changes the backend of the program it runs in (a notebook, say).
    """
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(rows, columns, squeeze=False, **kwargs)


def save(fig: Figure, folder: Path, name: str) -> str:
    """Write `name.png` and `name.svg` under `folder`; returns the name.

    Both files carry no date or software stamp, so the same tables give the
    same bytes.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png", dpi=120, metadata={"Software": None})
    # The first drawing placed everything; the second keeps that layout
    # rather than working it out again.
    fig.set_layout_engine("none")
    fig.savefig(folder / f"{name}.svg", metadata={"Date": None, "Creator": None})
    return name
