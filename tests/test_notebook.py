"""notebooks/analysis.ipynb runs top to bottom against a small run."""

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from tests.conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "analysis.ipynb"


def test_analysis_notebook_runs_against_a_run(report_run, monkeypatch, tmp_path):
    monkeypatch.setenv("PRESENCE_SIM_RUN", str(report_run))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # Local socket files rather than TCP ports: nothing listens on the network.
    kernel = KernelManager(
        kernel_name="python3", transport="ipc", ip=str(tmp_path / "kernel")
    )
    client = NotebookClient(
        notebook,
        km=kernel,
        timeout=300,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )

    client.execute()

    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    printed = "".join(
        o.get("text", "") for o in outputs if o["output_type"] == "stream"
    )
    assert "seed: 1,500 users, 180 s simulated" in printed
    tables = [
        o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})
    ]
    comparison = tables[0]
    assert "friends" in comparison and "lazy_pull" in comparison
    assert "latency_p99_s" in comparison
    assert any("image/png" in o.get("data", {}) for o in outputs)
