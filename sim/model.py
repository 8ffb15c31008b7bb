"""The SimPy model: one event per user action, replayed for every strategy.

Three processes feed the strategies: status changes (logins and logouts),
group visits, and the ticks of the load time-series slots (where polling is
computed for the whole slot at once). The strategies react to each event with
vectorised fan-outs; deliveries that happen later are scheduled as one event
per fan-out, never one per message.
"""

import logging
from collections.abc import Callable, Iterator

import numpy as np
import simpy

from sim.graph import SocialGraph
from sim.scenario import Scenario
from sim.workload import Workload

log = logging.getLogger(__name__)

Progress = Callable[[float], None]


class World:
    """The state every strategy reads: who is online, and until when."""

    def __init__(
        self, scenario: Scenario, graph: SocialGraph, workload: Workload
    ) -> None:
        self.scenario = scenario
        self.graph = graph
        self.workload = workload
        self.env = simpy.Environment()
        self.online = workload.initially_online.copy()
        self.until = workload.initial_until.copy()

    @property
    def now(self) -> float:
        return self.env.now

    def at(self, time: float, action: Callable[[], None]) -> None:
        """Run `action` at simulated `time` (not before now)."""
        event = self.env.timeout(max(0.0, time - self.env.now))
        event.callbacks.append(lambda _event: action())


class Change:
    """One status change of one user, with its audiences computed on demand.

    Strategies that share an audience share the computation.
    """

    __slots__ = ("time", "user", "online", "world", "_friends", "_groups")

    def __init__(self, time: float, user: int, online: bool, world: World) -> None:
        self.time = time
        self.user = user
        self.online = online
        self.world = world
        self._friends: np.ndarray | None = None
        self._groups: np.ndarray | None = None

    def friend_observers(self) -> np.ndarray:
        """Online reverse friends: the users who added this user and are online."""
        if self._friends is None:
            reverse = self.world.graph.reverse.row(self.user)
            self._friends = reverse[self.world.online[reverse]]
        return self._friends

    def group_recipients(self) -> np.ndarray:
        """Online members of each of the user's groups, once per group."""
        if self._groups is None:
            graph = self.world.graph
            members = graph.members.gather(graph.groups.row(self.user))
            keep = self.world.online[members] & (members != self.user)
            self._groups = members[keep]
        return self._groups


class Simulation:
    """Runs the workload through every strategy in one pass of SimPy."""

    def __init__(self, world: World, strategies: list, progress: Progress | None):
        self.world = world
        self.strategies = strategies
        self.progress = progress

    def run(self) -> None:
        env = self.world.env
        env.process(self._changes())
        env.process(self._visits())
        env.process(self._slots())
        env.run()
        log.info("simulated %.0f s, %d events", env.now, self.world.workload.changes)

    def _changes(self) -> Iterator[simpy.Event]:
        workload = self.world.workload
        env = self.world.env
        online, until = self.world.online, self.world.until
        times = workload.change_time.tolist()
        users = workload.change_user.tolist()
        statuses = workload.change_online.tolist()
        ends = workload.change_until.tolist()
        for time, user, status, end in zip(times, users, statuses, ends, strict=True):
            yield env.timeout(max(0.0, time - env.now))
            online[user] = status
            until[user] = end
            change = Change(time, user, status, self.world)
            for strategy in self.strategies:
                strategy.on_change(change)

    def _visits(self) -> Iterator[simpy.Event]:
        workload = self.world.workload
        env = self.world.env
        visits = zip(
            workload.visit_time.tolist(),
            workload.visit_user.tolist(),
            workload.visit_group.tolist(),
            strict=True,
        )
        for time, user, group in visits:
            yield env.timeout(max(0.0, time - env.now))
            for strategy in self.strategies:
                strategy.on_visit(time, user, group)

    def _slots(self) -> Iterator[simpy.Event]:
        env = self.world.env
        duration = self.world.workload.duration
        slot = self.world.scenario.metrics.slot
        count = int(np.ceil(duration / slot))
        for index in range(count):
            start = index * slot
            end = min(duration, start + slot)
            yield env.timeout(max(0.0, start - env.now))
            for strategy in self.strategies:
                strategy.on_slot(start, end)
            if self.progress is not None:
                self.progress(end / duration)
