"""Numbers as a reader of the report sees them.

A column's name says what its values are (`_s` seconds, `_rps` a rate,
`share` a fraction, `bytes` a size), so one function turns any value of any
table into text, with three significant figures and thousands separated.
"""

from typing import Any

import numpy as np
import pandas as pd


def is_missing(value: Any) -> bool:
    """None, NaN or pandas' NA: a value the run did not produce."""
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def count(value: Any) -> str:
    """A count or a plain number: `12,345`, `819`, `40.3`, `0.432`."""
    if is_missing(value):
        return "-"
    number = float(value)
    if number.is_integer() or abs(number) >= 100:
        return f"{round(number):,}"
    return f"{number:.3g}"


# Units of time for output, largest first, with their length in seconds.
_TIME_UNITS = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3))


def seconds(value: Any) -> str:
    """A time in the largest unit that keeps it at least 1: `2.21ms`, `2.83m`."""
    if is_missing(value):
        return "-"
    number = float(value)
    if number == 0:
        return "0s"
    for unit, size in _TIME_UNITS:
        if abs(number) >= size:
            return f"{number / size:.3g}{unit}"
    return f"{number * 1e6:.3g}us"


def share(value: Any) -> str:
    """A fraction as a percentage: `20.7%`."""
    if is_missing(value):
        return "-"
    percent = float(value) * 100
    if 0 < abs(percent) < 0.001:
        return "<0.001%"
    return f"{percent:.3g}%"


def signed_share(value: Any) -> str:
    """A relative difference as a signed percentage: `+2.1%`, `-0.4%`, `+547.1%`."""
    if is_missing(value):
        return "-"
    return f"{float(value) * 100:+.1f}%"


def size(value: Any) -> str:
    """A number of bytes in decimal units: `512 B`, `3.4 MB`."""
    if is_missing(value):
        return "-"
    number = float(value)
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(number) >= scale:
            return f"{number / scale:.3g} {unit}"
    return f"{number:.0f} B"


def rate(value: Any) -> str:
    """Events per second: `2,532/s`."""
    return "-" if is_missing(value) else f"{count(value)}/s"


def byte_rate(value: Any) -> str:
    """Bytes per second: `3.3 kB/s`."""
    return "-" if is_missing(value) else f"{size(value)}/s"


def kind_of(column: str) -> str:
    """What a column's values are, read from its name."""
    words = column.split("_")
    if column.endswith("_rel_error"):
        return "relative"
    if "bytes" in words:
        return "byte_rate" if column.endswith("_per_s") else "size"
    if "rps" in words or column.endswith("_per_s"):
        return "rate"
    if column.endswith(("_s", "_seconds")):
        return "seconds"
    if any(word in column for word in ("share", "fraction", "utilisation")):
        return "share"
    return "count"


FORMATS = {
    "count": count,
    "seconds": seconds,
    "share": share,
    "relative": signed_share,
    "size": size,
    "rate": rate,
    "byte_rate": byte_rate,
}


def shown(value: Any, column: str) -> str:
    """`value` of `column` as text; strings pass through unchanged."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    return FORMATS[kind_of(column)](value)
