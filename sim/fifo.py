"""Compiled FIFO service kernels behind `sim.tiers.Tier`.

A tier's state lives in a few numpy arrays that these kernels update in
place: the time each worker next falls free, the idle gaps of each server,
per-operation totals, per-operation histograms and per-slot series. A batch
of jobs is handed over in one call and served job by job in machine code, so
no Python runs per message; each job takes the earliest free worker of its
server, which is first-come first-served with one queue per server, the same
arithmetic a per-message simulation does.

A tier's arrays are views into two flat buffers, one of floats and one of
integers (`pack`, `unpack`), so that a call hands a kernel two arrays per
tier rather than thirteen: a compiled call pays for each array it is given.
Unpacked, they form the tier's state, a tuple (`ops` operations, `slots`
load slots; see `Tier.state`):

0. `free[server, worker]`: when the worker falls free.
1. `gaps[server, k] = (start, end)`, the first `gap_count[server]` in use:
   idle time left before jobs placed ahead of their arrival.
2. `gap_count[server]`.
3. `totals[op] = (busy, wait, max_wait, sojourn sum, wait sum)`, after the
   warm-up.
4. `counts[op] = (jobs, max_queued, sojourn count, wait count)`, likewise.
5. `hist[kind, op, bin]`: log-binned sojourns (kind 0) and waits (kind 1)
   after the warm-up, binned as `sim.metrics.LogHistogram` bins them.
6. `slot_jobs[op, slot]`, over the whole run.
7. `slot_load[(busy, max_wait), slot]`, likewise.
8. `params = (slot length, end of the warm-up)`.
9. `fixed[op]`: the fixed service time, NaN for a random operation.
10. `slowdowns[k] = (start, end, factor)`.
11. `draws[op, k]`: service times of random operations drawn ahead, taken in
    order from `draw_next[op]`.
12. `draw_next[op]`.
13. and 14. Scratch room of floats and integers for one call at a time
    (`CACHE` x 2 floats; `CACHE` x 2 + one per server integers), so that no
    kernel allocates memory.

The kernels that serve jobs are compiled without reference counting (see
`sim.jit.kernel_without_refcounts`): they allocate nothing, and every array
they touch belongs to a caller that holds it for the whole call.
"""

import numpy as np

from sim.jit import kernel_without_refcounts
from sim.metrics import BINS, bin_of

SOJOURN = 0
WAIT = 1
# The integer buffer starts with the sizes of the layout: servers, workers,
# room for gaps per server, operations, slots, slowdowns, room for draws.
HEADER = 7
# Positions in a tier's state tuple (see above).
(
    FREE,
    GAPS,
    GAP_COUNT,
    TOTALS,
    COUNTS,
    HIST,
    SLOT_JOBS,
    SLOT_LOAD,
    PARAMS,
    FIXED,
    SLOWDOWNS,
    DRAWS,
    DRAW_NEXT,
    SCRATCH_FLOATS,
    SCRATCH_INTS,
) = range(15)
# Entries of the bin cache of a batch.
CACHE = 256


def pack(
    servers: int,
    workers: int,
    gap_room: int,
    ops: int,
    slots: int,
    slowdowns: int,
    draw_room: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Zeroed buffers of a tier of these sizes (see `unpack`)."""
    s, w, g, k, b = servers, workers, gap_room, slowdowns, draw_room
    floats = s * w + s * g * 2 + ops * 5 + 2 * slots + 2 + ops + k * 3 + ops * b
    floats += 2 * CACHE
    ints = HEADER + s + ops * 4 + 2 * ops * BINS + ops * slots + ops
    ints += 2 * CACHE + s
    buffers = np.zeros(floats), np.zeros(ints, dtype=np.int64)
    buffers[1][:HEADER] = (servers, workers, gap_room, ops, slots, slowdowns, b)
    return buffers


@kernel_without_refcounts
def unpack(floats: np.ndarray, ints: np.ndarray) -> tuple:
    """The state tuple of a tier, as views into its two buffers; the sizes
    here and in `pack` go together."""
    s, w, g, ops, slots, k, b = (
        ints[0],
        ints[1],
        ints[2],
        ints[3],
        ints[4],
        ints[5],
        ints[6],
    )
    at = 0
    free = floats[at : at + s * w].reshape((s, w))
    at += s * w
    gaps = floats[at : at + s * g * 2].reshape((s, g, 2))
    at += s * g * 2
    totals = floats[at : at + ops * 5].reshape((ops, 5))
    at += ops * 5
    slot_load = floats[at : at + 2 * slots].reshape((2, slots))
    at += 2 * slots
    params = floats[at : at + 2]
    at += 2
    fixed = floats[at : at + ops]
    at += ops
    slowdowns = floats[at : at + k * 3].reshape((k, 3))
    at += k * 3
    draws = floats[at : at + ops * b].reshape((ops, b))
    at += ops * b
    scratch_floats = floats[at : at + 2 * CACHE]
    at = HEADER
    gap_count = ints[at : at + s]
    at += s
    counts = ints[at : at + ops * 4].reshape((ops, 4))
    at += ops * 4
    hist = ints[at : at + 2 * ops * BINS].reshape((2, ops, BINS))
    at += 2 * ops * BINS
    slot_jobs = ints[at : at + ops * slots].reshape((ops, slots))
    at += ops * slots
    draw_next = ints[at : at + ops]
    at += ops
    scratch_ints = ints[at : at + 2 * CACHE + s]
    return (
        free,
        gaps,
        gap_count,
        totals,
        counts,
        hist,
        slot_jobs,
        slot_load,
        params,
        fixed,
        slowdowns,
        draws,
        draw_next,
        scratch_floats,
        scratch_ints,
    )


@kernel_without_refcounts
def serve_job(
    buffers: tuple, t: float, server: int, op: int, size: int, now: float
) -> float:
    """`serve_one` on a tier's buffers."""
    return serve_one(unpack(buffers[0], buffers[1]), t, server, op, size, now)


@kernel_without_refcounts
def serve_jobs(
    buffers: tuple, t: float, servers: np.ndarray, op: int, finish: np.ndarray
) -> None:
    """`serve_batch` on a tier's buffers."""
    serve_batch(unpack(buffers[0], buffers[1]), t, servers, op, finish)


@kernel_without_refcounts
def record(state: tuple, kind: int, op: int, value: float, times: int = 1) -> None:
    """Add a sojourn or wait, `times` times over, to its histogram and
    running sum."""
    state[HIST][kind, op, bin_of(value)] += times
    state[TOTALS][op, 3 + kind] += value * times
    state[COUNTS][op, 2 + kind] += times


@kernel_without_refcounts
def record_waits(state: tuple, op: int, lags: np.ndarray, jobs: np.ndarray) -> None:
    """Add `jobs[i]` waits of `lags[i]` each (the jobs a fluid absorbed)."""
    for i in range(len(lags)):
        if jobs[i] > 0:
            record(state, WAIT, op, lags[i], jobs[i])


@kernel_without_refcounts
def account(
    state: tuple,
    op: int,
    t: float,
    jobs: int,
    busy: float,
    wait: float,
    max_wait: float,
    queued: int,
) -> None:
    """Add the jobs of one arrival at time t to the slot series and, past
    the warm-up, to the operation's totals."""
    totals, counts, slot_load = state[TOTALS], state[COUNTS], state[SLOT_LOAD]
    slot_length, counted_from = state[PARAMS][0], state[PARAMS][1]
    slot = min(int(t / slot_length), slot_load.shape[1] - 1)
    state[SLOT_JOBS][op, slot] += jobs
    slot_load[0, slot] += busy
    if max_wait > slot_load[1, slot]:
        slot_load[1, slot] = max_wait
    if t < counted_from:
        return
    counts[op, 0] += jobs
    totals[op, 0] += busy
    totals[op, 1] += wait
    if max_wait > totals[op, 2]:
        totals[op, 2] = max_wait
    if queued > counts[op, 1]:
        counts[op, 1] = queued


@kernel_without_refcounts
def _remove_gap(gaps: np.ndarray, gap_count: np.ndarray, server: int, k: int) -> None:
    """Drop gap k of a server, keeping the others in order."""
    last = gap_count[server] - 1
    for j in range(k, last):
        gaps[server, j, 0] = gaps[server, j + 1, 0]
        gaps[server, j, 1] = gaps[server, j + 1, 1]
    gap_count[server] = last


@kernel_without_refcounts
def _add_gap(
    gaps: np.ndarray,
    gap_count: np.ndarray,
    server: int,
    start: float,
    end: float,
    workers: int,
    now: float,
) -> None:
    """Remember an idle gap. Gaps that ended by `now` can fit no job to come
    and are dropped once there are a few per worker; past the store's limit
    (one slot less than its room) the gap that ends first is forgotten."""
    n = gap_count[server]
    gaps[server, n, 0] = start
    gaps[server, n, 1] = end
    n += 1
    gap_count[server] = n
    if n > 2 * workers:
        kept = 0
        for k in range(n):
            if gaps[server, k, 1] > now:
                gaps[server, kept, 0] = gaps[server, k, 0]
                gaps[server, kept, 1] = gaps[server, k, 1]
                kept += 1
        gap_count[server] = kept
        n = kept
    if n > gaps.shape[1] - 1:
        first = 0
        for k in range(1, n):
            if gaps[server, k, 1] < gaps[server, first, 1]:
                first = k
        _remove_gap(gaps, gap_count, server, first)


@kernel_without_refcounts
def service_time(state: tuple, op: int, size: int, t: float) -> float:
    """The service time of one job of `op` arriving at t; a sized job (a
    batch read of `size` keys) takes the sum of `size` services."""
    fixed = state[FIXED][op]
    if fixed == fixed:
        service = fixed * size
    else:
        draws, taken = state[DRAWS], state[DRAW_NEXT]
        service = 0.0
        for _ in range(size):
            service += draws[op, taken[op]]
            taken[op] += 1
    slowdowns = state[SLOWDOWNS]
    for k in range(slowdowns.shape[0]):
        if slowdowns[k, 0] <= t < slowdowns[k, 1]:
            service *= slowdowns[k, 2]
    return service


@kernel_without_refcounts
def _first_free(free: np.ndarray, server: int) -> int:
    """The server's worker that falls free first (the lowest on a tie)."""
    chosen = 0
    for w in range(1, free.shape[1]):
        if free[server, w] < free[server, chosen]:
            chosen = w
    return chosen


@kernel_without_refcounts
def serve_one(
    state: tuple, t: float, server: int, op: int, size: int, now: float
) -> float:
    """Serve one job arriving at t at `server`; return its finish time.

    `now` is the simulation's time, no later than any job still to come.
    See `Tier.serve_one` for how idle gaps and the choice of worker work.
    """
    free, gaps, gap_count = state[FREE], state[GAPS], state[GAP_COUNT]
    service = service_time(state, op, size, t)
    workers = free.shape[1]
    idle = False
    soonest_free = np.inf
    for w in range(workers):
        if free[server, w] <= t:
            idle = True
        if free[server, w] < soonest_free:
            soonest_free = free[server, w]
    soonest = t if idle else soonest_free

    # The gap where the job starts first, the tightest on a tie.
    best = -1
    best_start = 0.0
    best_end = 0.0
    for k in range(gap_count[server]):
        begin = gaps[server, k, 0]
        end = gaps[server, k, 1]
        start = t if t > begin else begin
        if start + service > end or start > soonest:
            continue
        if best < 0 or start < best_start or (start == best_start and end < best_end):
            best = k
            best_start = start
            best_end = end

    if best >= 0:
        begin = gaps[server, best, 0]
        start = best_start
        finish = start + service
        _remove_gap(gaps, gap_count, server, best)
        if start > begin:
            _add_gap(gaps, gap_count, server, begin, start, workers, now)
        if best_end > finish:
            _add_gap(gaps, gap_count, server, finish, best_end, workers, now)
    else:
        # Of the idle workers, the one freed last, so that a job placed
        # ahead leaves the smallest gap; otherwise the first to fall free.
        chosen = 0
        if idle:
            latest = -np.inf
            for w in range(workers):
                if free[server, w] <= t and free[server, w] > latest:
                    latest = free[server, w]
                    chosen = w
        else:
            chosen = _first_free(free, server)
        ready = free[server, chosen]
        start = ready if ready > t else t
        finish = start + service
        free[server, chosen] = finish
        if start > ready:
            _add_gap(gaps, gap_count, server, ready, start, workers, now)

    wait = start - t
    account(state, op, t, 1, service, wait, wait, 1 if wait > 0 else 0)
    if t >= state[PARAMS][1]:
        record(state, SOJOURN, op, finish - t)
        record(state, WAIT, op, wait)
    return finish


@kernel_without_refcounts
def serve_batch(
    state: tuple, t: float, targets: np.ndarray, op: int, finish: np.ndarray
) -> None:
    """Serve jobs that all arrive at t, job i at server `targets[i]` modulo
    the servers (a server number, or a user whose traffic that server
    handles), queued at each server in the order given; writes the finish
    times into `finish`, in that order.
    """
    free, totals, counts, hist = state[FREE], state[TOTALS], state[COUNTS], state[HIST]
    jobs = len(targets)
    servers = free.shape[0]
    # Jobs that waited, per server; then the bin cache (see below).
    waiting = state[SCRATCH_INTS][2 * CACHE :]
    waiting[:] = 0
    seen_bins = state[SCRATCH_INTS][: 2 * CACHE].reshape((CACHE, 2))
    seen_wait = state[SCRATCH_FLOATS][:CACHE]
    seen_service = state[SCRATCH_FLOATS][CACHE:]
    seen_wait[:] = np.nan
    counted = t >= state[PARAMS][1]
    busy = 0.0
    wait_sum = 0.0
    max_wait = 0.0
    # Jobs of a batch often share a wait (one per round of the workers), so
    # the bins of recent (wait, service) pairs are kept, by the wait's value.
    for i in range(jobs):
        server = targets[i] % servers
        service = service_time(state, op, 1, t)
        chosen = _first_free(free, server)
        ready = free[server, chosen]
        start = ready if ready > t else t
        done = start + service
        free[server, chosen] = done
        finish[i] = done
        busy += service
        wait = start - t
        if wait > 0:
            wait_sum += wait
            waiting[server] += 1
            if wait > max_wait:
                max_wait = wait
        if counted:
            key = int(wait * 1e8) % CACHE
            if seen_wait[key] != wait or seen_service[key] != service:
                seen_wait[key] = wait
                seen_service[key] = service
                seen_bins[key, SOJOURN] = bin_of(done - t)
                seen_bins[key, WAIT] = bin_of(wait)
            hist[SOJOURN, op, seen_bins[key, SOJOURN]] += 1
            hist[WAIT, op, seen_bins[key, WAIT]] += 1
            totals[op, 3 + SOJOURN] += done - t
            totals[op, 3 + WAIT] += wait
    if counted:
        counts[op, 2 + SOJOURN] += jobs
        counts[op, 2 + WAIT] += jobs
    queued = 0
    for server in range(servers):
        if waiting[server] > queued:
            queued = waiting[server]
    account(state, op, t, jobs, busy, wait_sum, max_wait, queued)
