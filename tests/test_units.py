"""Human time units."""

import pytest

from sim.units import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("250ms", 0.25),
        ("20us", 20e-6),
        (45, 45.0),
        ("1.5h", 5400.0),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["soon", "5 parsecs", "", True, None])
def test_parse_duration_refuses_non_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration_picks_a_readable_unit():
    assert [format_duration(s) for s in (7200, 90, 0.0022, 2e-5)] == [
        "2h",
        "1.5m",
        "2.2ms",
        "20us",
    ]
