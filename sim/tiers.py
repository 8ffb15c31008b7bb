"""Server tiers: pools of servers, each with workers and one FIFO queue.

A tier never sees one SimPy event per message. A batch of jobs that reach a
tier at the same instant (the pushes of one fan-out, the key reads of one
batch read, the polls of one slot) is handed to a compiled kernel
(`sim.fifo`) in one call, which serves it job by job: the k-th job of a batch
at a server takes the earliest free worker, first-come first-served with a
shared queue, with the same arithmetic as a per-message simulation.

Limitation: a request that crosses several tiers is computed when it starts,
each tier being asked for the time the request will reach it; work that
starts later but reaches the same server earlier runs in the idle time before
the earlier-placed job when it fits there (see `Tier.serve_one`), and
otherwise queues behind it, so FIFO order across such requests holds only to
within the chain's own delay. Batches do not use that idle time.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sim import fifo
from sim.metrics import LogHistogram
from sim.scenario import LengthDistribution
from sim.workload import draw_lengths

# Random service times are drawn this many at a time per operation.
DRAW_BLOCK = 4096


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
        self._index = {op: k for k, op in enumerate(operations)}
        self._fixed = {
            op: spec.mean if spec.distribution == "fixed" else None
            for op, spec in operations.items()
        }
        self.random_ops = [op for op, fixed in self._fixed.items() if fixed is None]
        self.counted_from = counted_from
        self.slowdowns = slowdowns or []
        self._rng = rng
        # The simulation's time, no later than any job still to be placed;
        # the strategy that owns the tier sets it.
        self.clock: Callable[[], float] = lambda: -math.inf
        self._slots = max(1, int(np.ceil(duration / slot)))
        starts = np.arange(self._slots) * slot
        self._widths = np.minimum(slot, duration - starts)
        ops = len(operations)
        self._absorbed = np.zeros(ops, dtype=np.int64)
        # Idle (start, end) gaps of each server before jobs placed ahead of
        # their arrival (see `serve_one`), at most 64 per worker; a gap always
        # ends before its worker's next free time, so batches, which start
        # no earlier than that, never run into one.
        self.buffers = fifo.pack(
            servers,
            workers,
            64 * workers + 1,
            ops,
            self._slots,
            len(self.slowdowns),
            DRAW_BLOCK if self.random_ops else 0,
        )
        self.state = fifo.unpack.py_func(*self.buffers)
        self.state[fifo.PARAMS][:] = (slot, counted_from)
        self.state[fifo.FIXED][:] = [
            math.nan if v is None else v for v in self._fixed.values()
        ]
        if self.slowdowns:
            self.state[fifo.SLOWDOWNS][:] = self.slowdowns
        for op in self.random_ops:
            self.state[fifo.DRAW_NEXT][self._index[op]] = DRAW_BLOCK

    def __getstate__(self) -> dict:
        # The clock reads the owner's simulation, which stays behind; the
        # state is views into the buffers, made again after unpickling.
        state = dict(self.__dict__)
        del state["clock"], state["state"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.clock = lambda: -math.inf
        self.state = fifo.unpack.py_func(*self.buffers)

    # Per-slot series.

    @property
    def arrivals(self) -> np.ndarray:
        """Jobs arriving in each slot."""
        return self.state[fifo.SLOT_JOBS].sum(axis=0)

    @property
    def op_arrivals(self) -> dict[str, np.ndarray]:
        return {op: self.state[fifo.SLOT_JOBS][k] for op, k in self._index.items()}

    @property
    def slot_busy(self) -> np.ndarray:
        """Work (seconds of service) arriving in each slot."""
        return self.state[fifo.SLOT_LOAD][0]

    @property
    def slot_max_wait(self) -> np.ndarray:
        """The longest wait of a job arriving in each slot."""
        return self.state[fifo.SLOT_LOAD][1]

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

    def op_index(self, op: str) -> int:
        """Where `op` sits in the state's per-operation arrays."""
        return self._index[op]

    def reserve(self, op: str, size: int) -> None:
        """Make sure `size` service times of `op` are drawn ahead (nothing to
        do for a fixed service time)."""
        if self._fixed[op] is not None:
            return
        draws, taken = self.state[fifo.DRAWS], self.state[fifo.DRAW_NEXT]
        k = self._index[op]
        if draws.shape[1] - taken[k] >= size:
            return
        width = max(draws.shape[1], size)
        if width > draws.shape[1]:
            self._widen_draws(width)
            draws, taken = self.state[fifo.DRAWS], self.state[fifo.DRAW_NEXT]
        left = draws[k, taken[k] :].copy()
        fresh = draw_lengths(self.operations[op], width - len(left), self._rng)
        draws[k] = np.concatenate([left, fresh])
        taken[k] = 0

    def _widen_draws(self, width: int) -> None:
        """Room for `width` draws per operation: new buffers holding the same
        state, each operation's undrawn services kept at the end of its row."""
        old = self.state
        sizes = self.buffers[1][: fifo.HEADER].copy()
        sizes[-1] = width
        self.buffers = fifo.pack(*sizes.tolist())
        self.state = fifo.unpack.py_func(*self.buffers)
        for part, values in enumerate(old[: fifo.DRAWS]):
            self.state[part][...] = values
        draws, taken = self.state[fifo.DRAWS], self.state[fifo.DRAW_NEXT]
        for row in range(draws.shape[0]):
            left = old[fifo.DRAWS][row, old[fifo.DRAW_NEXT][row] :]
            draws[row, width - len(left) :] = left
            taken[row] = width - len(left)

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
        self.reserve(op, size)
        return fifo.serve_job(
            self.buffers, t, server, self._index[op], size, self.clock()
        )

    def absorb(self, t: float, jobs: np.ndarray, work: np.ndarray, op: str) -> None:
        """Take `jobs[s]` jobs worth `work[s]` seconds at each server s as a
        fluid spread evenly over its workers.

        Used for the bulk reads of polls, whose individual latencies are not
        reported. Each job is taken to wait for the least loaded worker of
        its server.
        """
        factor = self._factor(t)
        ready = np.maximum(self.state[fifo.FREE], t)
        self.state[fifo.FREE][:] = ready + (work * factor / self.workers)[:, None]
        lag = ready.min(axis=1) - t
        index = self._index[op]
        fifo.account(
            self.state,
            index,
            t,
            int(jobs.sum()),
            float(work.sum()) * factor,
            float((lag * jobs).sum()),
            float(lag.max()),
            0,
        )
        if t >= self.counted_from:
            self._absorbed[index] += int(jobs.sum())
            fifo.record_waits(self.state, index, lag, jobs)

    def serve(self, t: float, servers: np.ndarray, op: str) -> np.ndarray:
        """Serve jobs that all arrive at time t, `servers[i]` taking job i.

        Jobs at one server are queued in the order given. Returns each job's
        finish time, in the order given.
        """
        if len(servers) == 0:
            return np.zeros(0)
        self.reserve(op, len(servers))
        finish = np.empty(len(servers))
        fifo.serve_jobs(self.buffers, t, servers, self._index[op], finish)
        return finish

    # Totals per operation and over operations, for the tier tables.

    @property
    def ops(self) -> dict[str, OperationStats]:
        """Each operation's totals after the warm-up."""
        result = {}
        for op, k in self._index.items():
            busy, wait, max_wait, sojourn_sum, wait_sum = self.state[fifo.TOTALS][
                k
            ].tolist()
            jobs, max_queued, sojourns, waits = self.state[fifo.COUNTS][k].tolist()
            result[op] = OperationStats(
                jobs=jobs,
                busy=busy,
                wait=wait,
                max_wait=max_wait,
                max_queued=max_queued,
                absorbed=int(self._absorbed[k]),
                sojourn=LogHistogram.from_counts(
                    self.state[fifo.HIST][0, k], sojourn_sum, sojourns
                ),
                waits=LogHistogram.from_counts(
                    self.state[fifo.HIST][1, k], wait_sum, waits
                ),
            )
        return result

    @property
    def jobs(self) -> int:
        return int(self.state[fifo.COUNTS][:, 0].sum())

    @property
    def busy(self) -> float:
        return float(self.state[fifo.TOTALS][:, 0].sum())

    @property
    def wait(self) -> float:
        return float(self.state[fifo.TOTALS][:, 1].sum())

    @property
    def max_wait(self) -> float:
        return float(self.state[fifo.TOTALS][:, 2].max(initial=0.0))

    @property
    def max_queued(self) -> int:
        return int(self.state[fifo.COUNTS][:, 1].max(initial=0))
