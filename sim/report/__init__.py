"""A run's report, in HTML and Markdown, drawn from the tables it wrote.

`render_report` turns a summary and a set of tables into `report.html` (one
self-contained file: figures embedded, no request to any other host),
`report.md` and `figures/` (each figure as PNG and SVG). `read_run` reads
those inputs back from a run folder, so a report can be drawn again without
simulating. Both renderings come from the same sections.
"""

import base64
import html
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined

from sim import __version__
from sim.errors import PresenceSimError
from sim.report.blocks import Cell, Paragraph, Section, Table
from sim.report.sections import Inputs, build_sections, headline
from sim.report.style import Palette

log = logging.getLogger(__name__)

FIGURES = "figures"


def read_run(folder: Path) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """The summary and every table (`tables/*.parquet`) of a run folder."""
    folder = Path(folder)
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise PresenceSimError(
            f"{folder}: not a run folder; expected {summary_path.name} and "
            "tables/ as written by `presence-sim run`"
        )
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PresenceSimError(
            f"{summary_path}: not a readable summary: {exc}"
        ) from None
    if not isinstance(summary, dict):
        raise PresenceSimError(f"{summary_path}: expected a JSON object")

    table_dir = folder / "tables"
    paths = sorted(table_dir.glob("*.parquet"))
    if not paths:
        raise PresenceSimError(f"{table_dir}: no tables (*.parquet) to draw from")
    tables = {}
    for path in paths:
        try:
            tables[path.stem] = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise PresenceSimError(f"{path}: not a readable table: {exc}") from None
    return summary, tables


def palette_for(tables: dict[str, pd.DataFrame]) -> Palette:
    """Colours for the run's strategies, in the order of its strategy table."""
    keys: list[tuple[str, str]] = []
    for name in ("strategies", "tiers", "load", "n_histogram", "latency_histogram"):
        frame = tables.get(name)
        if frame is not None and {"audience", "strategy"} <= set(frame.columns):
            keys += [
                (str(a), str(s))
                for a, s in zip(frame.audience, frame.strategy, strict=True)
            ]
    system = tables.get("system_messages")
    if system is not None and "mode" in system.columns:
        keys += [("system", str(mode)) for mode in system["mode"]]
    return Palette(dict.fromkeys(keys))


def markdown_text(text: Any) -> str:
    """Text safe inside Markdown: no live HTML, no broken table row."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def markdown_paragraph(paragraph: Paragraph) -> str:
    text = markdown_text(paragraph.text)
    if paragraph.lead:
        return f"**{markdown_text(paragraph.lead)}** {text}"
    return f"_{text}_" if paragraph.aside else text


def markdown_cell(cell: Cell) -> str:
    text = markdown_text(cell.text)
    if cell.best:
        text = f"**{text}**"
    if cell.details:
        text += " (" + "; ".join(markdown_text(d) for d in cell.details) + ")"
    return text


def markdown_table(table: Table) -> str:
    """A pipe table; numeric columns align right."""
    numeric = [
        bool(table.rows) and all(row[i].numeric for row in table.rows)
        for i in range(len(table.header))
    ]
    header = "| " + " | ".join(markdown_text(h) for h in table.header) + " |"
    rule = "|" + "|".join("---:" if n else "---" for n in numeric) + "|"
    body = [
        "| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in table.rows
    ]
    return "\n".join([header, rule, *body])


def _environment(html_output: bool) -> Environment:
    env = Environment(
        loader=PackageLoader("sim.report", "templates"),
        undefined=StrictUndefined,
        autoescape=html_output,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = markdown_text
    env.filters["md_table"] = markdown_table
    env.filters["md_paragraph"] = markdown_paragraph
    return env


def _data_uri(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"data:image/png;base64,{encoded}"


def render_report(
    summary: dict[str, Any], tables: dict[str, pd.DataFrame], folder: Path
) -> list[Section]:
    """Draw the figures and write `report.html` and `report.md` into `folder`."""
    folder = Path(folder)
    figure_dir = folder / FIGURES
    inputs = Inputs(summary, tables, palette_for(tables), figure_dir)
    sections = build_sections(inputs)
    images = {
        block.name: _data_uri(figure_dir / f"{block.name}.png")
        for section in sections
        for block in section.blocks
        if block.kind == "figure"
    }
    context = {
        "title": str(summary.get("scenario") or "unnamed scenario"),
        "description": str(summary.get("description") or ""),
        "headline": headline(summary),
        "sections": sections,
        "images": images,
        "figures": FIGURES,
        "version": summary.get("version", __version__),
    }
    for template, output in (("report.html.j2", True), ("report.md.j2", False)):
        text = _environment(output).get_template(template).render(context)
        (folder / template.removesuffix(".j2")).write_text(text, encoding="utf-8")
    log.debug("report drawn in %s", folder)
    return sections
