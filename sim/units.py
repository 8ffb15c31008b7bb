"""Human time units for scenarios and output (`250ms`, `30s`, `5m`, `2h`, `1d`).

Inside the model every time is a float number of seconds.
"""

import math
import re

_UNIT_SECONDS = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_DURATION = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*$")


def parse_duration(value: object) -> float:
    """Return `value` in seconds; numbers are taken as seconds already.

    Raises ValueError with the accepted forms when `value` is not a duration,
    so that the schema can name the field it came from.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 2h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value.lower())
        if not match or match.group(2) not in _UNIT_SECONDS | {"": 1.0}:
            units = ", ".join(_UNIT_SECONDS)
            raise ValueError(
                f"{value!r} is not a duration; write a number with one of the "
                f"units {units} (for example 30s, 5m, 2h)"
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS.get(match.group(2), 1.0)
    else:
        raise ValueError("expected a duration such as 30s, 5m or 2h")
    if not math.isfinite(seconds):
        raise ValueError("a duration must be finite")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds in the largest unit that keeps the number readable."""
    if seconds == 0:
        return "0s"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if abs(seconds) >= size:
            return f"{seconds / size:.3g}{unit}"
    if abs(seconds) >= 1e-3:
        return f"{seconds * 1e3:.3g}ms"
    return f"{seconds * 1e6:.3g}us"
