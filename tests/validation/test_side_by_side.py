"""Every run carries its predictions beside the simulated figures."""

import pytest

from sim.experiment import run_scenario
from sim.output import write_run
from tests.conftest import small_scenario


@pytest.fixture(scope="module")
def result():
    return run_scenario(small_scenario(population={"users": 4000}))


def test_strategy_table_has_predicted_and_error_columns(result):
    table = result.tables["strategies"]
    for figure in ("changes", "n_mean", "n_p99", "latency_mean_s", "requests"):
        assert f"{figure}_predicted" in table
        assert f"{figure}_rel_error" in table
    row = table.set_index(["audience", "strategy"]).loc[("friends", "push")]
    assert row["n_mean_rel_error"] == pytest.approx(
        row["n_mean"] / row["n_mean_predicted"] - 1
    )


@pytest.mark.parametrize("figure", ["changes", "messages", "n_mean", "latency_mean_s"])
def test_small_run_is_within_chance_of_its_predictions(result, figure):
    # 4,000 users for 10 minutes: about 530 changes; 3 standard errors of the
    # change count and of the share online come to about 20%.
    errors = result.tables["strategies"][f"{figure}_rel_error"].dropna()
    assert len(errors) > 0
    assert errors.abs().max() < 0.2


def test_tier_table_has_predicted_utilisation_and_wait(result):
    tiers = result.tables["tiers"]
    assert {"utilisation_predicted", "wait_mean_s_predicted"} <= set(tiers)
    errors = tiers["utilisation_rel_error"]
    assert errors.abs().max() < 0.2


def test_report_shows_predictions_and_reasons(result, tmp_path):
    out = write_run(result, tmp_path / "run")
    report = (out / "report.md").read_text()
    assert "## Predictions beside the simulation" in report
    assert "| friends | push | n_mean |" in report
    comparison = report.split("## Strategy comparison")[1].split("\n## ")[0]
    assert "_predicted" not in comparison


def test_saturated_tier_is_explained_in_one_sentence():
    scenario = small_scenario(
        population={"users": 4000},
        duration="2m",
        strategies={"friends": ["push"], "groups": []},
        # 0.89 changes/s x N = 10 x 200 ms on one worker: utilisation 1.8.
        tiers={"gateway": {"servers": 1, "workers": 1, "deliver": "200ms"}},
    )
    notes = run_scenario(scenario).summary["predictions"]["notes"]
    saturation = [note for note in notes if "offered" in note]
    assert len(saturation) == 1
    assert saturation[0].startswith("friends push: the gateway tier is offered")
