"""Independent random streams, all derived from the scenario's one seed.

Each consumer gets its own stream from `numpy.random.SeedSequence`, keyed by a
stable name, so adding a consumer never shifts the numbers of another and
every strategy sees the same workload (common random numbers).
"""

import zlib

import numpy as np

STREAMS = ("graph", "groups", "sessions", "visits", "poll", "service", "staleness")


def stream(seed: int, name: str, *key: int) -> np.random.Generator:
    """The generator for stream `name` (and sub-key, e.g. a tier index)."""
    if name not in STREAMS:
        raise ValueError(f"unknown random stream {name!r}")
    sequence = np.random.SeedSequence(seed, spawn_key=(STREAMS.index(name), *key))
    return np.random.default_rng(sequence)


def name_key(name: str) -> int:
    """A stable integer for a name, to key sub-streams (e.g. per tier)."""
    return zlib.crc32(name.encode())
