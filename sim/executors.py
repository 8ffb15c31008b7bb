"""Where runs are computed: this process, a local process pool, or Dask.

All three take a function and one argument and hand back futures; the runner
keeps a bounded number of runs in flight and collects them as they finish.
A run's numbers depend only on its scenario and replication, never on where
it ran, so every executor gives the same tables.
"""

import logging
import multiprocessing
import signal
from collections.abc import Callable, Iterator
from concurrent import futures as local_futures
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sim.errors import PresenceSimError

log = logging.getLogger(__name__)


class Executor(Protocol):
    """What the runner needs from a place that computes runs."""

    def capacity(self) -> int:
        """How many runs to keep in flight."""

    def submit(self, function: Callable[[Any], Any], argument: Any) -> Any:
        """Start `function(argument)`; return its future."""

    def wait(self, pending: list[Any]) -> list[Any]:
        """Block until at least one of `pending` is done; return the done ones."""

    def stop(self) -> None:
        """Abandon the runs in flight at once (after an interrupt)."""


@dataclass(frozen=True)
class ExecutorChoice:
    """The executor asked for: `jobs` local workers, or a Dask cluster.

    `dask` is None for the local process pool, `"local"` for a Dask cluster of
    `jobs` worker processes on this machine, or a scheduler address such as
    `tcp://10.0.0.5:8786`. One job without Dask runs in this process.
    """

    jobs: int = 1
    dask: str | None = None

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise PresenceSimError(f"-j/--jobs: must be at least 1, not {self.jobs}")
        if self.dask is not None and self.dask != "local" and "://" not in self.dask:
            raise PresenceSimError(
                f"--dask: expected 'local' or a scheduler address such as "
                f"tcp://HOST:8786, not {self.dask!r}"
            )

    def describe(self) -> str:
        if self.dask == "local":
            return f"a local Dask cluster of {self.jobs} workers"
        if self.dask:
            return f"the Dask cluster at {self.dask}"
        if self.jobs == 1:
            return "this process"
        return f"{self.jobs} local worker processes"

    @contextmanager
    def open(self, runs: int) -> Iterator[Executor]:
        """The executor, for `runs` runs; closed when the block ends."""
        if self.dask is not None:
            with _dask_executor(self.dask, self.jobs) as executor:
                yield executor
        elif self.jobs == 1 or runs == 1:
            yield InProcess()
        else:
            pool = ProcessPool(min(self.jobs, runs))
            try:
                yield pool
            finally:
                pool.close()


def describe_failure(error: BaseException) -> str:
    """Why a run failed, in words that point at the cause."""
    if isinstance(error, BrokenProcessPool):
        return (
            "the worker process running it died (killed, or out of memory?); "
            "every run in flight on the pool at that moment is reported failed"
        )
    if type(error).__name__ == "KilledWorker":
        return f"every Dask worker that tried it died ({error})"
    return f"{type(error).__name__}: {error}"


class InProcess:
    """Runs each run at submission, in this process: `-j 1`, easy to debug."""

    def capacity(self) -> int:
        return 1

    def submit(self, function: Callable[[Any], Any], argument: Any) -> Any:
        future: local_futures.Future = local_futures.Future()
        try:
            future.set_result(function(argument))
        except Exception as error:
            future.set_exception(error)
        return future

    def wait(self, pending: list[Any]) -> list[Any]:
        return [future for future in pending if future.done()]

    def stop(self) -> None:
        """Nothing runs in the background."""


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group; the parent alone decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class ProcessPool:
    """A pool of local worker processes (`concurrent.futures`).

    Workers are started fresh ("spawn"), not forked from a process that runs
    a progress bar's thread. A pool whose worker died is replaced, so the
    remaining runs still go ahead.

    Limitation: when a worker process dies, every run in flight on the pool at
    that moment is reported failed, not only the one that killed it.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = self._start()

    def _start(self) -> local_futures.ProcessPoolExecutor:
        return local_futures.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_ignore_interrupts,
        )

    def capacity(self) -> int:
        return self.workers

    def submit(self, function: Callable[[Any], Any], argument: Any) -> Any:
        try:
            return self._pool.submit(function, argument)
        except BrokenProcessPool:
            log.info("a worker process died; starting a new pool")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()
            return self._pool.submit(function, argument)

    def wait(self, pending: list[Any]) -> list[Any]:
        done, _ = local_futures.wait(pending, return_when=local_futures.FIRST_COMPLETED)
        return list(done)

    def stop(self) -> None:
        # Before Python 3.14 the pool has no public way to end running work.
        for process in list((self._pool._processes or {}).values()):
            process.terminate()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Runs on a Dask cluster through a `distributed.Client`.

    Limitation: every worker needs the same presence-sim version installed,
    and real-graph files at the same absolute paths as the machine that
    starts the runs.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self._submitted: list[Any] = []

    def capacity(self) -> int:
        threads = sum(self.client.nthreads().values())
        return max(1, threads)

    def submit(self, function: Callable[[Any], Any], argument: Any) -> Any:
        future = self.client.submit(function, argument, pure=False)
        self._submitted.append(future)
        return future

    def wait(self, pending: list[Any]) -> list[Any]:
        import distributed

        done, _ = distributed.wait(pending, return_when="FIRST_COMPLETED")
        return list(done)

    def stop(self) -> None:
        self.client.cancel(self._submitted)


@contextmanager
def _dask_executor(address: str, jobs: int) -> Iterator[DaskExecutor]:
    import distributed

    if address == "local":
        cluster = distributed.LocalCluster(
            n_workers=jobs,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        with cluster, distributed.Client(cluster) as client:
            yield DaskExecutor(client)
        return

    try:
        client = distributed.Client(address, timeout="10s")
    except (OSError, TimeoutError) as error:
        raise PresenceSimError(
            f"--dask: no Dask scheduler answered at {address} ({error}); start "
            "one with `dask scheduler` or give --dask local"
        ) from None
    with client:
        if not client.nthreads():
            log.warning("the Dask cluster at %s has no workers yet", address)
        yield DaskExecutor(client)
