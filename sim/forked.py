"""The strategies of one run shared among forked processes.

Strategies never affect one another or the workload: each owns its copy of
the tiers, and the world they read is shaped by the user events alone. A run
can therefore give each of a few processes some of the strategies; every
process replays the same events, and the parent takes the finished
strategies back. The numbers are the same as in one process.

Limitation: processes are made by forking, so the split needs a POSIX
system and a parent that may have children (not a daemonic pool worker);
elsewhere the strategies run one after another in the parent.
"""

import logging
import multiprocessing
import signal
import sys
import traceback
from multiprocessing.connection import Connection

from sim.errors import RunAborted
from sim.model import Progress, Simulation, World
from sim.protocol.base import Strategy

log = logging.getLogger(__name__)

# Rough work of each strategy against a friend push, measured on the seed
# scenario; it decides which strategies share a process.
WEIGHTS = {
    ("friends", "push"): 1.5,
    ("friends", "poll"): 2.0,
    ("groups", "push"): 4.0,
    ("groups", "push_dedup"): 6.0,
    ("groups", "poll"): 4.0,
}


def can_fork() -> bool:
    """Whether this process may fork workers for a run."""
    return (
        sys.platform != "win32"
        and "fork" in multiprocessing.get_all_start_methods()
        and not multiprocessing.current_process().daemon
    )


def share(strategies: list[Strategy], processes: int) -> list[list[int]]:
    """Strategy positions per process: heaviest first, each to the least
    loaded process. The first list, run by the parent, is the heaviest."""
    loads = [0.0] * min(processes, len(strategies))
    shares: list[list[int]] = [[] for _ in loads]
    order = sorted(
        range(len(strategies)),
        key=lambda i: -WEIGHTS.get(strategies[i].key, 1.0),
    )
    for i in order:
        lightest = loads.index(min(loads))
        shares[lightest].append(i)
        loads[lightest] += WEIGHTS.get(strategies[i].key, 1.0)
    heaviest_first = sorted(range(len(shares)), key=lambda k: -loads[k])
    return [sorted(shares[k]) for k in heaviest_first if shares[k]]


def simulate(
    world: World,
    strategies: list[Strategy],
    progress: Progress | None,
    processes: int,
) -> None:
    """Run every strategy over the world's events, in up to `processes`
    processes; the strategies end as if run in this one."""
    if processes <= 1 or len(strategies) < 2 or not can_fork():
        Simulation(world, strategies, progress).run()
        return

    shares = share(strategies, processes)
    context = multiprocessing.get_context("fork")
    children = []
    try:
        for part in shares[1:]:
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(
                target=_simulate_part,
                args=(world, [strategies[i] for i in part], sender, receiver),
                daemon=True,
            )
            process.start()
            sender.close()
            children.append((part, process, receiver))
        log.info("strategies shared among %d processes: %s", len(shares), shares)

        Simulation(world, [strategies[i] for i in shares[0]], progress).run()
        for part, process, receiver in children:
            try:
                outcome = receiver.recv()
            except EOFError:
                outcome = None
            process.join()
            if not isinstance(outcome, list):
                names = ", ".join("/".join(strategies[i].key) for i in part)
                raise RunAborted(
                    f"the process simulating {names} stopped before it finished "
                    f"(exit code {process.exitcode}){outcome or ''}"
                )
            for i, state in zip(part, outcome, strict=True):
                strategies[i].adopt(state)
    finally:
        # On an interrupt or an error here, no worker outlives the run.
        for _, process, receiver in children:
            if process.is_alive():
                process.terminate()
            process.join()
            receiver.close()


def _simulate_part(
    world: World,
    strategies: list[Strategy],
    sender: Connection,
    receiver: Connection,
) -> None:
    # The parent alone answers Ctrl-C and `kill`, and stops its workers; with
    # the pipe's reading end closed here, a worker whose parent is gone
    # stops at its first write instead of waiting for ever.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    receiver.close()
    try:
        Simulation(world, strategies, None).run()
        sender.send([strategy.outcome() for strategy in strategies])
    except Exception:
        sender.send(":\n" + traceback.format_exc())
    finally:
        sender.close()
