"""Staleness: how long observers' views show a wrong status.

A sample of observer-friend pairs (arcs of the friend graph, uniformly) and
of group visits is followed through the run. For each, the status the
observer's client shows is rebuilt from what the strategy delivered (pushes,
login snapshots, poll and pull replies) and compared with the true status
(what the server would show at that moment). A pair counts while the
observer's client is connected; a group visit counts while the group is open.
A view that has not been loaded yet (between login and the snapshot, or
between opening a group and the first pull) counts as wrong.

Limitation: group push views are taken as correct when the group is opened
(the client has been receiving pushes all along, but no snapshot of group
members at login is modelled); group poll views start from the last poll;
lazy pull starts each visit with nothing.
"""

import bisect
import math
from collections import defaultdict

import numpy as np
import pandas as pd

from sim.model import World
from sim.protocol.base import Strategy
from sim.protocol.lazy_pull import GroupLazyPull
from sim.protocol.poll import Poll

UNKNOWN = -1
# A view event whose value is read from the truth at its own time.
READ = -2


class Truth:
    """The shown status of every watched user over the run."""

    def __init__(self, world: World, initial: np.ndarray) -> None:
        times: dict[int, list[float]] = defaultdict(list)
        values: dict[int, list[int]] = defaultdict(list)
        for time, user, status in world.changes:
            times[user].append(time)
            values[user].append(status)
        self._times = times
        self._values = values
        self._initial = initial

    def at(self, user: int, time: float) -> int:
        times = self._times.get(user)
        if not times:
            return int(self._initial[user])
        index = bisect.bisect_right(times, time) - 1
        return int(self._initial[user]) if index < 0 else self._values[user][index]

    def changes(self, user: int, start: float, end: float) -> list[tuple[float, int]]:
        times = self._times.get(user, [])
        low = bisect.bisect_left(times, start)
        high = bisect.bisect_left(times, end)
        return list(zip(times[low:high], self._values[user][low:high], strict=True))


def stale_intervals(
    truth: Truth,
    subject: int,
    start: float,
    end: float,
    view: int,
    updates: list[tuple[float, int]],
) -> list[tuple[float, float]]:
    """Intervals of [start, end) where the view of `subject` is wrong.

    `view` is the view at `start`; `updates` are (time, value) view changes,
    where READ means "the truth at that time".
    """
    events = [(t, 0, v) for t, v in truth.changes(subject, start, end)]
    events += [(t, 1, v) for t, v in updates if start <= t < end]
    events.sort()
    current = truth.at(subject, start)
    wrong: list[tuple[float, float]] = []
    since = start
    for time, kind, value in events:
        if view != current and time > since:
            wrong.append((since, time))
        since = time
        if kind == 0:
            current = value
        else:
            view = current if value == READ else value
    if view != current and end > since:
        wrong.append((since, end))
    return wrong


class StalenessProbe:
    """Chooses what to follow before the run and measures it after."""

    def __init__(
        self, world: World, rng: np.random.Generator, pairs: int, visits: int = 100
    ) -> None:
        self.world = world
        graph = world.graph
        chosen = np.sort(
            rng.choice(graph.arcs, size=min(pairs, graph.arcs), replace=False)
        )
        self.observers = (
            np.searchsorted(graph.friends.indptr, chosen, side="right") - 1
        ).astype(np.int64)
        self.subjects = graph.friends.indices[chosen].astype(np.int64)
        count = len(world.workload.visit_time)
        self.visits = (
            np.sort(rng.choice(count, size=min(visits, count), replace=False))
            if pairs > 0
            else np.zeros(0, np.int64)
        )

        world.watched[self.subjects] = True
        world.watched_observer[self.observers] = True
        workload = world.workload
        for index in self.visits.tolist():
            members = graph.members.row(int(workload.visit_group[index]))
            world.watched[members] = True
            world.watched_observer[workload.visit_user[index]] = True
            world.watched_visits.add(index)
        self.initial = np.asarray(world.shown(np.arange(graph.users)), dtype=np.int8)
        self._truth: Truth | None = None

    @property
    def truth(self) -> Truth:
        if self._truth is None:
            self._truth = Truth(self.world, self.initial)
        return self._truth

    def _sessions_of(self) -> dict[int, list[tuple[float, float]]]:
        sessions = self.world.workload.sessions
        mine: dict[int, list[tuple[float, float]]] = defaultdict(list)
        watched = self.world.watched_observer[sessions.user]
        for user, start, end in zip(
            sessions.user[watched].tolist(),
            sessions.start[watched].tolist(),
            sessions.end[watched].tolist(),
            strict=True,
        ):
            mine[user].append((start, end))
        return mine

    def friend_pairs(self, strategy: Strategy) -> tuple[list, float]:
        """Stale intervals and measured seconds over the sampled pairs."""
        duration = self.world.workload.duration
        views: dict[tuple[int, int], list[tuple[float, int]]] = defaultdict(list)
        for observer, subject, time, status, _ in strategy.views:
            views[(observer, subject)].append((time, status))
        snapshots: dict[int, list[float]] = defaultdict(list)
        for observer, time in strategy.snapshots:
            snapshots[observer].append(time)
        polling = isinstance(strategy, Poll)

        wrong: list[tuple[float, float]] = []
        measured: list[tuple[float, float]] = []
        sessions = self._sessions_of()
        for observer, subject in zip(
            self.observers.tolist(), self.subjects.tolist(), strict=True
        ):
            for start, end in sessions[observer]:
                low, high = max(start, 0.0), min(end, duration)
                if high <= low:
                    continue
                updates = list(views.get((observer, subject), []))
                updates += [(t, READ) for t in snapshots.get(observer, [])]
                if polling:
                    updates += [
                        (t, READ) for t in _polls(strategy, observer, low, high)
                    ]
                view = self.truth.at(subject, 0.0) if start < 0 else UNKNOWN
                wrong += stale_intervals(self.truth, subject, low, high, view, updates)
                measured.append((low, high))
        return wrong, measured

    def group_visits(self, strategy: Strategy) -> tuple[list, list]:
        """Stale intervals and measured windows over the sampled group visits."""
        workload = self.world.workload
        graph = self.world.graph
        pulls: dict[int, list[float]] = defaultdict(list)
        if isinstance(strategy, GroupLazyPull):
            for index, time in strategy.pulls:
                pulls[index].append(time)
        views: dict[tuple[int, int], list[tuple[float, int]]] = defaultdict(list)
        for observer, subject, time, status, _ in strategy.views:
            views[(observer, subject)].append((time, status))
        polling = isinstance(strategy, Poll)

        wrong: list[tuple[float, float]] = []
        measured: list[tuple[float, float]] = []
        for index in self.visits.tolist():
            observer = int(workload.visit_user[index])
            start = float(workload.visit_time[index])
            end = min(float(workload.visit_close[index]), workload.duration)
            group = int(workload.visit_group[index])
            if end <= start:
                continue
            poll_times = _polls(strategy, observer, start, end) if polling else []
            for member in graph.members.row(group).tolist():
                if member == observer:
                    continue
                if isinstance(strategy, GroupLazyPull):
                    view = UNKNOWN
                    updates = [(t, READ) for t in pulls.get(index, [])]
                elif polling:
                    last = start - np.mod(
                        start - strategy.phase[observer], strategy.interval
                    )
                    view = self.truth.at(member, last)
                    updates = [(t, READ) for t in poll_times]
                else:
                    view = self.truth.at(member, start)
                    updates = views.get((observer, member), [])
                wrong += stale_intervals(self.truth, member, start, end, view, updates)
                measured.append((start, end))
        return wrong, measured


def _polls(strategy: Strategy, user: int, start: float, end: float) -> list[float]:
    """Poll times of a user inside [start, end)."""
    assert isinstance(strategy, Poll)
    first = start + (strategy.phase[user] - start) % strategy.interval
    return np.arange(first, end, strategy.interval).tolist()


def summarise(
    wrong: list[tuple[float, float]],
    measured: list[tuple[float, float]],
    counted_from: float,
    edges: np.ndarray,
) -> tuple[float, np.ndarray]:
    """Overall stale share after `counted_from`, and the share per bin."""
    stale_bins = _overlap(wrong, edges)
    measured_bins = _overlap(measured, edges)
    keep = edges[:-1] >= counted_from
    total = measured_bins[keep].sum()
    share = stale_bins[keep].sum() / total if total > 0 else math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        series = np.where(measured_bins > 0, stale_bins / measured_bins, np.nan)
    return float(share), series


def _overlap(intervals: list[tuple[float, float]], edges: np.ndarray) -> np.ndarray:
    """Seconds of the intervals falling in each bin between `edges`."""
    totals = np.zeros(len(edges) - 1)
    if not intervals:
        return totals
    spans = np.asarray(intervals)
    low = np.clip(spans[:, :1], edges[:-1], edges[1:])
    high = np.clip(spans[:, 1:], edges[:-1], edges[1:])
    return (high - low).sum(axis=0)


def staleness_table(
    probe: StalenessProbe, strategies: list[Strategy], counted_from: float
) -> tuple[pd.DataFrame, dict[tuple[str, str], float]]:
    """The staleness time series per strategy, and each one's overall share."""
    duration = probe.world.workload.duration
    width = max(probe.world.scenario.metrics.slot, duration / 120)
    edges = np.arange(0.0, duration + width, width)
    edges[-1] = min(edges[-1], duration) if edges[-1] > duration else edges[-1]
    frames = []
    shares: dict[tuple[str, str], float] = {}
    for strategy in strategies:
        if strategy.audience == "friends":
            wrong, measured = probe.friend_pairs(strategy)
        elif strategy.audience == "groups":
            wrong, measured = probe.group_visits(strategy)
        else:
            continue
        share, series = summarise(wrong, measured, counted_from, edges)
        shares[strategy.key] = share
        frames.append(
            pd.DataFrame(
                {
                    "audience": strategy.audience,
                    "strategy": strategy.name,
                    "time_s": edges[:-1],
                    "stale_share": series,
                }
            )
        )
    columns = ["audience", "strategy", "time_s", "stale_share"]
    table = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=columns)
    )
    return table, shares
