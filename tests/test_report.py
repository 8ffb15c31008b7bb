"""The report: its sections, its numbers, its figures and its re-rendering."""

import filecmp
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from sim.report.comparison import winners
from sim.report.figures import n_bin_edges
from sim.report.recommend import AFFORDABLE, recommendation
from sim.report.style import KNOWN_COLOURS, SPARE_COLOURS, Palette
from sim.report.values import count, seconds, share, size
from tests.conftest import run_cli

SECTIONS = [
    "recommendation",
    "scenario",
    "comparison",
    "n-distribution",
    "latency",
    "load",
    "staleness",
    "system-messages",
    "capacity",
    "sweep",
    "predictions",
]
# What the seed scenario does not produce, and the note that says so.
OPTIONAL = {
    "system-messages": "tables/system_messages.parquet has no rows",
    "capacity": "wrote no tables/plan.parquet",
    "sweep": "not a sweep",
}


class Outline(HTMLParser):
    """Per section of a report: its notes, figures and table count."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, dict[str, list[str]]] = {}
        self._current = ""
        self._in_note = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "section":
            self._current = attributes["id"]
            self.sections[self._current] = {"notes": [], "figures": [], "tables": []}
        elif not self._current:
            return
        elif tag == "p" and attributes.get("class") == "note":
            self._in_note = True
            self.sections[self._current]["notes"].append("")
        elif tag == "figure":
            self.sections[self._current]["figures"].append(attributes["id"])
        elif tag == "table":
            self.sections[self._current]["tables"].append("table")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self._in_note = False
        elif tag == "section":
            self._current = ""

    def handle_data(self, data: str) -> None:
        if self._in_note:
            self.sections[self._current]["notes"][-1] += data


def outline(folder: Path) -> dict[str, dict[str, list[str]]]:
    parser = Outline()
    parser.feed((folder / "report.html").read_text(encoding="utf-8"))
    return parser.sections


def test_report_has_every_section_in_order(report_run):
    assert list(outline(report_run)) == SECTIONS
    markdown = (report_run / "report.md").read_text()
    for section in SECTIONS:
        assert f'<a id="{section}"></a>' in markdown


def test_sections_without_their_table_say_so_in_one_line(report_run):
    sections = outline(report_run)
    for section, missing in OPTIONAL.items():
        (note,) = sections[section]["notes"]
        assert missing in note
        assert sections[section]["figures"] == []
    markdown = (report_run / "report.md").read_text()
    assert "*This run wrote no tables/plan.parquet, so there is no capacity" in markdown


def test_sections_with_their_table_render_in_full(full_report_run):
    sections = outline(full_report_run)
    expected = {
        "scenario": ["figure-degree_distribution"],
        "n-distribution": ["figure-n_distribution"],
        "latency": ["figure-latency_cdf"],
        "load": ["figure-load_over_time"],
        "staleness": ["figure-staleness"],
        "system-messages": ["figure-system_messages"],
        "capacity": ["figure-capacity"],
        "sweep": ["figure-sweep_strategies_poll_interval"],
    }
    for section, figures in expected.items():
        assert sections[section]["figures"] == figures, section
        assert sections[section]["notes"] == [], section
    # Load: the figure, the faults and the per-tier table.
    assert len(sections["load"]["tables"]) == 2
    assert len(sections["comparison"]["tables"]) == 2
    assert len(sections["system-messages"]["tables"]) == 1


def test_every_figure_is_written_as_png_and_svg(full_report_run):
    names = {
        "capacity",
        "degree_distribution",
        "latency_cdf",
        "load_over_time",
        "n_distribution",
        "staleness",
        "sweep_strategies_poll_interval",
        "system_messages",
    }
    written = {path.name for path in (full_report_run / "figures").iterdir()}
    assert written == {f"{n}.{suffix}" for n in names for suffix in ("png", "svg")}


def test_html_embeds_every_figure_and_refers_to_no_other_file(full_report_run):
    text = (full_report_run / "report.html").read_text()
    assert text.count('src="data:image/png;base64,') == 8
    assert "http://" not in text and "https://" not in text
    assert 'src="figures/' not in text


def test_comparison_shows_values_intervals_and_predictions(full_report_run):
    strategies = pd.read_parquet(full_report_run / "tables" / "strategies.parquet")
    push = strategies.set_index(["audience", "strategy"]).loc[("friends", "push")]
    html = (full_report_run / "report.html").read_text()
    markdown = (full_report_run / "report.md").read_text()
    value = count(push["n_mean"])
    interval = (
        f"95% CI {count(push['n_mean_ci_low'])} – {count(push['n_mean_ci_high'])}"
    )
    predicted = f"predicted {count(push['n_mean_predicted'])}, error +2.0%"
    for text in (html, markdown):
        assert value in text and interval in text and predicted in text


def test_best_latency_is_highlighted_in_both_renderings(report_run):
    strategies = pd.read_parquet(report_run / "tables" / "strategies.parquet")
    push = strategies.set_index(["audience", "strategy"]).loc[("friends", "push")]
    best = seconds(push["latency_p99_s"])
    assert (
        f'<td class="num best">{best}</td>' in (report_run / "report.html").read_text()
    )
    assert f"| **{best}** |" in (report_run / "report.md").read_text()


def test_scenario_summary_states_graph_statistics(report_run):
    summary_html = (report_run / "report.html").read_text()
    degrees = pd.read_parquet(report_run / "tables" / "degrees.parquet")
    # Every user adds 200 friends: one out-degree, 1,500 users at it.
    out = degrees[degrees["direction"] == "out"]
    assert out[["degree", "users"]].values.tolist() == [[200, 1500]]
    incoming = degrees[degrees["direction"] == "in"]
    assert incoming["users"].sum() == 1500
    assert (incoming["degree"] * incoming["users"]).sum() == 1500 * 200
    assert "<dd>mean 200, max 200</dd>" in summary_html
    assert "reciprocity" in summary_html


def test_reciprocity_of_a_random_graph_is_the_chance_of_a_return_arc(report_run):
    import json

    summary = json.loads((report_run / "summary.json").read_text())
    # Each of the other 1,499 users picks this one with chance 200 / 1,499.
    assert summary["graph"]["reciprocity"] == pytest.approx(200 / 1499, abs=0.005)


def test_a_gateway_crash_is_marked_on_the_load_figure(full_report_run):
    svg = (full_report_run / "figures" / "load_over_time.svg").read_text()
    # Named once, on the gateway panel; its jitter window shaded on each tier.
    assert svg.count("gateway crash") == 1
    faults = pd.read_parquet(full_report_run / "tables" / "faults.parquet")
    assert set(faults["kind"]) == {"gateway_crash"}
    assert set(zip(faults["start_s"], faults["end_s"], strict=True)) == {(60.0, 80.0)}


def test_report_command_redraws_the_same_report(report_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(report_run, folder)
    (folder / "report.html").unlink()
    (folder / "report.md").unlink()
    shutil.rmtree(folder / "figures")

    result = run_cli("report", str(folder))

    assert result.returncode == 0, result.stderr
    for name in ("report.html", "report.md"):
        assert filecmp.cmp(report_run / name, folder / name, shallow=False), name
    comparison = filecmp.dircmp(report_run / "figures", folder / "figures")
    assert comparison.left_only == comparison.right_only == []
    _, mismatch, errors = filecmp.cmpfiles(
        report_run / "figures",
        folder / "figures",
        comparison.common_files,
        shallow=False,
    )
    assert mismatch == errors == []
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in report_run.iterdir()
    )


def test_report_command_on_a_folder_without_a_run_exits_2(tmp_path):
    result = run_cli("report", str(tmp_path))
    assert result.returncode == 2
    assert "summary.json" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_scenario_strings_are_escaped_in_html(hostile_run):
    text = (hostile_run / "report.html").read_text()
    assert "<script" not in text
    assert "<img src=x" not in text
    assert '<h1 id="title">&lt;script&gt;alert(1)&lt;/script&gt;</h1>' in text
    assert "&lt;img src=x onerror=alert(2)&gt; &amp; friends | groups" in text


def test_scenario_strings_are_escaped_in_markdown(hostile_run):
    text = (hostile_run / "report.md").read_text()
    assert "# presence-sim report: &lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script" not in text and "<img" not in text


def test_number_formats_read_as_a_person_would_write_them():
    assert count(12345) == "12,345"
    assert count(40.25) == "40.2"
    assert count(819.4) == "819"
    assert seconds(0.00226) == "2.26ms"
    assert seconds(170) == "2.83m"
    assert seconds(2e-5) == "20us"
    assert share(0.2068) == "20.7%"
    assert share(1e-8) == "<0.001%"
    assert size(3.4e6) == "3.4 MB"
    assert count(float("nan")) == "-"


def test_n_bins_are_integers_then_preferred_numbers():
    edges = n_bin_edges(1000).tolist()
    assert edges[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert [e for e in edges if 100 <= e <= 200] == [
        100, 110, 120, 130, 150, 160, 180, 200,
    ]  # fmt: skip
    assert edges[-1] > 1000


def test_only_a_visibly_better_value_is_highlighted():
    assert winners([1.0, 2.0], ["1", "2"], "lower") == {0}
    assert winners([1.0, 2.0], ["1", "2"], "higher") == {1}
    assert winners([1.0, 1.0], ["1", "1"], "lower") == set()
    assert winners([1e-9, 2e-9], ["<0.001%", "<0.001%"], "lower") == set()
    assert winners([1.0, float("nan")], ["1", "-"], "lower") == set()
    assert winners([1.0, 2.0], ["1", "2"], None) == set()


def _strategies(rows: list[tuple]) -> pd.DataFrame:
    columns = ["audience", "strategy", "n_mean", "amplification", "latency_p99_s"]
    return pd.DataFrame(rows, columns=columns)


def _tiers(jobs: dict[tuple[str, str], int]) -> pd.DataFrame:
    return pd.DataFrame(
        [(a, s, "gateway", j) for (a, s), j in jobs.items()],
        columns=["audience", "strategy", "tier", "jobs"],
    )


def test_recommendation_takes_push_while_it_costs_under_twice_poll():
    strategies = _strategies(
        [("friends", "push", 40.0, 40.0, 0.002), ("friends", "poll", 39.0, 15.0, 59.0)]
    )
    tiers = _tiers({("friends", "push"): 5700, ("friends", "poll"): 4300})
    (lead, text), (_, rule) = recommendation(strategies, tiers)
    assert lead == "Friends: push."
    assert "within 2ms at p99, against 59s for poll" in text
    assert "1.3 times the work of poll (5,700 against 4,300 server jobs)" in text
    assert f"{AFFORDABLE:g} times" in rule


def test_recommendation_takes_lazy_pull_when_group_push_costs_far_more():
    strategies = _strategies(
        [
            ("groups", "push", 796.0, 796.0, 0.003),
            ("groups", "lazy_pull", float("nan"), 0.4, float("nan")),
        ]
    )
    tiers = _tiers({("groups", "push"): 114000, ("groups", "lazy_pull"): 260})
    (lead, text), _ = recommendation(strategies, tiers)
    assert lead == "Groups: lazy pull."
    assert "costs 438 times the work (114,000 against 260 server jobs)" in text


def test_recommendation_counts_planned_servers_when_there_is_a_plan():
    strategies = _strategies(
        [("friends", "push", 40.0, 40.0, 0.002), ("friends", "poll", 39.0, 15.0, 59.0)]
    )
    plan = pd.DataFrame(
        [
            ("friends", "push", "gateway", 40),
            ("friends", "push", "presence", 6),
            ("friends", "poll", "gateway", 30),
            ("friends", "poll", "presence", 7),
        ],
        columns=["audience", "strategy", "tier", "servers"],
    )
    (lead, text), _ = recommendation(strategies, plan=plan)
    assert lead == "Friends: push."
    assert "(46 against 37 servers)" in text


def test_system_messages_go_to_the_mode_with_less_gateway_peak():
    system = pd.DataFrame(
        {"mode": ["push", "pull"], "peak_gateway_rps": [9300.0, 4.0], "junk": [1190, 0]}
    )
    (lead, text), _ = recommendation(None, system=system)
    assert lead == "System messages: pull."
    assert text.startswith("Its peak gateway load is 4/s against 9,300/s for push")


def test_known_strategies_keep_their_colours_and_others_get_free_ones():
    palette = Palette([("groups", "dedup_push"), ("friends", "push")])
    assert palette.colour("friends", "push") == KNOWN_COLOURS[("friends", "push")]
    assert palette.colour("groups", "dedup_push") == SPARE_COLOURS[0]
    assert palette.colour("groups", "other") == SPARE_COLOURS[1]


def test_a_strategy_has_one_colour_in_every_figure(report_run):
    push = KNOWN_COLOURS[("friends", "push")].lower()
    poll = KNOWN_COLOURS[("friends", "poll")].lower()
    for name in ("n_distribution", "latency_cdf", "load_over_time"):
        svg = (report_run / "figures" / f"{name}.svg").read_text()
        assert f"stroke: {push}" in svg and f"stroke: {poll}" in svg, name
