"""Independent random streams, all derived from the scenario's one seed.

Each consumer gets its own stream from `numpy.random.SeedSequence`, keyed by a
stable name, so adding a consumer never shifts the numbers of another and
every strategy sees the same workload (common random numbers).

Replications are keyed the same way. Replication 0 keeps the keys a single run
has always used, `(stream, *sub-key)`, so a run's numbers do not change when
replications are asked for. Replication r >= 1 draws from the branch
`(REPLICATION_BRANCH, r, stream, *sub-key)`; its first element is no stream's
index, so no replication shares a stream with another or with a single run.
Replication r of every sweep point draws the same streams, so points differ by
their settings and not by their dice.
"""

import zlib

import numpy as np

STREAMS = (
    "graph",
    "groups",
    "sessions",
    "visits",
    "poll",
    "service",
    "staleness",
    "queue",
)

# Far above any stream index, so replication keys never meet single-run keys.
REPLICATION_BRANCH = 2**31 - 1


def stream(
    seed: int, name: str, *key: int, replication: int = 0
) -> np.random.Generator:
    """The generator for stream `name` (and sub-key, e.g. a tier index).

    `replication` selects an independent copy of every stream; 0 is the one a
    single run uses.
    """
    if name not in STREAMS:
        raise ValueError(f"unknown random stream {name!r}")
    if replication < 0:
        raise ValueError(f"replication must be 0 or more, not {replication}")
    spawn_key = (STREAMS.index(name), *key)
    if replication:
        spawn_key = (REPLICATION_BRANCH, replication, *spawn_key)
    sequence = np.random.SeedSequence(seed, spawn_key=spawn_key)
    return np.random.default_rng(sequence)


def name_key(name: str) -> int:
    """A stable integer for a name, to key sub-streams (e.g. per tier)."""
    return zlib.crc32(name.encode())
