"""A run whose strategies are shared among forked processes stops cleanly."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, run_cli


def _start_long_run(out) -> tuple[subprocess.Popen, psutil.Process]:
    """`presence-sim run -j 2` on three simulated hours, and its forked
    worker once it is simulating."""
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "cli.py"),
            "run",
            str(ROOT / "scenarios" / "seed.yaml"),
            "--set",
            "population.users=20000",
            "--set",
            "duration=3h",
            "-j",
            "2",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        workers = psutil.Process(process.pid).children()
        if workers:
            return process, workers[0]
        time.sleep(0.1)
    process.kill()
    raise AssertionError("the run never forked a worker")


def test_kill_stops_the_run_and_its_worker_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    process, worker = _start_long_run(out)
    time.sleep(1)
    process.send_signal(signal.SIGTERM)
    text, _ = process.communicate(timeout=60)

    assert process.returncode == 130
    assert "interrupted; nothing was written" in text
    assert "Traceback" not in text
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
    assert list(tmp_path.iterdir()) == []


def test_a_worker_killed_by_the_system_ends_the_run_with_one_message(tmp_path):
    out = tmp_path / "run"
    process, worker = _start_long_run(out)
    worker.kill()
    text, _ = process.communicate(timeout=600)

    assert process.returncode == 1
    assert "Traceback" not in text
    message = " ".join(text.split())
    assert "error: the process simulating groups/push stopped" in message
    assert "(exit code -9)" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux's /proc")
def test_an_out_folder_that_cannot_be_made_is_refused_before_the_run():
    result = run_cli(
        "run", str(ROOT / "scenarios" / "ci-regression.yaml"), "--out", "/proc/x/y"
    )
    assert result.returncode == 2
    assert "--out: cannot write in /proc" in result.stderr
    assert "Traceback" not in result.stderr
