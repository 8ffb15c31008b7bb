"""Compiled passes over the CSR arrays: who a fan-out reaches and where a
poller's keys live.

Each pass walks the rows it needs once, in machine code, with no temporary
arrays per row; the protocol modules call them with whole batches.
"""

import numpy as np
from numba import njit


@njit(cache=True)
def connected_members(
    groups_indptr: np.ndarray,
    groups_indices: np.ndarray,
    members_indptr: np.ndarray,
    members_indices: np.ndarray,
    user: int,
    connected: np.ndarray,
) -> np.ndarray:
    """The connected members of each of the user's groups, the user left
    out, group after group (a member of two shared groups appears twice)."""
    total = 0
    for k in range(groups_indptr[user], groups_indptr[user + 1]):
        group = groups_indices[k]
        total += members_indptr[group + 1] - members_indptr[group]
    found = np.empty(total, dtype=members_indices.dtype)
    n = 0
    for k in range(groups_indptr[user], groups_indptr[user + 1]):
        group = groups_indices[k]
        for m in range(members_indptr[group], members_indptr[group + 1]):
            member = members_indices[m]
            if connected[member] and member != user:
                found[n] = member
                n += 1
    return found[:n]


@njit(cache=True)
def keys_per_shard(
    first_indptr: np.ndarray,
    first_indices: np.ndarray,
    second_indptr: np.ndarray,
    second_indices: np.ndarray,
    shards: int,
) -> np.ndarray:
    """How many of each user's keys every cache shard holds.

    A user's keys are its row of the first CSR, or, when the second CSR is
    given (non-empty indptr), the rows of the second CSR named by its row of
    the first (the members of its groups, one key per group and member).
    """
    users = len(first_indptr) - 1
    counts = np.zeros((users, shards), dtype=np.int32)
    nested = len(second_indptr) > 0
    for user in range(users):
        for k in range(first_indptr[user], first_indptr[user + 1]):
            if nested:
                row = first_indices[k]
                for m in range(second_indptr[row], second_indptr[row + 1]):
                    counts[user, second_indices[m] % shards] += 1
            else:
                counts[user, first_indices[k] % shards] += 1
    return counts
