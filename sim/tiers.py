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
starts later but reaches the same server earlier queues behind it, so FIFO
order across such requests holds only to within the chain's own delay.
"""

from dataclasses import dataclass, field

import numpy as np

from sim.metrics import LogHistogram
from sim.scenario import LengthDistribution
from sim.workload import draw_lengths


@dataclass
class OperationStats:
    """Running totals of one operation on one tier.

    `max_queued` is the largest number of jobs of one arrival that had to
    wait at one server: a lower bound of the longest queue, exact when the
    queue is empty before each arrival (as in a fan-out burst).
    """

    jobs: int = 0
    busy: float = 0.0
    wait: float = 0.0
    max_wait: float = 0.0
    max_queued: int = 0
    sojourn: LogHistogram = field(default_factory=LogHistogram)


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
        self.counted_from = counted_from
        self.slowdowns = slowdowns or []
        self._rng = rng
        self._free = np.zeros((servers, workers))
        self._slot = slot
        self._slots = max(1, int(np.ceil(duration / slot)))
        self.arrivals = np.zeros(self._slots, dtype=np.int64)
        self.slot_max_wait = np.zeros(self._slots)

    def server_of(self, users: np.ndarray | int) -> np.ndarray | int:
        """The server that handles a user's traffic (static sharding)."""
        return users % self.servers

    def _factor(self, t: float) -> float:
        factor = 1.0
        for start, end, scale in self.slowdowns:
            if start <= t < end:
                factor *= scale
        return factor

    def serve_one(self, t: float, server: int, op: str) -> float:
        """Serve a single job arriving at time t; return its finish time."""
        free = self._free[server]
        worker = int(free.argmin())
        start = max(t, float(free[worker]))
        service = float(draw_lengths(self.operations[op], 1, self._rng)[0])
        service *= self._factor(t)
        free[worker] = start + service
        wait = start - t
        self._account(t, 1, op, wait, service, wait, int(wait > 0))
        if t >= self.counted_from:
            self.ops[op].sojourn.add_one(wait + service)
        return start + service

    def serve(self, t: float, servers: np.ndarray, op: str) -> np.ndarray:
        """Serve jobs that all arrive at time t, `servers[i]` taking job i.

        Jobs at one server are queued in the order given. Returns each job's
        finish time, in the order given.
        """
        jobs = len(servers)
        if jobs == 0:
            return np.zeros(0)
        counts = np.bincount(servers, minlength=self.servers)
        active = np.flatnonzero(counts)
        need = counts[active]
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
            # Summing from the ready time adds one service at a time, as a
            # per-message simulation would, so fixed times agree to the bit.
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

        waits = start - t
        queued = int(np.bincount(row[waits > 0], minlength=len(active)).max())
        self._account(
            t,
            jobs,
            op,
            float(waits.sum()),
            float((finish - start).sum()),
            waits.max(),
            queued,
        )
        if t >= self.counted_from:
            self.ops[op].sojourn.add(finish - t)
        result = np.empty(jobs)
        result[np.argsort(servers, kind="stable")] = finish
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
