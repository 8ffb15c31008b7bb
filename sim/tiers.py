"""Server tiers: pools of servers, each with workers and one FIFO queue.

A tier never sees one SimPy event per message. A batch of jobs that reach a
tier at the same instant (the pushes of one fan-out, the polls of one slot) is
served in one vectorised step that keeps, per worker, the time it next falls
free. The k-th job of a batch at a server starts at the k-th earliest moment
any of its workers can take a job, which is first-come first-served with a
shared queue, exactly as a per-message simulation would do it.

Service times are drawn per (worker, job taken by that worker) rather than per
job. For independent, identically distributed service times the two give the
same joint law; for fixed service times they give the same numbers.
"""

from dataclasses import dataclass, field

import numpy as np

from sim.scenario import LengthDistribution
from sim.workload import draw_lengths


@dataclass
class TierStats:
    """Running totals of one tier, enough for means and utilisation."""

    jobs: int = 0
    busy: float = 0.0
    wait: float = 0.0
    max_wait: float = 0.0
    jobs_by_op: dict[str, int] = field(default_factory=dict)


class Tier:
    """A pool of `servers` servers with `workers` workers each.

    `operations` maps an operation name to its service-time distribution.
    Arrivals are counted per time slot of width `slot` over `duration`.
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
    ) -> None:
        self.name = name
        self.servers = servers
        self.workers = workers
        self.operations = operations
        self.stats = TierStats(jobs_by_op={op: 0 for op in operations})
        self._rng = rng
        self._free = np.zeros((servers, workers))
        self._slot = slot
        self._slots = max(1, int(np.ceil(duration / slot)))
        self.arrivals = np.zeros(self._slots, dtype=np.int64)

    def server_of(self, users: np.ndarray | int) -> np.ndarray | int:
        """The server that handles a user's traffic (static sharding)."""
        return users % self.servers

    def serve_one(self, t: float, server: int, op: str) -> float:
        """Serve a single job arriving at time t; return its finish time."""
        free = self._free[server]
        worker = int(free.argmin())
        start = max(t, float(free[worker]))
        service = float(draw_lengths(self.operations[op], 1, self._rng)[0])
        free[worker] = start + service
        self._account(t, 1, op, start - t, service, start - t)
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

        while True:
            # slots[a, w, k]: when worker w of server a starts its k-th next
            # job; slots[..., -1] is when it falls free after all of them.
            service = draw_lengths(
                self.operations[op], (len(active), self.workers, per_worker), self._rng
            )
            # Summing from the ready time adds one service at a time, as a
            # per-message simulation would, so fixed times agree to the bit.
            slots = np.cumsum(
                np.concatenate([ready[:, :, None], service], axis=2), axis=2
            )
            starts = slots[:, :, :-1].reshape(len(active), -1)
            order = np.argsort(starts, axis=1, kind="stable")
            rows = np.arange(len(active))
            last = starts[rows, order[rows, need - 1]]
            # Enough slots were drawn when no worker could start an undrawn job
            # before the last job of the batch starts.
            if np.all(last <= slots[:, :, -1].min(axis=1)):
                break
            per_worker *= 2

        taken = np.arange(starts.shape[1])[None, :] < need[:, None]
        chosen = order[taken]
        row = np.repeat(np.arange(len(active)), need)
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
        self._account(
            t, jobs, op, float(waits.sum()), float((finish - start).sum()), waits.max()
        )
        result = np.empty(jobs)
        result[np.argsort(servers, kind="stable")] = finish
        return result

    def _account(
        self, t: float, jobs: int, op: str, wait: float, busy: float, max_wait: float
    ) -> None:
        slot = min(int(t / self._slot), self._slots - 1)
        self.arrivals[slot] += jobs
        self.stats.jobs += jobs
        self.stats.busy += busy
        self.stats.wait += wait
        self.stats.max_wait = max(self.stats.max_wait, float(max_wait))
        self.stats.jobs_by_op[op] += jobs
