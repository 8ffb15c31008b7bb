"""Compiled passes over the CSR arrays: the reverse relation, who a fan-out
reaches and where a poller's keys live.

Each pass walks the rows it needs once, in machine code, with no temporary
arrays per row; the protocol modules call them with whole batches.
"""

import numpy as np

from sim.fifo import serve_batch, unpack
from sim.jit import kernel, kernel_without_refcounts
from sim.metrics import bin_into


@kernel
def transpose(
    indptr: np.ndarray, indices: np.ndarray, columns: int
) -> tuple[np.ndarray, np.ndarray]:
    """The CSR of the reverse relation, by counting: one pass counts each
    column, a second writes each row number into its columns' rows. Rows are
    visited in order, so every reverse row comes out sorted."""
    reverse_indptr = np.zeros(columns + 1, dtype=np.int64)
    for k in range(len(indices)):
        reverse_indptr[indices[k] + 1] += 1
    for column in range(columns):
        reverse_indptr[column + 1] += reverse_indptr[column]
    filled = reverse_indptr[:-1].copy()
    reverse_indices = np.empty(len(indices), dtype=np.int32)
    for row in range(len(indptr) - 1):
        for k in range(indptr[row], indptr[row + 1]):
            column = indices[k]
            reverse_indices[filled[column]] = row
            filled[column] += 1
    return reverse_indptr, reverse_indices


@kernel
def rows_sorted(indptr: np.ndarray, indices: np.ndarray) -> bool:
    """Whether every row lists its column indices in ascending order."""
    for row in range(len(indptr) - 1):
        for k in range(indptr[row] + 1, indptr[row + 1]):
            if indices[k] < indices[k - 1]:
                return False
    return True


@kernel
def connected_row(
    indptr: np.ndarray, indices: np.ndarray, row: int, connected: np.ndarray
) -> np.ndarray:
    """The connected users of one CSR row (a user's reverse friends)."""
    found = np.empty(indptr[row + 1] - indptr[row], dtype=indices.dtype)
    n = 0
    # Written without a branch: each user is stored, and kept when connected.
    for k in range(indptr[row], indptr[row + 1]):
        user = indices[k]
        found[n] = user
        n += connected[user]
    return found[:n]


@kernel
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
            found[n] = member
            n += connected[member] & (member != user)
    return found[:n]


@kernel
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


@kernel_without_refcounts
def push(
    gateway_buffers: tuple,
    deliver: int,
    recipients: np.ndarray,
    time: float,
    present: np.ndarray,
    mode: np.ndarray,
    invisible: int,
    finish: np.ndarray,
    latency: np.ndarray,
    shift: float,
) -> tuple[int, int, float]:
    """Deliver one push to `recipients` through their gateway servers (the
    recipient number modulo the servers), all arriving at `time`; writes
    each delivery's finish time into `finish`.

    Unless `latency` is empty, each finish time + `shift` is counted into
    it, as `sim.metrics.LogHistogram` counts.

    Returns how many recipients were ghosts (their client gone), how many
    were invisible, and the sum of the values counted.
    """
    ghosts = 0
    hidden = 0
    for i in range(len(recipients)):
        user = recipients[i]
        ghosts += not present[user]
        hidden += mode[user] == invisible
    gateway = unpack(gateway_buffers[0], gateway_buffers[1])
    serve_batch(gateway, time, recipients, deliver, finish)
    total = 0.0
    if len(latency):
        total = bin_into(latency, finish, shift)
    return ghosts, hidden, total
