"""Server tiers: pools of servers, each with workers and one FIFO queue.

A tier never sees one SimPy event per message. A batch of jobs that reach a
tier at the same instant (the pushes of one fan-out, the key reads of one
batch read, the polls of one slot) is served in one vectorised step that
keeps, per worker, the time it next falls free. The k-th job of a batch at a
server starts at the k-th earliest moment any of its workers can take a job,
which is first-come first-served with a shared queue, exactly as a
per-message simulation would do it.

Service times are drawn per (worker, job taken by that worker) rather than per
job. For independent, identically distributed service times the two give the
same joint law; for fixed service times they give the same numbers.

Limitation: a request that crosses several tiers is computed when it starts,
each tier being asked for the time the request will reach it; work that
starts later but reaches the same server earlier runs in the idle time before
the earlier-placed job when it fits there (see `Tier.serve_one`), and
otherwise queues behind it, so FIFO order across such requests holds only to
within the chain's own delay. Batches do not use that idle time.
"""

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sim.metrics import LogHistogram
from sim.scenario import LengthDistribution
from sim.workload import draw_lengths

# Batches up to this size with a fixed service time are served job by job.
SMALL_BATCH = 48


@dataclass
class Settled:
    """Jobs placed one at a time before a batch can go round the workers:
    `count[a]` jobs of row a, stored from `first[a]` in `start`/`finish`."""

    count: np.ndarray
    first: np.ndarray
    start: np.ndarray
    finish: np.ndarray


def _settle(ready: np.ndarray, need: np.ndarray, step: float) -> Settled:
    """Place jobs one by one on the earliest free worker until every row's
    workers fall free within one `step` of each other (or the row's jobs run
    out). Rows are sorted and updated in place."""
    count = np.zeros(len(ready), dtype=np.int64)
    starts: list[float] = []
    finishes: list[float] = []
    first = np.zeros(len(ready), dtype=np.int64)
    for row in np.flatnonzero(ready[:, -1] - ready[:, 0] > step).tolist():
        free = ready[row].tolist()
        first[row] = len(starts)
        placed = 0
        while placed < need[row] and free[-1] - free[0] > step:
            begin = free.pop(0)
            bisect.insort(free, begin + step)
            starts.append(begin)
            finishes.append(begin + step)
            placed += 1
        count[row] = placed
        ready[row] = free
    return Settled(count, first, np.array(starts), np.array(finishes))


@dataclass
class OperationStats:
    """Running totals of one operation on one tier.

    `sojourn` and `waits` hold each job's time from arrival to finish and to
    start. `max_queued` is the largest number of jobs of one arrival that had to
    wait at one server: a lower bound of the longest queue, exact when the
    queue is empty before each arrival (as in a fan-out burst). `absorbed`
    counts the jobs taken as a fluid (see `Tier.absorb`).
    """

    jobs: int = 0
    busy: float = 0.0
    wait: float = 0.0
    max_wait: float = 0.0
    max_queued: int = 0
    absorbed: int = 0
    sojourn: LogHistogram = field(default_factory=LogHistogram)
    waits: LogHistogram = field(default_factory=LogHistogram)


class Tier:
    """A pool of `servers` servers with `workers` workers each.

    `operations` maps an operation name to its service-time distribution.
    `slowdowns` lists (start, end, factor) windows in which service times of
    jobs arriving then are multiplied by the factor. Only jobs arriving at or
    after `counted_from` (the end of the warm-up) enter the statistics; the
    per-slot series cover [0, duration).
    """

    def __init__(
        self,
        name: str,
        servers: int,
        workers: int,
        operations: dict[str, LengthDistribution],
        rng: np.random.Generator,
        duration: float,
        slot: float,
        counted_from: float = 0.0,
        slowdowns: list[tuple[float, float, float]] | None = None,
    ) -> None:
        self.name = name
        self.servers = servers
        self.workers = workers
        self.operations = operations
        self.ops = {op: OperationStats() for op in operations}
        self._fixed = {
            op: spec.mean if spec.distribution == "fixed" else None
            for op, spec in operations.items()
        }
        self.counted_from = counted_from
        self.slowdowns = slowdowns or []
        self._rng = rng
        self._free = np.zeros((servers, workers))
        # Idle (start, end) gaps of each server before jobs placed ahead of
        # their arrival (see `serve_one`); a gap always ends before its
        # worker's next free time, so batches, which start no earlier than
        # that, never run into one.
        self._gaps: list[list[tuple[float, float]]] = [[] for _ in range(servers)]
        self._gap_limit = 64 * workers
        # The simulation's time, no later than any job still to be placed;
        # the strategy that owns the tier sets it.
        self.clock: Callable[[], float] = lambda: -math.inf
        self._slot = slot
        self._slots = max(1, int(np.ceil(duration / slot)))
        self.arrivals = np.zeros(self._slots, dtype=np.int64)
        starts = np.arange(self._slots) * slot
        self._widths = np.minimum(slot, duration - starts)
        self.slot_max_wait = np.zeros(self._slots)
        # Work and jobs per slot of arrival, for the busiest window of a run.
        self.slot_busy = np.zeros(self._slots)
        self.op_arrivals = {
            op: np.zeros(self._slots, dtype=np.int64) for op in operations
        }

    def rates(self) -> np.ndarray:
        """Arrivals per second in each slot (the last slot may be shorter)."""
        return self.arrivals / self._widths

    def server_of(self, users: np.ndarray | int) -> np.ndarray | int:
        """The server that handles a user's traffic (static sharding)."""
        return users % self.servers

    def _factor(self, t: float) -> float:
        factor = 1.0
        for start, end, scale in self.slowdowns:
            if start <= t < end:
                factor *= scale
        return factor

    def _service(self, op: str, size: int = 1) -> float:
        """One service time; a sized job (a batch read of `size` keys) takes
        the sum of `size` draws."""
        fixed = self._fixed[op]
        if fixed is not None:
            return fixed * size
        return float(draw_lengths(self.operations[op], size, self._rng).sum())

    def mean_service(self, op: str) -> float:
        """The mean service time of one job of `op`, without slowdowns."""
        return self.operations[op].mean

    def serve_one(self, t: float, server: int, op: str, size: int = 1) -> float:
        """Serve a single job arriving at time t; return its finish time.

        The jobs of a request chain are placed when the chain starts, ahead
        of their arrival, which leaves a worker idle until the job arrives.
        A job placed later that arrives sooner runs in such an idle gap when
        it fits there and starts no later than elsewhere. Otherwise it takes,
        of the workers free by t, the one freed last, so that placing a job
        ahead leaves the smallest gap. For jobs placed in order of arrival
        neither changes anything: every free worker gives the same start.
        """
        service = self._service(op, size)
        if self.slowdowns:
            service *= self._factor(t)
        free = self._free[server]
        idle = free <= t
        soonest = t if idle.any() else float(free.min())
        gap = self._fitting_gap(server, t, service, soonest)
        if gap is not None:
            start = max(t, gap[0])
            finish = start + service
            self._split_gap(server, gap, start, finish)
        else:
            if idle.any():
                worker = int(np.where(idle, free, -np.inf).argmax())
            else:
                worker = int(free.argmin())
            ready = float(free[worker])
            start = ready if ready > t else t
            finish = start + service
            free[worker] = finish
            if start > ready:
                self._add_gap(server, (ready, start))
        wait = start - t
        self._account(t, 1, op, wait, service, wait, int(wait > 0))
        if t >= self.counted_from:
            self.ops[op].sojourn.add_one(finish - t)
            self.ops[op].waits.add_one(wait)
        return finish

    def _fitting_gap(
        self, server: int, t: float, service: float, soonest: float
    ) -> tuple[float, float] | None:
        """The idle gap of a server where a job arriving at t starts first,
        if it starts there no later than `soonest`; the tightest on a tie."""
        best = None
        for gap in self._gaps[server]:
            start = max(t, gap[0])
            if start + service > gap[1] or start > soonest:
                continue
            if best is None or (start, gap[1]) < (max(t, best[0]), best[1]):
                best = gap
        return best

    def _split_gap(
        self, server: int, gap: tuple[float, float], start: float, finish: float
    ) -> None:
        self._gaps[server].remove(gap)
        for piece in ((gap[0], start), (finish, gap[1])):
            if piece[1] > piece[0]:
                self._add_gap(server, piece)

    def _add_gap(self, server: int, gap: tuple[float, float]) -> None:
        """Remember an idle gap. Gaps that have ended by the clock's time can
        fit no job to come and are dropped once there are a few per worker;
        past a limit the one that ends first is forgotten."""
        gaps = self._gaps[server]
        gaps.append(gap)
        if len(gaps) > 2 * self.workers:
            now = self.clock()
            gaps[:] = [known for known in gaps if known[1] > now]
        if len(gaps) > self._gap_limit:
            gaps.remove(min(gaps, key=lambda known: known[1]))

    def absorb(self, t: float, jobs: np.ndarray, work: np.ndarray, op: str) -> None:
        """Take `jobs[s]` jobs worth `work[s]` seconds at each server s as a
        fluid spread evenly over its workers.

        Used for the bulk reads of polls, whose individual latencies are not
        reported. Each job is taken to wait for the least loaded worker of
        its server.
        """
        ready = np.maximum(self._free, t)
        self._free = ready + (work * self._factor(t) / self.workers)[:, None]
        lag = ready.min(axis=1) - t
        total = int(jobs.sum())
        self._account(
            t,
            total,
            op,
            float((lag * jobs).sum()),
            float(work.sum()) * self._factor(t),
            float(lag.max()),
            0,
        )
        self.ops[op].absorbed += total
        if t >= self.counted_from:
            self.ops[op].waits.add(np.repeat(lag, jobs))

    def serve(self, t: float, servers: np.ndarray, op: str) -> np.ndarray:
        """Serve jobs that all arrive at time t, `servers[i]` taking job i.

        Jobs at one server are queued in the order given. Returns each job's
        finish time, in the order given.
        """
        jobs = len(servers)
        if jobs == 0:
            return np.zeros(0)
        fixed = self._fixed[op]
        if fixed is not None and jobs <= SMALL_BATCH:
            return self._serve_each(t, servers, op, fixed * self._factor(t))
        counts = np.bincount(servers, minlength=self.servers)
        active = np.flatnonzero(counts)
        need = counts[active]
        factor = self._factor(t)
        if fixed is not None:
            ready = np.sort(np.maximum(self._free[active], t), axis=1)
            step = fixed * factor
            settled = _settle(ready, need, step)
            start, finish, row, order = self._serve_in_rounds(
                ready, servers, counts, active, step, settled
            )
            self._free[active] = ready
            return self._finish_batch(t, op, start, finish, row, order, active)
        start, finish, row, order = self._serve_by_slots(t, servers, active, need, op)
        return self._finish_batch(t, op, start, finish, row, order, active)

    def _serve_each(
        self, t: float, servers: np.ndarray, op: str, step: float
    ) -> np.ndarray:
        """A small batch with a fixed service time, one job at a time: for a
        few jobs plain Python beats the vectorised path."""
        targets = servers.tolist()
        touched = sorted(set(targets))
        rows = {server: self._free[server].tolist() for server in touched}
        finishes = []
        waits = 0.0
        longest = 0.0
        queued: dict[int, int] = dict.fromkeys(touched, 0)
        for server in targets:
            row = rows[server]
            ready = min(row)
            start = ready if ready > t else t
            finish = start + step
            row[row.index(ready)] = finish
            finishes.append(finish)
            wait = start - t
            if wait > 0:
                waits += wait
                longest = max(longest, wait)
                queued[server] += 1
        for server in touched:
            self._free[server] = rows[server]
        result = np.array(finishes)
        self._account(
            t,
            len(targets),
            op,
            waits,
            step * len(targets),
            longest,
            max(queued.values()),
        )
        if t >= self.counted_from:
            self.ops[op].sojourn.add(result - t)
            self.ops[op].waits.add(np.maximum(result - step - t, 0.0))
        return result

    def _serve_in_rounds(
        self,
        ready: np.ndarray,
        servers: np.ndarray,
        counts: np.ndarray,
        active: np.ndarray,
        step: float,
        settled: "Settled",
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Fixed service once the workers fall free within one service time of
        each other: the batch goes round the workers in order of their ready
        times, one round per `step`. The first jobs of a server may already
        have been placed one by one (`settled`). Updates `ready` in place to
        the new free times."""
        order = np.argsort(servers.astype(np.int32), kind="stable")
        offsets = np.zeros(self.servers + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        sorted_servers = servers[order]
        rank = np.arange(len(servers)) - offsets[sorted_servers]
        row_of = np.zeros(self.servers, dtype=np.int64)
        row_of[active] = np.arange(len(active))
        row = row_of[sorted_servers]
        early = rank < settled.count[row]
        rank = rank - settled.count[row]
        column = np.where(early, 0, rank % self.workers)
        rounds = np.where(early, 0, rank // self.workers)

        # chain[a, w, m]: ready time plus m services, added one at a time as a
        # per-message simulation would, so the numbers agree to the bit.
        deepest = int(rounds.max()) + 1
        chain = np.empty((len(active), self.workers, deepest + 1))
        chain[:, :, 0] = ready
        chain[:, :, 1:] = step
        np.cumsum(chain, axis=2, out=chain)
        start = chain[row, column, rounds]
        finish = chain[row, column, rounds + 1]
        late = ~early
        taken = np.bincount(
            row[late] * self.workers + column[late], minlength=ready.size
        ).reshape(ready.shape)
        ready[:] = np.take_along_axis(chain, taken[:, :, None], axis=2)[:, :, 0]
        if early.any():
            place = settled.first[row[early]] + rank[early] + settled.count[row[early]]
            start[early] = settled.start[place]
            finish[early] = settled.finish[place]
        return start, finish, row, order

    def _serve_by_slots(
        self,
        t: float,
        servers: np.ndarray,
        active: np.ndarray,
        need: np.ndarray,
        op: str,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Any service law: draw each worker's next services, and give the
        batch's jobs the earliest start slots in order."""
        ready = np.maximum(self._free[active], t)
        per_worker = int(-(-need.max() // self.workers)) + 2
        factor = self._factor(t)
        rows = np.arange(len(active))
        while True:
            # slots[a, w, k]: when worker w of server a starts its k-th next
            # job; slots[..., -1] is when it falls free after all of them.
            service = draw_lengths(
                self.operations[op], (len(active), self.workers, per_worker), self._rng
            )
            if factor != 1.0:
                service *= factor
            slots = np.cumsum(
                np.concatenate([ready[:, :, None], service], axis=2), axis=2
            )
            starts = slots[:, :, :-1].reshape(len(active), -1)
            order = np.argsort(starts, axis=1, kind="stable")
            last = starts[rows, order[rows, need - 1]]
            # Enough slots were drawn when no worker could start an undrawn job
            # before the last job of the batch starts.
            if np.all(last <= slots[:, :, -1].min(axis=1)):
                break
            per_worker *= 2

        taken = np.arange(starts.shape[1])[None, :] < need[:, None]
        chosen = order[taken]
        row = np.repeat(rows, need)
        worker = chosen // per_worker
        position = chosen % per_worker
        start = slots[row, worker, position]
        finish = slots[row, worker, position + 1]
        used = np.bincount(row * self.workers + worker, minlength=ready.size)
        used = used.reshape(ready.shape)
        self._free[active] = np.take_along_axis(slots, used[:, :, None], axis=2)[
            :, :, 0
        ]
        return start, finish, row, np.argsort(servers, kind="stable")

    def _finish_batch(
        self,
        t: float,
        op: str,
        start: np.ndarray,
        finish: np.ndarray,
        row: np.ndarray,
        order: np.ndarray,
        active: np.ndarray,
    ) -> np.ndarray:
        """Account for a served batch; finish times back in the given order."""
        waits = start - t
        waited = waits > 0
        queued = (
            int(np.bincount(row[waited], minlength=len(active)).max())
            if waited.any()
            else 0
        )
        self._account(
            t,
            len(start),
            op,
            float(waits.sum()),
            float((finish - start).sum()),
            float(waits.max()),
            queued,
        )
        if t >= self.counted_from:
            self.ops[op].sojourn.add(finish - t)
            self.ops[op].waits.add(waits)
        result = np.empty(len(start))
        result[order] = finish
        return result

    def _account(
        self,
        t: float,
        jobs: int,
        op: str,
        wait: float,
        busy: float,
        max_wait: float,
        queued: int,
    ) -> None:
        slot = min(int(t / self._slot), self._slots - 1)
        self.arrivals[slot] += jobs
        self.slot_busy[slot] += busy
        self.op_arrivals[op][slot] += jobs
        if max_wait > self.slot_max_wait[slot]:
            self.slot_max_wait[slot] = max_wait
        if t < self.counted_from:
            return
        stats = self.ops[op]
        stats.jobs += jobs
        stats.busy += busy
        stats.wait += wait
        if max_wait > stats.max_wait:
            stats.max_wait = float(max_wait)
        if queued > stats.max_queued:
            stats.max_queued = queued

    # Totals over operations, for the tier tables.

    @property
    def jobs(self) -> int:
        return sum(s.jobs for s in self.ops.values())

    @property
    def busy(self) -> float:
        return sum(s.busy for s in self.ops.values())

    @property
    def wait(self) -> float:
        return sum(s.wait for s in self.ops.values())

    @property
    def max_wait(self) -> float:
        return max((s.max_wait for s in self.ops.values()), default=0.0)

    @property
    def max_queued(self) -> int:
        return max((s.max_queued for s in self.ops.values()), default=0)
