"""The SimPy model: one event per user action, replayed for every strategy.

Three processes feed the strategies: user events (logins, status switches,
logouts, vanished clients and heartbeat timeouts), group visits, and the
ticks of the load time-series slots (where polling and heartbeats are
computed for the whole slot at once). Strategies react with batch fan-outs;
the arrival of a push at the gateways, later, is one follow-up per fan-out,
never one per message, run by the user-event process in time order.

Limitation: each status change still costs about 13 microseconds of Python
around the compiled kernels (the event loop, the world update, the calls into
the kernels), which bounds the speed-up over a per-message model when changes
have few recipients: 24x for a friend push at N = 40 (`make bench`).
"""

import heapq
import itertools
import logging
import math
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np
import simpy

from sim.fanout import connected_members, connected_row
from sim.graph import SocialGraph
from sim.scenario import Scenario
from sim.workload import (
    DISCONNECT,
    INVISIBLE,
    LOGIN,
    LOGOUT,
    OFFLINE,
    SWITCH,
    TIMEOUT,
    Workload,
)

log = logging.getLogger(__name__)

Progress = Callable[[float], None]


class World:
    """The state every strategy reads.

    `present` says whether a user's client is connected; `connected` whether
    the server believes so (they differ for a ghost: a client that vanished
    before its heartbeat timeout). `mode` is the status the user chose;
    observers see `shown`, which is offline unless connected and visible.

    `replication` is the index of the run's random streams (0 for one run).
    """

    def __init__(
        self,
        scenario: Scenario,
        graph: SocialGraph,
        workload: Workload,
        replication: int = 0,
    ) -> None:
        self.scenario = scenario
        self.replication = replication
        self.graph = graph
        self.workload = workload
        self.warmup = scenario.warmup
        self.env = simpy.Environment()
        users = graph.users
        sessions = workload.sessions
        running = np.flatnonzero(sessions.start < 0)
        self.present = np.zeros(users, dtype=bool)
        self.connected = np.zeros(users, dtype=bool)
        self.mode = np.zeros(users, dtype=np.int8)
        self.session = np.full(users, -1, dtype=np.int64)
        self.present[sessions.user[running]] = True
        self.connected[sessions.user[running]] = True
        self.mode[sessions.user[running]] = sessions.mode[running]
        self.session[sessions.user[running]] = running
        self.vanished_at = np.zeros(users)
        self.mode_when_lost = np.zeros(users, dtype=np.int8)
        self.gateways = scenario.tiers.gateway.servers
        self._present_by: dict[int, np.ndarray] = {}
        self._present_counts: list[tuple[int, memoryview]] = []
        self.present_by_gateway = self.present_on(self.gateways)
        self.ghost_seconds: list[float] = []
        self.changes: list[tuple[float, int, int]] = []
        # Users whose statuses (watched) or views (watched_observer) the
        # staleness probe follows.
        self.watched = np.zeros(users, dtype=bool)
        self.watched_observer = np.zeros(users, dtype=bool)
        self.watched_visits: set[int] = set()
        self.follow_ups: list[tuple[float, int, Callable[..., None], tuple]] = []
        self._follow_up_order = itertools.count()
        # The per-user arrays as Python sequences over the same memory, for
        # `apply`, which reads and writes one element at a time: indexing a
        # memoryview skips numpy's scalar objects.
        self._present = memoryview(self.present)
        self._connected = memoryview(self.connected)
        self._mode = memoryview(self.mode)
        self._session = memoryview(self.session)
        self._vanished_at = memoryview(self.vanished_at)
        self._mode_when_lost = memoryview(self.mode_when_lost)
        self._reconnect = memoryview(sessions.reconnect)
        self._watched = memoryview(self.watched)

    @property
    def now(self) -> float:
        return self.env.now

    def shown(self, users: np.ndarray | int) -> np.ndarray | int:
        """The status observers see: offline unless connected and visible."""
        visible = self.connected[users] & (self.mode[users] != INVISIBLE)
        return np.where(visible, self.mode[users], OFFLINE)

    def shown_one(self, user: int) -> int:
        """`shown` of one user, without array operations."""
        if self._connected[user]:
            mode = self._mode[user]
            if mode != INVISIBLE:
                return mode
        return OFFLINE

    def follow_up(
        self, time: float, action: Callable[..., None], *args: object
    ) -> None:
        """Run `action(*args)` at simulated `time`, later than the user event
        being handled; for work that follows from user events only (the
        arrival of a push). The user-event process runs follow-ups in time
        order, without a SimPy event each (see `Simulation`)."""
        heapq.heappush(
            self.follow_ups, (time, next(self._follow_up_order), action, args)
        )

    def at(self, time: float, action: Callable[[], None]) -> None:
        """Run `action` at simulated `time` (not before now)."""
        event = self.env.timeout(max(0.0, time - self.env.now))
        event.callbacks.append(lambda _event: action())

    def watched_visit(self, index: int) -> bool:
        """Whether the staleness probe follows group visit `index`."""
        return index in self.watched_visits

    def present_on(self, servers: int) -> np.ndarray:
        """Connected clients per gateway server when `servers` gateways share
        the users (by user number); kept up to date from the first call on.

        A strategy whose gateway tier has its own number of servers (as in a
        capacity search) counts its heartbeats from these."""
        counts = self._present_by.get(servers)
        if counts is None:
            counts = np.bincount(
                np.flatnonzero(self.present) % servers, minlength=servers
            )
            self._present_by[servers] = counts
            self._present_counts.append((servers, memoryview(counts)))
        return counts

    def _set_present(self, user: int, present: bool) -> None:
        if self._present[user] != present:
            self._present[user] = present
            step = 1 if present else -1
            for servers, counts in self._present_counts:
                counts[user % servers] += step

    def apply(
        self, time: float, kind: int, user: int, mode: int, session: int
    ) -> "Event | None":
        """Update the world for one user event; None when the server sees
        nothing (a vanished client, a stale timeout or switch)."""
        current = self._session[user] == session
        if kind == DISCONNECT:
            if current:
                self._set_present(user, False)
                self._vanished_at[user] = time
                self._mode_when_lost[user] = self._mode[user]
            return None
        connected = self._connected
        if kind in (SWITCH, LOGOUT, TIMEOUT) and not (current and connected[user]):
            return None
        if kind == TIMEOUT and time >= self.warmup:
            self.ghost_seconds.append(time - self._vanished_at[user])

        old = self.shown_one(user)
        if kind == LOGIN:
            if self._reconnect[session]:
                # A client reconnecting after a crash keeps the status its
                # user had chosen (invisible users stay invisible).
                mode = self._mode_when_lost[user] or mode
            self._session[user] = session
            connected[user] = True
            self._set_present(user, True)
            self._mode[user] = mode
        elif kind == SWITCH:
            self._mode[user] = mode
        else:
            connected[user] = False
            self._set_present(user, False)
            self._mode[user] = OFFLINE
        event = Event(time, kind, user, old, self.shown_one(user), self)
        if event.visible and self._watched[user]:
            self.changes.append((time, user, event.new))
        return event


class Event:
    """One user event as the server sees it, with its audiences on demand.

    `old` and `new` are the statuses observers see before and after; the
    event is a visible status change when they differ. Strategies that share
    an audience share its computation.
    """

    __slots__ = (
        "time",
        "kind",
        "user",
        "old",
        "new",
        "visible",
        "world",
        "_friends",
        "_groups",
    )

    def __init__(
        self, time: float, kind: int, user: int, old: int, new: int, world: World
    ) -> None:
        self.time = time
        self.kind = kind
        self.user = user
        self.old = old
        self.new = new
        # Whether observers see a change.
        self.visible = old != new
        self.world = world
        self._friends: np.ndarray | None = None
        self._groups: np.ndarray | None = None

    def friend_observers(self) -> np.ndarray:
        """Connected reverse friends: users who added this one, online or
        invisible (as far as the server knows)."""
        if self._friends is None:
            reverse = self.world.graph.reverse
            self._friends = connected_row(
                reverse.indptr, reverse.indices, self.user, self.world.connected
            )
        return self._friends

    def group_recipients(self) -> np.ndarray:
        """Connected members of each of the user's groups, once per group."""
        if self._groups is None:
            graph = self.world.graph
            self._groups = connected_members(
                graph.groups.indptr,
                graph.groups.indices,
                graph.members.indptr,
                graph.members.indices,
                self.user,
                self.world.connected,
            )
        return self._groups


class Reactor(Protocol):
    """What the simulation calls on each strategy. Group visits are replayed
    only when some strategy has `reacts_to_visits` set."""

    reacts_to_visits: bool

    def on_event(self, event: Event) -> None: ...

    def on_visit(
        self, index: int, time: float, user: int, group: int, close: float
    ) -> None: ...

    def on_slot(self, start: float, end: float) -> None: ...


class Simulation:
    """Runs the workload through every strategy in one pass of SimPy."""

    def __init__(
        self, world: World, strategies: list[Reactor], progress: Progress | None
    ) -> None:
        self.world = world
        self.strategies = strategies
        self.progress = progress

    def run(self) -> None:
        env = self.world.env
        env.process(self._events())
        if any(strategy.reacts_to_visits for strategy in self.strategies):
            env.process(self._visits())
        env.process(self._slots())
        env.run()
        log.info(
            "simulated %.0f s, %d user events",
            env.now,
            len(self.world.workload.event_time),
        )

    def _events(self) -> Iterator[simpy.Event]:
        workload = self.world.workload
        env = self.world.env
        times = workload.event_time.tolist()
        rows = zip(
            times,
            times[1:] + [math.inf],
            workload.event_kind.tolist(),
            workload.event_user.tolist(),
            workload.event_mode.tolist(),
            workload.event_session.tolist(),
            strict=True,
        )
        world = self.world
        follow_ups = world.follow_ups
        for time, next_time, kind, user, mode, session in rows:
            if follow_ups and follow_ups[0][0] <= time:
                yield from self._follow_ups(until=time)
            if not time < env.peek():
                yield env.timeout(max(0.0, time - env.now))
            event = world.apply(time, kind, user, mode, session)
            if event is None:
                continue
            for strategy in self.strategies:
                strategy.on_event(event)
            self._run_due(until=next_time)
        yield from self._follow_ups(until=math.inf)

    def _run_due(self, until: float) -> None:
        """Run the follow-ups due no later than `until` and before any SimPy
        event, in time order: those `_follow_ups` would run without waiting
        (most arrivals of a push, run before the next user event)."""
        agenda = self.world.follow_ups
        env = self.world.env
        while agenda and agenda[0][0] <= until and agenda[0][0] < env.peek():
            _, _, action, args = heapq.heappop(agenda)
            action(*args)

    def _follow_ups(self, until: float) -> Iterator[simpy.Event]:
        """Run the follow-ups due no later than `until`, in time order.

        Only handlers of user events schedule follow-ups, and they run in this
        process, so nothing adds one while it waits. A follow-up, like a user
        event, goes ahead at once when nothing else is queued for its time or
        earlier (SimPy would run it next anyway); otherwise the process waits
        in SimPy's queue until its time. Going ahead leaves the clock behind
        the item's time, which no handler takes for it: each is given its own
        time, and `World.at` takes absolute times.
        """
        env = self.world.env
        agenda = self.world.follow_ups
        while agenda and agenda[0][0] <= until:
            time = agenda[0][0]
            if not time < env.peek():
                yield env.timeout(max(0.0, time - env.now))
            _, _, action, args = heapq.heappop(agenda)
            action(*args)

    def _visits(self) -> Iterator[simpy.Event]:
        workload = self.world.workload
        env = self.world.env
        visits = zip(
            workload.visit_time.tolist(),
            workload.visit_user.tolist(),
            workload.visit_group.tolist(),
            workload.visit_close.tolist(),
            strict=True,
        )
        for index, (time, user, group, close) in enumerate(visits):
            yield env.timeout(max(0.0, time - env.now))
            for strategy in self.strategies:
                strategy.on_visit(index, time, user, group, close)

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


__all__ = ["LOGIN", "Event", "Simulation", "World"]
