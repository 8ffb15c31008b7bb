"""`presence-sim estimate`: predictions without simulating, any population."""

import re
import subprocess
import sys

from tests.conftest import ROOT, datasets_or_skip


def _estimate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "estimate", *args],
        capture_output=True,
        text=True,
    )


def _words(text: str) -> str:
    """The printed tables as one line of words, without their rules."""
    return " ".join(text.translate({ord(c): " " for c in "│┃"}).split())


def test_estimate_answers_for_a_hundred_million_users():
    result = _estimate(
        str(ROOT / "scenarios" / "seed.yaml"), "--set", "population.users=100000000"
    )
    assert result.returncode == 0, result.stderr
    out = _words(result.stdout)
    assert "100,000,000 users" in out
    # 1e8 users x 2 x 0.2 / 1800 s = 22,222 changes a second.
    assert "22,222 status changes/s" in out
    # Friend push: N = 40, 888,889 pushes a second; group push: N = 796.
    assert "friends push 40 55 888,889" in out
    assert "groups push 796" in out
    # 17.7 million group pushes a second at 20 us on 32 workers: 11 times over.
    assert re.search(r"groups push gateway 4 x 8 [\d,]+ 11\.\d+ saturated", out)


def test_estimate_reads_a_real_graph():
    datasets_or_skip()
    result = _estimate(str(ROOT / "scenarios" / "email-eu-core.yaml"))
    assert result.returncode == 0, result.stderr
    # 24,929 arcs over 1,005 users, 20% online: N = 0.2 x 24.8 = 4.96.
    assert "friends push 4.96" in _words(result.stdout)


def test_estimate_refuses_a_bad_scenario_naming_the_field(tmp_path):
    result = _estimate(
        str(ROOT / "scenarios" / "seed.yaml"), "--set", "population.users=-5"
    )
    assert result.returncode == 2
    assert "population.users" in result.stderr
    assert "Traceback" not in result.stderr
