"""What a report is made of, before it becomes Markdown or HTML.

Both renderings walk the same sections and blocks, so they cannot drift
apart: a number, a note or a figure is in both or in neither.
"""

from dataclasses import dataclass, field
from typing import ClassVar

import pandas as pd

from sim.report.values import shown


@dataclass(frozen=True)
class Cell:
    """One table cell: its text, smaller lines under it, and whether it wins."""

    text: str
    details: tuple[str, ...] = ()
    best: bool = False
    numeric: bool = True


@dataclass(frozen=True)
class Table:
    kind: ClassVar[str] = "table"
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Paragraph:
    """Prose; `lead` opens it in bold, and an `aside` is set in smaller type."""

    kind: ClassVar[str] = "paragraph"
    text: str
    lead: str = ""
    aside: bool = False


@dataclass(frozen=True)
class Facts:
    """A short list of labelled values."""

    kind: ClassVar[str] = "facts"
    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Figure:
    """A figure drawn under `figures/`, by its file name without suffix."""

    kind: ClassVar[str] = "figure"
    name: str
    caption: str


Block = Table | Paragraph | Facts | Figure


@dataclass
class Section:
    """A titled part of the report.

    `short` is its name in the table of contents. `note` says, in one line,
    why the section is empty or partial: usually that the run did not produce
    the table it draws on.
    """

    id: str
    title: str
    short: str
    blocks: list[Block] = field(default_factory=list)
    note: str = ""


# Header words for columns whose names read poorly.
COLUMN_LABELS = {
    "mean_rps": "mean load",
    "peak_rps": "peak load",
    "wait_mean_s": "mean wait",
    "wait_max_s": "max wait",
    "queue_mean": "mean queue",
    "start_s": "start",
    "end_s": "end",
}


def column_label(column: str) -> str:
    """A column's header: its known label, else its name in words."""
    if column in COLUMN_LABELS:
        return COLUMN_LABELS[column]
    return column.removesuffix("_s").replace("_", " ")


def frame_table(frame: pd.DataFrame, caption: str = "") -> Table:
    """A table of a data frame's rows, each value shown by its column's kind."""
    header = tuple(column_label(column) for column in frame.columns)
    rows = tuple(
        tuple(
            Cell(shown(value, column), numeric=not isinstance(value, str))
            for column, value in zip(frame.columns, row, strict=True)
        )
        for row in frame.itertuples(index=False)
    )
    return Table(header, rows, caption)
