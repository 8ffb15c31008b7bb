"""Poll: every online user asks for all its friends' statuses every T seconds."""

import numpy as np

from sim.model import Change, World
from sim.protocol.base import Strategy
from sim.randomness import stream
from sim.tiers import Tier


class FriendPoll(Strategy):
    """Friend statuses by polling, with a random phase per user.

    User u polls at phase(u) + kT while online. Polls are not SimPy events:
    each load slot finds its pollers by a range search over the sorted
    phases, and each change computes when each online observer's next poll
    will see it. An observer whose session ends before that poll never learns
    of the change and is not counted in N.

    Limitation: the latency of a poll is the wait until the next poll; the
    request's own round trip through the tiers is not added to it.
    Limitation: polls of one load slot reach the tiers together at the start
    of the slot, which overstates their queueing when the slot is long.
    Limitation: a poll that follows two changes of the same friend counts both
    as detected, although the observer only sees the later status.
    """

    audience = "friends"
    name = "poll"

    def __init__(self, world: World, tiers: dict[str, Tier]) -> None:
        super().__init__(world, tiers)
        self.interval = world.scenario.strategies.poll_interval
        rng = stream(world.scenario.seed, "poll")
        self.phase = rng.random(world.graph.users) * self.interval
        self._by_phase = np.argsort(self.phase, kind="stable")
        self._sorted_phase = self.phase[self._by_phase]

    def next_poll(self, users: np.ndarray, time: float) -> np.ndarray:
        """The first poll of each user at or after `time`."""
        return time + np.mod(self.phase[users] - time, self.interval)

    def on_change(self, change: Change) -> None:
        self.write_status(change)
        observers = change.friend_observers()
        polls = self.next_poll(observers, change.time)
        seen = polls <= self.world.until[observers]
        self.metrics.record_change(int(seen.sum()))
        self.metrics.latency.add(polls[seen] - change.time)

    def pollers(self, start: float, end: float) -> np.ndarray:
        """Online users whose poll falls in [start, end), for end - start <= T."""
        low = start % self.interval
        high = low + (end - start)
        phases = self._sorted_phase
        first = np.searchsorted(phases, low)
        if high <= self.interval:
            users = self._by_phase[first : np.searchsorted(phases, high)]
        else:
            wrapped = np.searchsorted(phases, high - self.interval)
            users = np.concatenate([self._by_phase[first:], self._by_phase[:wrapped]])
        return users[self.world.online[users]]

    def on_slot(self, start: float, end: float) -> None:
        users = self.pollers(start, end)
        if len(users) == 0:
            return
        gateway, presence = self.tiers["gateway"], self.tiers["presence"]
        gateway.serve(start, gateway.server_of(users), "request")
        presence.serve(start + self.hop, presence.server_of(users), "poll")
        self.metrics.requests += len(users)
        self.metrics.messages += len(users)
